"""Test fake: reading and rewriting helm release records kept in the fake Kubernetes API server.

helm (v3 and v4.1.4 alike) stores each release revision as a Secret ``sh.helm.release.v1.NAME.vREV`` of type
``helm.sh/release.v1`` labelled ``owner=helm,name=NAME,status=STATUS,version=REV``; its ``data.release`` is
base64(gzip(JSON release)) (and the Secret's ``.data`` adds the usual base64 layer). helm's typed client
*sends* those Secrets protobuf-encoded (see :mod:`.protobuf`); the release payload itself is JSON. With
``HELM_DRIVER=configmap`` the same payload sits in a ConfigMap. helm reads a release's status from the
decoded body, not from the label, so :func:`set_status` rewrites both, which is how a test produces a
release stuck in ``pending-upgrade``.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from dataclasses import dataclass
from typing import Any

from .store import Store

Obj = dict[str, Any]

PENDING_STATUSES = ("pending-install", "pending-upgrade", "pending-rollback")


@dataclass
class HelmRelease:
    """One stored release revision, decoded."""

    name: str
    namespace: str
    revision: int
    status: str
    storage_kind: str  # "Secret" or "ConfigMap"
    storage_name: str
    labels: dict[str, str]
    body: Obj

    @property
    def values(self) -> Obj:
        """The user-supplied values of this revision (``helm get values``)."""
        return dict(self.body.get("config") or {})

    @property
    def chart_version(self) -> str:
        """The chart version."""
        return str(((self.body.get("chart") or {}).get("metadata") or {}).get("version", ""))

    @property
    def manifest(self) -> str:
        """The rendered manifest."""
        return str(self.body.get("manifest", ""))

    @property
    def description(self) -> str:
        """``info.description`` (e.g. ``Install complete``, ``Rollback to 1``)."""
        return str((self.body.get("info") or {}).get("description", ""))


def decode_payload(payload: str) -> Obj:
    """Decode helm's release payload: base64(gzip(JSON)) (plain base64(JSON) is accepted too)."""
    raw = base64.b64decode(payload)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return dict(json.loads(raw))


def encode_payload(body: Obj) -> str:
    """Encode a release body the way helm does."""
    return base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()


def _release_from(obj: Obj, kind: str) -> HelmRelease | None:
    meta = obj.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    if labels.get("owner") != "helm":
        return None
    data = (obj.get("data") or {}).get("release")
    if not data:
        return None
    payload = base64.b64decode(data).decode() if kind == "Secret" else data
    body = decode_payload(payload)
    return HelmRelease(
        name=str(body.get("name", labels.get("name", ""))),
        namespace=str(meta.get("namespace", "")),
        revision=int(body.get("version") or labels.get("version") or 0),
        status=str((body.get("info") or {}).get("status", labels.get("status", ""))),
        storage_kind=kind,
        storage_name=str(meta.get("name", "")),
        labels=labels,
        body=body,
    )


def list_releases(store: Store, namespace: str | None = None, name: str | None = None) -> list[HelmRelease]:
    """Every stored release revision (optionally of one namespace / release), by namespace, name, revision."""
    selector = "owner=helm" + (f",name={name}" if name else "")
    out = []
    for kind in ("Secret", "ConfigMap"):
        for obj in store.objects(kind, namespace, selector):
            rel = _release_from(obj, kind)
            if rel is not None:
                out.append(rel)
    return sorted(out, key=lambda r: (r.namespace, r.name, r.revision))


def latest(store: Store, name: str, namespace: str) -> HelmRelease | None:
    """The newest revision of a release, or None."""
    revs = list_releases(store, namespace, name)
    return revs[-1] if revs else None


def set_status(store: Store, name: str, namespace: str, status: str, revision: int | None = None) -> HelmRelease:
    """Rewrite the status of a release revision (default: the newest) in its body and its ``status`` label.

    ``set_status(store, "web", "default", "pending-upgrade")`` leaves the release as an interrupted
    ``helm upgrade`` would: a later ``helm upgrade`` then fails with "another operation (install/upgrade/
    rollback) is in progress" until it is recovered (``helm rollback``).
    """
    revs = list_releases(store, namespace, name)
    if revision is not None:
        revs = [r for r in revs if r.revision == revision]
    if not revs:
        raise KeyError(f"no helm release {namespace}/{name}" + (f" revision {revision}" if revision else ""))
    rel = revs[-1]
    body = copy.deepcopy(rel.body)
    body.setdefault("info", {})["status"] = status
    obj = store.find(rel.storage_kind, rel.storage_name, namespace)
    assert obj is not None
    payload = encode_payload(body)
    obj["data"]["release"] = base64.b64encode(payload.encode()).decode() if rel.storage_kind == "Secret" else payload
    obj["metadata"].setdefault("labels", {})["status"] = status
    store.put(obj)
    result = _release_from(obj, rel.storage_kind)
    assert result is not None
    return result
