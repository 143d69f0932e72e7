"""Test fake: the in-memory object store behind the fake Kubernetes API server.

Holds every object as a plain dict keyed by (group, plural) and (namespace, name), with API-server
semantics: resourceVersion/uid/creationTimestamp/generation, optimistic concurrency, create/update/patch,
server-side apply with field ownership and no-op detection, deletion with finalizers, graceful pod
deletion, owner-reference garbage collection and namespace termination, plus a change log that feeds
watches and the workload simulator. Errors are raised as :class:`ApiError`, which renders as a real
``Status`` object.
"""

from __future__ import annotations

import bisect
import copy
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import patching
from .defaults import Defaulter
from .resources import Registry, ResourceType, crd_resource_types
from .selectors import SelectorError, labels_match, parse_field_selector, selector_object_to_string

Obj = dict[str, Any]
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_UNSET = object()


def now_rfc3339(offset: float = 0.0) -> str:
    """The current UTC time (plus ``offset`` seconds) in the API's RFC 3339 form."""
    return datetime.fromtimestamp(time.time() + offset, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(n: int = 5) -> str:
    """A random name suffix from the alphabet Kubernetes uses for generated names."""
    return "".join(random.choice(NAME_ALPHABET) for _ in range(n))


class ApiError(Exception):
    """An API error; :meth:`status` renders it as the ``Status`` object the real server returns."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> Obj:
        """The ``Status`` body."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    @classmethod
    def not_found(cls, rt: ResourceType, name: str) -> ApiError:
        """404 NotFound for ``rt``/``name``."""
        return cls(404, "NotFound", f'{rt.qualified} "{name}" not found',
                   {"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def already_exists(cls, rt: ResourceType, name: str) -> ApiError:
        """409 AlreadyExists."""
        return cls(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists',
                   {"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def conflict(cls, rt: ResourceType, name: str, why: str | None = None) -> ApiError:
        """409 Conflict (stale resourceVersion or failed precondition)."""
        why = why or "the object has been modified; please apply your changes to the latest version and try again"
        return cls(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": {why}',
                   {"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def invalid(cls, rt: ResourceType, name: str, why: str, field: str = "") -> ApiError:
        """422 Invalid."""
        return cls(422, "Invalid", f'{rt.kind} "{name}" is invalid: {field + ": " if field else ""}{why}',
                   {"name": name, "group": rt.group, "kind": rt.kind,
                    "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}]})

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        """400 BadRequest."""
        return cls(400, "BadRequest", message)


@dataclass(frozen=True)
class Change:
    """One stored change: the feed for watches and for the workload simulator."""

    type: str  # ADDED, MODIFIED, DELETED
    rt: ResourceType
    old: Obj | None
    new: Obj  # for DELETED: the last state
    rv: int


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def _strip_volatile(obj: Obj) -> Obj:
    """A copy without the fields a write always changes (for no-op detection)."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for k in ("resourceVersion", "managedFields", "generation"):
        meta.pop(k, None)
    return out


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    """Thread-safe in-memory API object store with real API-server semantics.

    All public methods take the lock; mutations run in a transaction that, when the outermost one ends,
    hands the batch of :class:`Change` records to the listeners (the workload simulator), whose own writes
    are settled the same way, then wakes watchers.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.defaulter = Defaulter()
        self.errors: list[str] = []  # internal failures of listeners (tests should find this empty)
        self.listeners: list[Callable[[list[Change]], None]] = []
        # Returns the graceful-deletion delay for an object being deleted (0 = remove at once).
        self.deletion_delay: Callable[[ResourceType, Obj], float] = lambda rt, obj: 0.0
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        self._rv = 100
        self._events: list[Change] = []
        self._pending: list[Change] = []
        self._depth = 0
        self._closed = False
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.rt("Namespace"), "", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": ns}}, internal=True)

    # ------------------------------------------------------------------------------------------ plumbing

    def rt(self, name: str) -> ResourceType:
        """Resolve a resource type by kind, plural, singular or short name (``"Deployment"``, ``"deploy"``)."""
        return self.registry.resolve(name)

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion handed out."""
        return self._rv

    @contextmanager
    def txn(self) -> Iterator[None]:
        """Run a group of mutations under the lock; listeners see them when the outermost block ends."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._settle()

    def _settle(self) -> None:
        self._depth += 1
        try:
            rounds = 0
            while self._pending and rounds < 200:
                rounds += 1
                batch, self._pending = self._pending, []
                for listener in list(self.listeners):
                    try:
                        listener(batch)
                    except Exception as exc:  # a bug in the fake must not kill the request
                        import traceback

                        self.errors.append(f"{exc!r}\n{traceback.format_exc()}")
            if self._pending:
                self.errors.append("simulator did not settle after 200 rounds")
                self._pending = []
        finally:
            self._depth -= 1
        self.cond.notify_all()

    def close(self) -> None:
        """Wake and end every watch."""
        with self.lock:
            self._closed = True
            self.cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _bucket(self, rt: ResourceType) -> dict[tuple[str, str], Obj]:
        return self._objects.setdefault(rt.key, {})

    def _record(self, type_: str, rt: ResourceType, old: Obj | None, new: Obj) -> None:
        self._rv += 1
        _meta(new)["resourceVersion"] = str(self._rv)
        change = Change(type_, rt, old, new, self._rv)
        self._events.append(change)
        if len(self._events) > 50000:
            del self._events[:25000]
        self._pending.append(change)

    def _store(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        meta = _meta(obj)
        key = (meta.get("namespace", "") if rt.namespaced else "", meta["name"])
        self._record("MODIFIED" if old is not None else "ADDED", rt, old, obj)
        self._bucket(rt)[key] = obj
        return copy.deepcopy(obj)

    def _drop(self, rt: ResourceType, ns: str, name: str) -> Obj | None:
        old = self._bucket(rt).pop((ns if rt.namespaced else "", name), None)
        if old is None:
            return None
        last = copy.deepcopy(old)
        self._record("DELETED", rt, old, last)
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            self._crd_removed(old)
        return copy.deepcopy(last)

    def _raw(self, rt: ResourceType, ns: str, name: str) -> Obj | None:
        return self._bucket(rt).get((ns if rt.namespaced else "", name))

    def _with_version(self, rt: ResourceType, obj: Obj, version: str | None) -> Obj:
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version(version)
        out["kind"] = rt.kind
        return out

    # --------------------------------------------------------------------------------------------- reads

    def get(self, rt: ResourceType, ns: str, name: str, version: str | None = None) -> Obj:
        """One object (a deep copy); raises a 404 :class:`ApiError` when absent."""
        with self.lock:
            obj = self._raw(rt, ns, name)
            if obj is None:
                raise ApiError.not_found(rt, name)
            return self._with_version(rt, obj, version)

    def find(self, kind: str, name: str, namespace: str = "default") -> Obj | None:
        """Test helper: one object by kind name (``"Deployment"``) or None."""
        rt = self.rt(kind)
        with self.lock:
            obj = self._raw(rt, namespace, name)
            return None if obj is None else self._with_version(rt, obj, None)

    def list_objects(
        self,
        rt: ResourceType,
        ns: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        version: str | None = None,
    ) -> tuple[list[Obj], str]:
        """Matching objects (sorted by namespace and name) and the list resourceVersion."""
        try:
            field_pred = parse_field_selector(field_selector)
            labels_match(label_selector, {})
        except SelectorError as exc:
            raise ApiError.bad_request(str(exc)) from exc
        with self.lock:
            items = [
                self._with_version(rt, obj, version)
                for (ons, _), obj in sorted(self._bucket(rt).items())
                if (not ns or ons == ns)
                and labels_match(label_selector, _meta(obj).get("labels"))
                and field_pred(obj)
            ]
            return items, str(self._rv)

    def objects(self, kind: str, namespace: str | None = None, label_selector: str | None = None) -> list[Obj]:
        """Test helper: every object of a kind (optionally in one namespace / matching labels)."""
        return self.list_objects(self.rt(kind), namespace, label_selector)[0]

    # --------------------------------------------------------------------------------------------- create

    def _check_namespace(self, rt: ResourceType, ns: str, name: str) -> None:
        if not rt.namespaced:
            return
        if not ns:
            raise ApiError.bad_request("the server could not find the requested resource (namespace required)")
        nsobj = self._raw(self.rt("Namespace"), "", ns)
        if nsobj is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"})
        if _meta(nsobj).get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           f'{rt.plural} "{name}" is forbidden: unable to create new content in namespace '
                           f"{ns} because it is being terminated",
                           {"name": name, "group": rt.group, "kind": rt.plural,
                            "causes": [{"reason": "NamespaceTerminating",
                                        "message": f"namespace {ns} is being terminated",
                                        "field": "metadata.namespace"}]})

    def _check_body(self, rt: ResourceType, ns: str, body: Obj) -> Obj:
        if not isinstance(body, dict):
            raise ApiError.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        kind = obj.get("kind")
        if kind and kind != rt.kind:
            raise ApiError.bad_request(f"the kind of the provided object ({kind}) does not match the resource "
                                       f"({rt.kind})")
        meta = _meta(obj)
        if rt.namespaced:
            if meta.get("namespace") and ns and meta["namespace"] != ns:
                raise ApiError.bad_request("the namespace of the provided object does not match the namespace "
                                           "sent on the request")
            if ns:
                meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        obj["apiVersion"] = obj.get("apiVersion") or rt.api_version()
        obj["kind"] = rt.kind
        return obj

    def create(
        self,
        rt: ResourceType,
        ns: str,
        body: Obj,
        *,
        manager: str = "",
        dry_run: bool = False,
        internal: bool = False,
        version: str | None = None,
        apply_paths: set[patching.Path] | None = None,
    ) -> Obj:
        """Create an object (POST). ``internal`` writes skip status stripping (controllers use it)."""
        with self.txn():
            obj = self._check_body(rt, ns, body)
            meta = _meta(obj)
            if not meta.get("name"):
                if meta.get("generateName"):
                    meta["name"] = meta["generateName"] + random_suffix()
                else:
                    raise ApiError.invalid(rt, "", "name or generateName is required", "metadata.name")
            name = meta["name"]
            if not _NAME_RE.match(name) and rt.kind not in ("Event",):
                raise ApiError.invalid(rt, name, "a lowercase RFC 1123 subdomain must consist of lower case "
                                       "alphanumeric characters, '-' or '.'", "metadata.name")
            ns = meta.get("namespace", "") if rt.namespaced else ""
            self._check_namespace(rt, ns, name)
            if self._raw(rt, ns, name) is not None:
                raise ApiError.already_exists(rt, name)
            for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(k, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if rt.generation:
                meta["generation"] = 1
            if rt.has_status and not internal and rt.kind not in ("Node",):
                obj.pop("status", None)
            if not internal:
                meta.pop("managedFields", None)
                if apply_paths is not None:
                    self._set_manager(obj, manager, "Apply", "", rt.api_version(version), apply_paths)
                elif manager:
                    paths = set(patching.flatten(obj, rt.crd is None))
                    self._set_manager(obj, manager, "Update", "", rt.api_version(version), paths)
            self.defaulter.apply(rt, obj)
            self._side_effects_before(rt, obj, dry_run)
            if dry_run:
                return self._with_version(rt, obj, version)
            self._store(rt, obj, None)
            return self._with_version(rt, obj, version)

    # --------------------------------------------------------------------------------------- managedFields

    @staticmethod
    def _set_manager(
        obj: Obj, manager: str, operation: str, subresource: str, api_version: str, paths: set[patching.Path]
    ) -> None:
        meta = _meta(obj)
        entries = [e for e in meta.get("managedFields") or []
                   if not (e.get("manager") == manager and e.get("operation") == operation
                           and e.get("subresource", "") == subresource)]
        if paths:
            entry: Obj = {
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": now_rfc3339(),
                "fieldsType": "FieldsV1",
                "fieldsV1": patching.encode_fields(paths),
            }
            if subresource:
                entry["subresource"] = subresource
            entries.append(entry)
        meta["managedFields"] = entries

    def _track_update(
        self, rt: ResourceType, old: Obj, new: Obj, manager: str, subresource: str, version: str | None
    ) -> None:
        """Give ``manager`` (an Update) ownership of the fields it changed; others lose them."""
        if not manager:
            return
        keyed = rt.crd is None
        status_only = subresource == "status"
        old_flat = patching.flatten(old, keyed, include_status=status_only)
        new_flat = patching.flatten(new, keyed, include_status=status_only)
        if status_only:
            old_flat = {p: v for p, v in old_flat.items() if p[0] == "f:status"}
            new_flat = {p: v for p, v in new_flat.items() if p[0] == "f:status"}
        changed = {p for p, v in new_flat.items() if old_flat.get(p, _UNSET) != v}
        removed = set(old_flat) - set(new_flat)
        if not changed and not removed:
            return
        meta = _meta(new)
        mine: set[patching.Path] = set()
        entries = []
        for e in meta.get("managedFields") or []:
            paths = patching.decode_fields(e.get("fieldsV1"))
            is_mine = (e.get("manager") == manager and e.get("operation") == "Update"
                       and e.get("subresource", "") == subresource)
            if is_mine:
                mine = paths
                continue
            left = paths - changed - removed
            if left != paths:
                e = dict(e, fieldsV1=patching.encode_fields(left))
            if left:
                entries.append(e)
        meta["managedFields"] = entries
        self._set_manager(new, manager, "Update", subresource, rt.api_version(version),
                          (mine | changed) - removed)

    # --------------------------------------------------------------------------------------------- update

    def _finish_write(
        self,
        rt: ResourceType,
        current: Obj,
        new: Obj,
        *,
        manager: str,
        subresource: str,
        dry_run: bool,
        version: str | None,
        track: bool = True,
    ) -> Obj:
        meta, cmeta = _meta(new), _meta(current)
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "name"):
            if k in cmeta:
                meta[k] = cmeta[k]
            else:
                meta.pop(k, None)
        if rt.namespaced:
            meta["namespace"] = cmeta.get("namespace", "")
        if "managedFields" not in meta and "managedFields" in cmeta:
            meta["managedFields"] = copy.deepcopy(cmeta["managedFields"])
        meta["generation"] = cmeta.get("generation", 1) if rt.generation else None
        if meta["generation"] is None:
            meta.pop("generation")
        new["apiVersion"] = current.get("apiVersion") or rt.api_version()
        new["kind"] = rt.kind
        self.defaulter.apply(rt, new)
        if rt.generation and _spec_part(new) != _spec_part(current):
            meta["generation"] = int(cmeta.get("generation", 1)) + 1
        if track:
            self._track_update(rt, current, new, manager, subresource, version)
        self._side_effects_before(rt, new, dry_run)
        if _strip_volatile(new) == _strip_volatile(current) and meta.get("managedFields") == cmeta.get(
            "managedFields"
        ):
            return self._with_version(rt, current, version)
        if dry_run:
            meta["resourceVersion"] = cmeta.get("resourceVersion")
            return self._with_version(rt, new, version)
        ns = cmeta.get("namespace", "")
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.kind != "Namespace":
            self._store(rt, new, current)
            self._finalize_delete(rt, ns, meta["name"], "Background")
            return self._with_version(rt, new, version)
        self._store(rt, new, current)
        return self._with_version(rt, new, version)

    def update(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Obj,
        *,
        subresource: str = "",
        manager: str = "",
        dry_run: bool = False,
        version: str | None = None,
    ) -> Obj:
        """Replace an object (PUT), or its status with ``subresource="status"``."""
        with self.txn():
            current = self._raw(rt, ns, name)
            if current is None:
                raise ApiError.not_found(rt, name)
            obj = self._check_body(rt, ns, body)
            meta = _meta(obj)
            if meta.get("name") and meta["name"] != name:
                raise ApiError.bad_request("the name of the object does not match the name on the URL")
            want_rv = meta.get("resourceVersion")
            if want_rv and want_rv != _meta(current).get("resourceVersion"):
                raise ApiError.conflict(rt, name)
            if subresource == "status":
                new = copy.deepcopy(current)
                if "status" in obj:
                    new["status"] = obj["status"]
                else:
                    new.pop("status", None)
            else:
                new = obj
                if rt.has_status:
                    if "status" in current:
                        new["status"] = copy.deepcopy(current["status"])
                    else:
                        new.pop("status", None)
            return self._finish_write(rt, current, new, manager=manager, subresource=subresource,
                                      dry_run=dry_run, version=version)

    def patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str = "",
        manager: str = "",
        dry_run: bool = False,
        version: str | None = None,
    ) -> Obj:
        """Patch an object: ``patch_type`` is ``json``, ``merge`` or ``strategic``."""
        with self.txn():
            current = self._raw(rt, ns, name)
            if current is None:
                raise ApiError.not_found(rt, name)
            try:
                if patch_type == "json":
                    patched = patching.json_patch(current, patch)
                elif patch_type == "strategic":
                    patched = patching.strategic_merge_patch(current, patch, keyed=rt.crd is None)
                else:
                    patched = patching.merge_patch(current, patch)
            except (patching.PatchError, ValueError, TypeError, KeyError, IndexError) as exc:
                raise ApiError(422, "Invalid", f"the patch could not be applied: {exc}") from exc
            if not isinstance(patched, dict):
                raise ApiError.bad_request("the patch did not produce an object")
            want_rv = _meta(patched).get("resourceVersion")
            if want_rv and want_rv != _meta(current).get("resourceVersion"):
                raise ApiError.conflict(rt, name)
            if subresource == "status":
                new = copy.deepcopy(current)
                if "status" in patched:
                    new["status"] = patched["status"]
            else:
                new = patched
                if rt.has_status:
                    if "status" in current:
                        new["status"] = copy.deepcopy(current["status"])
                    else:
                        new.pop("status", None)
            return self._finish_write(rt, current, new, manager=manager, subresource=subresource,
                                      dry_run=dry_run, version=version)

    # ---------------------------------------------------------------------------------- server-side apply

    def apply(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Obj,
        *,
        manager: str,
        force: bool = False,
        subresource: str = "",
        dry_run: bool = False,
        version: str | None = None,
    ) -> tuple[Obj, bool]:
        """Server-side apply; returns (object, created).

        Fields the manager applied before but no longer applies are removed unless another manager owns
        them; fields another manager owns with a different value are a 409 conflict unless ``force``.
        An apply that changes nothing leaves the object (and its resourceVersion) untouched.
        """
        if not manager:
            raise ApiError.bad_request("PATCH, apply: fieldManager is required for apply requests")
        with self.txn():
            applied = self._check_body(rt, ns, body)
            ameta = _meta(applied)
            if not body.get("apiVersion") or not body.get("kind"):
                raise ApiError.bad_request("apiVersion and kind must be set in an apply request")
            if ameta.get("name") and ameta["name"] != name:
                raise ApiError.bad_request("the name of the object does not match the name on the URL")
            ameta["name"] = name
            keyed = rt.crd is None
            status_only = subresource == "status"
            flat = patching.flatten(applied, keyed, include_status=status_only)
            if status_only:
                flat = {p: v for p, v in flat.items() if p[0] == "f:status"}
            elif rt.has_status:
                applied.pop("status", None)
            current = self._raw(rt, ns, name)
            if current is None:
                if status_only:
                    raise ApiError.not_found(rt, name)
                for k in ("uid", "resourceVersion", "managedFields", "creationTimestamp"):
                    ameta.pop(k, None)
                obj = self.create(rt, ns, applied, manager=manager, dry_run=dry_run, version=version,
                                  apply_paths=set(flat))
                return obj, True
            want_rv = ameta.get("resourceVersion")
            if want_rv and want_rv != _meta(current).get("resourceVersion"):
                raise ApiError.conflict(rt, name)
            for k in ("uid", "resourceVersion", "managedFields", "creationTimestamp", "generation"):
                ameta.pop(k, None)
            cur_flat = patching.flatten(current, keyed, include_status=True)
            entries = copy.deepcopy(_meta(current).get("managedFields") or [])
            mine: set[patching.Path] = set()
            others: list[tuple[Obj, set[patching.Path]]] = []
            for e in entries:
                paths = patching.decode_fields(e.get("fieldsV1"))
                if (e.get("manager") == manager and e.get("operation") == "Apply"
                        and e.get("subresource", "") == subresource):
                    mine = paths
                else:
                    others.append((e, paths))
            conflicts: list[tuple[str, patching.Path]] = []
            for path, value in flat.items():
                for e, paths in others:
                    if path in paths and cur_flat.get(path, _UNSET) != value:
                        conflicts.append((str(e.get("manager")), path))
            if conflicts and not force:
                causes = [{"reason": "FieldManagerConflict",
                           "message": f'conflict with "{m}"',
                           "field": patching.path_to_jsonpath(p)} for m, p in conflicts]
                lines = "\n".join(f"- {c['message']}: {c['field']}" for c in causes)
                raise ApiError(409, "Conflict", f"Apply failed with {len(conflicts)} conflict"
                               f"{'s' if len(conflicts) > 1 else ''}: {lines}",
                               {"name": name, "group": rt.group, "kind": rt.plural, "causes": causes})
            taken = {p for _, p in conflicts}
            new_others = []
            for e, paths in others:
                left = paths - taken
                if left:
                    new_others.append((e, left))
            other_paths: set[patching.Path] = set().union(*(p for _, p in new_others)) if new_others else set()
            new = copy.deepcopy(current)
            for path in sorted(mine - set(flat), key=len, reverse=True):
                if path in other_paths:
                    continue
                if path[-1] == "." and any(p[: len(path) - 1] == path[:-1] for p in other_paths):
                    continue
                patching.remove_path(new, path)
            if status_only:
                new["status"] = patching.apply_merge(new.get("status") or {}, applied.get("status") or {}, keyed,
                                                     "status")
            else:
                merged = patching.apply_merge(new, {k: v for k, v in applied.items() if k != "status"}, keyed)
                merged["status"] = new.get("status")
                if merged["status"] is None:
                    merged.pop("status")
                new = merged
            new_entries = []
            for e, paths in new_others:
                new_entries.append(dict(e, fieldsV1=patching.encode_fields(paths)))
            _meta(new)["managedFields"] = new_entries
            api_version = rt.api_version(version)
            prev = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"
                         and e.get("subresource", "") == subresource), None)
            if mine == set(flat):
                # Keep the previous entry verbatim (timestamp included) so a no-op stays a no-op.
                if prev is not None:
                    _meta(new)["managedFields"].append(prev)
            else:
                self._set_manager(new, manager, "Apply", subresource, api_version, set(flat))
            obj = self._finish_write(rt, current, new, manager=manager, subresource=subresource,
                                     dry_run=dry_run, version=version, track=False)
            return obj, False

    # --------------------------------------------------------------------------------------------- delete

    def delete(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        *,
        propagation: str | None = None,
        grace_seconds: int | None = None,
        preconditions: Obj | None = None,
        dry_run: bool = False,
        version: str | None = None,
    ) -> tuple[Obj, bool]:
        """Delete an object; returns (last state, gone). ``gone`` is False while finalizers or graceful pod
        termination keep it around (with ``deletionTimestamp`` set)."""
        with self.txn():
            current = self._raw(rt, ns, name)
            if current is None:
                raise ApiError.not_found(rt, name)
            cmeta = _meta(current)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != cmeta.get("uid"):
                raise ApiError.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                        f"UID in object meta: {cmeta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != cmeta.get("resourceVersion"):
                raise ApiError.conflict(rt, name, "Precondition failed: resourceVersion mismatch")
            if dry_run:
                return self._with_version(rt, current, version), True
            ns = cmeta.get("namespace", "") if rt.namespaced else ""
            policy = propagation or "Background"
            if rt.kind == "Namespace" and rt.group == "":
                return self._delete_namespace(current, version), False
            if cmeta.get("deletionTimestamp"):
                if rt.kind == "Pod" and grace_seconds == 0 and not cmeta.get("finalizers"):
                    return self._finalize_delete(rt, ns, name, policy), True
                return self._with_version(rt, current, version), False
            delay = 0.0
            if rt.kind == "Pod" and rt.group == "":
                delay = 0.0 if grace_seconds == 0 else float(self.deletion_delay(rt, current))
            if cmeta.get("finalizers") or delay > 0:
                new = copy.deepcopy(current)
                meta = _meta(new)
                meta["deletionTimestamp"] = now_rfc3339(delay)
                meta["deletionGracePeriodSeconds"] = int(delay + 0.999) if delay else 0
                if policy == "Foreground":
                    meta.setdefault("finalizers", []).append("foregroundDeletion")
                self._store(rt, new, current)
                if policy != "Orphan":
                    self._delete_dependents(cmeta.get("uid", ""), policy)
                return self._with_version(rt, new, version), False
            return self._finalize_delete(rt, ns, name, policy), True

    def _finalize_delete(self, rt: ResourceType, ns: str, name: str, policy: str) -> Obj:
        """Remove an object now and garbage-collect (or orphan) its dependents."""
        last = self._drop(rt, ns, name)
        if last is None:
            raise ApiError.not_found(rt, name)
        uid = _meta(last).get("uid", "")
        if policy == "Orphan":
            self._orphan_dependents(uid)
        else:
            self._delete_dependents(uid, policy)
        return last

    def remove_now(self, rt: ResourceType, ns: str, name: str) -> Obj | None:
        """Controller helper: drop an object immediately (finishing a graceful deletion); GC its dependents."""
        with self.txn():
            if self._raw(rt, ns, name) is None:
                return None
            return self._finalize_delete(rt, ns, name, "Background")

    def _dependents(self, uid: str) -> list[tuple[ResourceType, Obj]]:
        out = []
        for key, bucket in self._objects.items():
            rt = self._rt_by_key(key)
            if rt is None:
                continue
            for obj in bucket.values():
                if any(ref.get("uid") == uid for ref in _meta(obj).get("ownerReferences") or []):
                    out.append((rt, obj))
        return out

    def _rt_by_key(self, key: tuple[str, str]) -> ResourceType | None:
        return self.registry.by_key(key)

    def _delete_dependents(self, uid: str, policy: str) -> None:
        if not uid:
            return
        for rt, obj in self._dependents(uid):
            meta = _meta(obj)
            refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != uid]
            alive = [r for r in refs if self._uid_exists(r.get("uid", ""))]
            if alive:
                new = copy.deepcopy(obj)
                _meta(new)["ownerReferences"] = refs
                self._store(rt, new, obj)
                continue
            with suppress(ApiError):
                self.delete(rt, meta.get("namespace", ""), meta["name"], propagation=policy)

    def _uid_exists(self, uid: str) -> bool:
        return any(_meta(o).get("uid") == uid for b in self._objects.values() for o in b.values())

    def _orphan_dependents(self, uid: str) -> None:
        for rt, obj in self._dependents(uid):
            new = copy.deepcopy(obj)
            refs = [r for r in _meta(new).get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                _meta(new)["ownerReferences"] = refs
            else:
                _meta(new).pop("ownerReferences", None)
            self._store(rt, new, obj)

    def _delete_namespace(self, current: Obj, version: str | None) -> Obj:
        ns_rt = self.rt("Namespace")
        name = _meta(current)["name"]
        if not _meta(current).get("deletionTimestamp"):
            new = copy.deepcopy(current)
            _meta(new)["deletionTimestamp"] = now_rfc3339()
            new.setdefault("status", {})["phase"] = "Terminating"
            self._store(ns_rt, new, current)
        for key in list(self._objects):
            rt = self._rt_by_key(key)
            if rt is None or not rt.namespaced:
                continue
            for (ons, oname) in list(self._bucket(rt)):
                if ons == name:
                    with suppress(ApiError):
                        self.delete(rt, ons, oname)
        self.finish_namespace(name)
        obj = self._raw(ns_rt, "", name)
        return self._with_version(ns_rt, obj if obj is not None else current, version)

    def finish_namespace(self, name: str) -> bool:
        """Remove a terminating namespace once nothing is left in it; True when it is gone."""
        with self.txn():
            ns_rt = self.rt("Namespace")
            obj = self._raw(ns_rt, "", name)
            if obj is None:
                return True
            if not _meta(obj).get("deletionTimestamp"):
                return False
            for key, bucket in self._objects.items():
                rt = self._rt_by_key(key)
                if rt is not None and rt.namespaced and any(ons == name for ons, _ in bucket):
                    return False
            self._drop(ns_rt, "", name)
            return True

    # -------------------------------------------------------------------------------- internal (controllers)

    def put(self, obj: Obj, *, version: str | None = None) -> Obj:
        """Controller/test helper: create or replace an object as-is (status included), bypassing checks
        other than defaulting; writes nothing when the object is unchanged."""
        rt = self.registry.for_object(obj)
        if rt is None:
            raise KeyError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}")
        meta = _meta(obj)
        ns = meta.get("namespace", "default") if rt.namespaced else ""
        with self.txn():
            current = self._raw(rt, ns, meta["name"])
            if current is None:
                return self.create(rt, ns, obj, internal=True, version=version)
            new = copy.deepcopy(obj)
            return self._finish_write(rt, current, new, manager="", subresource="", dry_run=False,
                                      version=version, track=False)

    def write(self, rt: ResourceType, current: Obj, new: Obj) -> bool:
        """Controller helper: store ``new`` over ``current`` (same object) if it differs; True if written."""
        with self.txn():
            stored = self._raw(rt, _meta(current).get("namespace", ""), _meta(current)["name"])
            if stored is None:
                return False
            if _strip_volatile(new) == _strip_volatile(stored):
                return False
            obj = copy.deepcopy(new)
            _meta(obj)["resourceVersion"] = _meta(stored).get("resourceVersion")
            self._store(rt, obj, stored)
            return True

    def raw_items(self, rt: ResourceType, ns: str | None = None) -> list[Obj]:
        """Controller helper: the stored dicts themselves (do not mutate), under the caller's lock."""
        return [o for (ons, _), o in sorted(self._bucket(rt).items()) if ns is None or ons == ns]

    def raw(self, rt: ResourceType, ns: str, name: str) -> Obj | None:
        """Controller helper: the stored dict itself (do not mutate), or None."""
        return self._raw(rt, ns, name)

    # -------------------------------------------------------------------------------------- side effects

    def _side_effects_before(self, rt: ResourceType, obj: Obj, dry_run: bool = False) -> None:
        """Validate a CRD and fill its status; unless ``dry_run``, serve the kind it defines right away."""
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            new_rt = crd_resource_types(obj)
            if new_rt is None:
                raise ApiError.invalid(rt, _meta(obj).get("name", ""), "spec.names and a served version are "
                                       "required", "spec")
            expected = f"{new_rt.plural}.{new_rt.group}"
            if _meta(obj).get("name") != expected:
                raise ApiError.invalid(rt, _meta(obj).get("name", ""), f'must be spec.names.plural+"."+spec.group'
                                       f" ({expected})", "metadata.name")
            if not dry_run:
                self.registry.register(new_rt)
            names = (obj.get("spec") or {}).get("names") or {}
            accepted = dict(names)
            accepted.setdefault("singular", new_rt.singular)
            accepted.setdefault("listKind", f"{new_rt.kind}List")
            stored = [v["name"] for v in (obj.get("spec") or {}).get("versions") or [] if v.get("storage")]
            ts = now_rfc3339()
            obj["status"] = {
                "acceptedNames": accepted,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": ts},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": ts},
                ],
                "storedVersions": stored or [new_rt.preferred_version],
            }
            old_status = (self._raw(rt, "", _meta(obj)["name"]) or {}).get("status")
            if old_status and [c.get("type") for c in old_status.get("conditions", [])] == ["NamesAccepted",
                                                                                            "Established"]:
                # Keep transition times stable so re-applying an unchanged CRD is a no-op.
                obj["status"]["conditions"] = old_status["conditions"]

    def _crd_removed(self, crd: Obj) -> None:
        rt = crd_resource_types(crd)
        if rt is None:
            return
        for (ons, oname) in list(self._bucket(rt)):
            self._drop(rt, ons, oname)
        self._objects.pop(rt.key, None)
        self.registry.unregister(rt.key)

    # ------------------------------------------------------------------------------------------- scale

    def get_scale(self, rt: ResourceType, ns: str, name: str) -> Obj:
        """The ``autoscaling/v1`` Scale of a scalable object."""
        with self.lock:
            obj = self._raw(rt, ns, name)
            if obj is None:
                raise ApiError.not_found(rt, name)
            spec_path, status_path, selector_path = self._scale_paths(rt)
            selector = _dig(obj, selector_path) if selector_path else None
            if isinstance(selector, dict):
                selector = selector_object_to_string(selector)
            meta = _meta(obj)
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": int(_dig(obj, spec_path) or 0)},
                "status": {"replicas": int(_dig(obj, status_path) or 0), "selector": selector or ""},
            }

    def _scale_paths(self, rt: ResourceType) -> tuple[str, str, str]:
        if rt.scale_paths is not None:
            return rt.scale_paths
        return (".spec.replicas", ".status.replicas", ".spec.selector")

    def set_scale(
        self, rt: ResourceType, ns: str, name: str, scale: Obj, *, manager: str = "", dry_run: bool = False
    ) -> Obj:
        """Write a Scale back to its object (``spec.replicas``)."""
        with self.txn():
            current = self._raw(rt, ns, name)
            if current is None:
                raise ApiError.not_found(rt, name)
            want_rv = _meta(scale).get("resourceVersion")
            if want_rv and want_rv != _meta(current).get("resourceVersion"):
                raise ApiError.conflict(rt, name)
            replicas = (scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError.invalid(rt, name, "must be greater than or equal to 0", "spec.replicas")
            new = copy.deepcopy(current)
            _put_path(new, self._scale_paths(rt)[0], replicas)
            self._finish_write(rt, current, new, manager=manager, subresource="scale", dry_run=dry_run,
                               version=None)
            return self.get_scale(rt, ns, name)

    # --------------------------------------------------------------------------------------------- watch

    def watch(
        self,
        rt: ResourceType,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        send_initial: bool | None = None,
        bookmarks: bool = False,
        timeout: float = 1800.0,
        version: str | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Obj]:
        """Yield watch events (``{"type", "object"}``) until ``timeout``, ``stop()`` or :meth:`close`.

        Without a resourceVersion (or with "0"), or with ``send_initial``, synthetic ADDED events for the
        current objects come first; ``send_initial`` then ends them with the ``k8s.io/initial-events-end``
        bookmark that client-go's watch-list mode waits for.
        """
        try:
            field_pred = parse_field_selector(field_selector)
            labels_match(label_selector, {})
        except SelectorError as exc:
            raise ApiError.bad_request(str(exc)) from exc

        def matches(obj: Obj | None) -> bool:
            if obj is None:
                return False
            meta = obj.get("metadata") or {}
            if ns and meta.get("namespace", "") != ns:
                return False
            return labels_match(label_selector, meta.get("labels")) and field_pred(obj)

        initial: list[Obj] = []
        with self.lock:
            rv_given = resource_version not in (None, "", "0")
            if rv_given:
                try:
                    last = int(str(resource_version))
                except ValueError as exc:
                    raise ApiError.bad_request(f"invalid resourceVersion {resource_version!r}") from exc
                if self._events and last < self._events[0].rv - 1:
                    raise ApiError(410, "Expired", f"too old resource version: {last} ({self._events[0].rv})")
            else:
                last = self._rv
            if send_initial or not rv_given:
                initial = [self._with_version(rt, o, version) for o in self.raw_items(rt, ns or None)
                           if matches(o)]
                last = self._rv
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        if send_initial:
            yield {"type": "BOOKMARK", "object": {
                "kind": rt.kind, "apiVersion": rt.api_version(version),
                "metadata": {"resourceVersion": str(last),
                             "annotations": {"k8s.io/initial-events-end": "true"}}}}
        deadline = time.monotonic() + timeout
        while not stop() and not self._closed and time.monotonic() < deadline:
            batch: list[Obj] = []
            with self.lock:
                idx = bisect.bisect_right(self._events, last, key=lambda c: c.rv)
                pending = self._events[idx:]
                if not pending:
                    self.cond.wait(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                    continue
                for ch in pending:
                    last = ch.rv
                    if ch.rt.key != rt.key:
                        continue
                    was, now = matches(ch.old), matches(ch.new)
                    if ch.type == "DELETED":
                        if was or now:
                            batch.append({"type": "DELETED", "object": self._with_version(rt, ch.new, version)})
                    elif now and (ch.type == "ADDED" or not was):
                        batch.append({"type": "ADDED", "object": self._with_version(rt, ch.new, version)})
                    elif now:
                        batch.append({"type": "MODIFIED", "object": self._with_version(rt, ch.new, version)})
                    elif was:
                        batch.append({"type": "DELETED", "object": self._with_version(rt, ch.new, version)})
            yield from batch


def _dig(obj: Any, dotted: str) -> Any:
    cur = obj
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _put_path(obj: Obj, dotted: str, value: Any) -> None:
    parts = [p for p in dotted.split(".") if p]
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def short_json(obj: Any) -> str:
    """Compact JSON (for logs and hashing)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


__all__ = ["ApiError", "Change", "Obj", "Store", "now_rfc3339", "random_suffix", "short_json"]
