"""Read-only helpers shared by ``doit drift`` and ``doit verify``: reaching the cluster, reading live objects,
and comparing a rendered object with its live counterpart.

Nothing here writes to the cluster, the hosts or the build directory. The kubernetes client is imported only
through ``homelab.kube.connect`` (lazily): a sandbox run without a Kubernetes API never loads it.

Comparison rule (``compare``): the live object is *projected onto the rendered object's keys*. Only fields we
set are compared; everything the API server adds (status, defaults, managedFields, helm's annotations, extra
labels) is ignored because it is not in the rendered object. Decisions, each for a stated reason:

- a rendered ``null`` is skipped (the API server drops it), and a rendered ``{}``/``[]`` matches an absent field
  (the API server omits empty collections);
- a rendered string holding a ``<secret:NAME>`` reference is skipped: the live value is the secret itself, which
  must never be compared into a report, let alone printed;
- ``Secret`` ``data``/``stringData`` are never compared for the same reason (the live values are dropped right
  after the GET, before any comparison);
- annotations ``checksum/*`` are skipped: charts compute them over templates that hold secrets, so the secret-free
  rendering always differs (the content they digest is compared directly where it is not secret);
- ``metadata.namespace`` is not compared (it selected the object);
- scalars that differ only in representation are equal: ``1`` and ``"1"``, ``500m`` and ``0.5``, ``1Gi`` and
  ``1024Mi`` (the API server normalizes quantities).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from homelab import redact
from homelab.project import Project

SECRET_MARK = "<secret:"
HOOK_ANNOTATION = "helm.sh/hook"


# -- reaching the cluster -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterAccess:
    """The kubeconfig to read the cluster with, or why there is none (``reason``; not an error in the sandbox)."""

    kubeconfig: Path | None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.kubeconfig is not None


def cluster_access(project: Project) -> ClusterAccess:
    """Where the cluster is: ``HOMELAB_KUBECONFIG``, else the kubeconfig the k3s stage fetched.

    The sandbox has no Kubernetes API (its k3s is a stand-in), so there the cluster is checked only when
    ``HOMELAB_KUBECONFIG`` names one (tests point it at the fake API server), exactly as release tasks apply.
    """
    from homelab.runstage import kubeconfig_path

    if project.layout.env == "sandbox" and "HOMELAB_KUBECONFIG" not in os.environ:
        return ClusterAccess(None, "no Kubernetes API (the sandbox's k3s is a stand-in; HOMELAB_KUBECONFIG=... "
                                   "names a cluster to check)")
    path = Path(kubeconfig_path(project))
    if not path.exists():
        return ClusterAccess(None, f"no Kubernetes API: no kubeconfig at {project.layout.rel(path)} (converge the "
                                   "k3s stage first or set HOMELAB_KUBECONFIG)")
    return ClusterAccess(path)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a kubernetes client exception, if it has one."""
    status = getattr(exc, "status", None)
    return int(status) if isinstance(status, int) else None


def describe(exc: BaseException) -> str:
    """One redacted line for a client exception (the API's own message where it sent one)."""
    from homelab import kube

    return kube.describe_error(exc)


def resource_for(dyn: Any, api_version: str, kind: str) -> Any | None:
    """The API resource serving (apiVersion, kind), or None when the cluster does not serve it."""
    from homelab import kube

    return kube._resource(dyn, api_version, kind)


