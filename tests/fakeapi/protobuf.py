"""Test fake: a minimal decoder for the Kubernetes protobuf wire format, as sent to the fake API server.

client-go typed clients (helm's release storage driver among them) send request bodies as
``application/vnd.kubernetes.protobuf``: the magic ``k8s\\0`` followed by a ``runtime.Unknown`` envelope whose
``raw`` field holds the object message. This module decodes the envelope and the few kinds those clients
send here (Secret, ConfigMap, Namespace, DeleteOptions) into the JSON-shaped dicts the store works with.
Responses are always JSON, which those clients accept too.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"
Obj = dict[str, Any]


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf message this fake understands."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) for a message; length-delimited values are bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        val: Any
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            val, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        yield num, wire, val


def _str(b: bytes) -> str:
    return b.decode("utf-8")


def _map_entry(b: bytes, value: Callable[[bytes], Any]) -> tuple[str, Any]:
    k, v = "", value(b"")
    for num, _, val in fields(b):
        if num == 1:
            k = _str(val)
        elif num == 2:
            v = value(val)
    return k, v


def _time(b: bytes) -> str | None:
    secs = 0
    for num, _, val in fields(b):
        if num == 1:
            secs = val
    if not secs:
        return None
    return datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner_ref(b: bytes) -> Obj:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    out: Obj = {}
    for num, _, val in fields(b):
        if num in names:
            out[names[num]] = _str(val)
        elif num == 6:
            out["controller"] = bool(val)
        elif num == 7:
            out["blockOwnerDeletion"] = bool(val)
    return out


def object_meta(b: bytes) -> Obj:
    """Decode ``ObjectMeta`` (empty strings and zero values are treated as unset)."""
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: Obj = {}
    for num, _, val in fields(b):
        if num in strings and val:
            meta[strings[num]] = _str(val)
        elif num == 7 and val:
            meta["generation"] = val
        elif num == 8:
            ts = _time(val)
            if ts:
                meta["creationTimestamp"] = ts
        elif num == 11:
            k, v = _map_entry(val, _str)
            meta.setdefault("labels", {})[k] = v
        elif num == 12:
            k, v = _map_entry(val, _str)
            meta.setdefault("annotations", {})[k] = v
        elif num == 13:
            meta.setdefault("ownerReferences", []).append(_owner_ref(val))
        elif num == 14:
            meta.setdefault("finalizers", []).append(_str(val))
    return meta


def _secret(b: bytes) -> Obj:
    obj: Obj = {}
    for num, _, val in fields(b):
        if num == 1:
            obj["metadata"] = object_meta(val)
        elif num == 2:
            k, v = _map_entry(val, bytes)
            obj.setdefault("data", {})[k] = base64.b64encode(v).decode()
        elif num == 3 and val:
            obj["type"] = _str(val)
        elif num == 4:
            k, v = _map_entry(val, _str)
            obj.setdefault("stringData", {})[k] = v
        elif num == 5:
            obj["immutable"] = bool(val)
    return obj


def _configmap(b: bytes) -> Obj:
    obj: Obj = {}
    for num, _, val in fields(b):
        if num == 1:
            obj["metadata"] = object_meta(val)
        elif num == 2:
            k, v = _map_entry(val, _str)
            obj.setdefault("data", {})[k] = v
        elif num == 3:
            k, v = _map_entry(val, bytes)
            obj.setdefault("binaryData", {})[k] = base64.b64encode(v).decode()
        elif num == 4:
            obj["immutable"] = bool(val)
    return obj


def _namespace(b: bytes) -> Obj:
    obj: Obj = {}
    for num, _, val in fields(b):
        if num == 1:
            obj["metadata"] = object_meta(val)
    return obj


def _delete_options(b: bytes) -> Obj:
    obj: Obj = {}
    for num, _, val in fields(b):
        if num == 1:
            obj["gracePeriodSeconds"] = val
        elif num == 2:
            pre: Obj = {}
            for pn, _, pv in fields(val):
                if pn == 1 and pv:
                    pre["uid"] = _str(pv)
                elif pn == 2 and pv:
                    pre["resourceVersion"] = _str(pv)
            obj["preconditions"] = pre
        elif num == 3:
            obj["orphanDependents"] = bool(val)
        elif num == 4 and val:
            obj["propagationPolicy"] = _str(val)
        elif num == 5:
            obj.setdefault("dryRun", []).append(_str(val))
    return obj


DECODERS: dict[str, Callable[[bytes], Obj]] = {
    "Secret": _secret,
    "ConfigMap": _configmap,
    "Namespace": _namespace,
    "DeleteOptions": _delete_options,
}


def decode(body: bytes) -> Obj:
    """Decode a ``k8s\\0``-prefixed protobuf body into a JSON-shaped object (with apiVersion and kind)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing k8s protobuf magic")
    api_version = kind = ""
    raw = b""
    for num, _, val in fields(body[len(MAGIC):]):
        if num == 1:
            for tn, _, tv in fields(val):
                if tn == 1:
                    api_version = _str(tv)
                elif tn == 2:
                    kind = _str(tv)
        elif num == 2:
            raw = val
    decoder = DECODERS.get(kind)
    if decoder is None:
        raise ProtobufError(f"this fake cannot decode protobuf {api_version}/{kind}")
    obj = decoder(raw)
    if kind != "DeleteOptions":
        obj = {"apiVersion": api_version, "kind": kind, **obj}
    return obj