def get_live(dyn: Any, obj: dict[str, Any], default_namespace: str) -> tuple[str, dict[str, Any] | None]:
    """GET the live counterpart of a rendered object: ("ok", live), ("missing", None) or ("unserved", None).

    A namespaced object without a namespace lands in ``default_namespace``, as helm installs it. A Secret's
    ``data``/``stringData`` are dropped here, before anything can compare or print them.
    """
    resource = resource_for(dyn, str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if resource is None:
        return "unserved", None
    meta = obj.get("metadata") or {}
    namespace = (str(meta.get("namespace") or default_namespace)) if resource.namespaced else None
    try:
        live = resource.get(name=str(meta.get("name", "")), namespace=namespace)
    except Exception as exc:
        if status_of(exc) == 404:
            return "missing", None
        raise
    data: dict[str, Any] = live.to_dict() if hasattr(live, "to_dict") else dict(live)
    if data.get("kind") == "Secret":
        data.pop("data", None)
        data.pop("stringData", None)
    return "ok", data


def object_ref(obj: dict[str, Any], default_namespace: str, namespaced: bool = True) -> str:
    """``Kind/namespace/name`` (``Kind/name`` when cluster-scoped), as drift lines name objects."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    kind = str(obj.get("kind", ""))
    if not namespaced:
        return f"{kind}/{name}"
    return f"{kind}/{meta.get('namespace') or default_namespace}/{name}"


def is_hook(obj: dict[str, Any]) -> bool:
    """A helm hook: created around install/upgrade and often deleted by its own policy, so not a managed object."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return isinstance(annotations, dict) and HOOK_ANNOTATION in annotations


# -- comparing ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldDiff:
    """One field we set whose live value differs; ``have`` is ABSENT when the live object lacks the field."""

    path: str
    want: Any
    have: Any


class _Absent:
    def __repr__(self) -> str:
        return "absent"


ABSENT: Any = _Absent()

_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SCALE = {None: Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(1000),
          "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
          "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
          "Pi": Decimal(2**50), "Ei": Decimal(2**60)}


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    found = _QUANTITY.match(str(value).strip())
    if not found:
        return None
    try:
        return Decimal(found.group(1)) * _SCALE[found.group(2)]
    except InvalidOperation:
        return None


def same_scalar(want: Any, have: Any) -> bool:
    """Equal, or equal after the API server's normalizations (``1`` vs ``"1"``, quantities)."""
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have  # True == 1 in Python, never in Kubernetes
    if want == have:
        return True
    if str(want) == str(have):
        return True
    a, b = _quantity(want), _quantity(have)
    return a is not None and a == b


def _key(path: str, key: str) -> str:
    # label and annotation keys hold dots and slashes: bracket them so the path stays unambiguous
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]"


def _skipped_path(kind: str, path: str) -> bool:
    if path == "metadata.namespace":
        return True
    if kind == "Secret" and (path in ("data", "stringData")):
        return True
    return bool(re.search(r"annotations\[checksum/[^\]]*\]$", path))


def compare(want: Any, have: Any, *, kind: str = "", path: str = "") -> list[FieldDiff]:
    """The fields of ``want`` (a rendered object or part of one) whose value in ``have`` differs."""
    if path and _skipped_path(kind, path):
        return []
    if want is None:
        return []
    if isinstance(want, str) and SECRET_MARK in want:
        return []
    if isinstance(want, dict):
        if not want and (have is ABSENT or have is None or have == {}):
            return []
        if not isinstance(have, dict):
            return [FieldDiff(path, want, have)]
        out: list[FieldDiff] = []
        for key in want:
            out += compare(want[key], have.get(str(key), ABSENT), kind=kind, path=_key(path, str(key)))
        return out
    if isinstance(want, list):
        if not want and (have is ABSENT or have is None or have == []):
            return []
        if not isinstance(have, list) or len(have) != len(want):
            return [FieldDiff(path, want, have)]
        out = []
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            out += compare(w, h, kind=kind, path=f"{path}[{i}]")
        return out
    if have is ABSENT or not same_scalar(want, have):
        return [FieldDiff(path, want, have)]
    return []


def show(value: Any) -> str:
    """A short, printable form of a value: long or multi-line text as its length and digest, never in full."""
    if value is ABSENT:
        return "absent"
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    elif isinstance(value, str):
        text = value if value and re.fullmatch(r"[^\s\"',]{1,60}", value) else json.dumps(value)
    else:
        text = json.dumps(value, default=str)
    if len(text) > 60 or "\n" in text:
        short = hashlib.sha256(text.encode()).hexdigest()[:12]
        return f"<{len(text)} chars, sha256 {short}>"
    return redact.redact(text)
