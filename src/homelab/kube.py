"""Kubernetes driver for a release's extra manifests: server-side apply, pruning, readiness waits.

Helm tracks the objects of a chart; the objects of ``releases/<name>/manifests/`` are applied here with
server-side apply (field manager ``homelab``, conflicts forced: the repository is the source of truth)
and carry the label ``homelab.dev/release: <name>``. That label is how ``prune`` finds objects a release
applied before but no longer renders. Listing every kind in a cluster is slow, so callers pass the kinds
the release ever applied (recorded in its stamp as ``applied_kinds``). Namespaces, CRDs and volumes are
never deleted this way (that would delete what they hold): pruning names them and leaves them.

Webhooks (the MetalLB / cert-manager race): applying an IPAddressPool or a ClusterIssuer right after
the chart that serves its admission webhook fails while the webhook's pod is not ready ("failed calling
webhook ... connection refused"). Nothing in a release declares this; it is derived from the cluster:
the webhook configurations whose rules cover the kinds about to be applied name a Service, and the
apply waits until a pod behind that Service is Ready. The few seconds in which the pod is Ready but the
endpoint or the CA bundle is not yet in place are covered by retrying an apply that failed calling a
webhook, until the same deadline.

The kubernetes client is imported lazily (about 0.5 s): a run that applies nothing never loads it.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homelab import redact

FIELD_MANAGER = "homelab"
RELEASE_LABEL = "homelab.dev/release"  # the same label homelab.render puts on extra manifests
POLL_SECONDS = 0.5

ObjectKey = tuple[str, str, str, str]  # (apiVersion, kind, namespace or "" when cluster-scoped, name)
Identity = tuple[str, str, str, str]  # (API group, kind, namespace, name): one object whatever its API version

# apply order within a release: what others refer to first (as helm and kubectl order); the rest keep file order
_ORDER = ("Namespace", "CustomResourceDefinition", "PriorityClass", "StorageClass", "RuntimeClass", "IngressClass",
          "ServiceAccount", "Secret", "ConfigMap", "PersistentVolume", "PersistentVolumeClaim", "ClusterRole",
          "ClusterRoleBinding", "Role", "RoleBinding", "Service")
# kinds whose deletion takes data with it (every object in a namespace, every object of a CRD, a volume's
# contents): pruning reports them instead of deleting them
NEVER_PRUNED = frozenset({"Namespace", "CustomResourceDefinition", "PersistentVolumeClaim", "PersistentVolume"})
_WEBHOOK_KINDS = (("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
                  ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"))


class KubeError(Exception):
    """The cluster refused or did not answer; the message is one redacted line."""


@dataclass(frozen=True)
class Applied:
    """One object after server-side apply: ``action`` is created, configured or unchanged."""

    key: ObjectKey
    action: str


@dataclass(frozen=True)
class WebhookService:
    """A Service serving an admission webhook that covers some of the objects about to be applied."""

    namespace: str
    name: str
    configuration: str  # e.g. "ValidatingWebhookConfiguration metallb-webhook-configuration"
    kinds: tuple[str, ...]  # the kinds it admits among the objects


@dataclass
class ApplyReport:
    """What ``apply_objects`` did; ``messages`` are one line each."""

    applied: list[Applied] = field(default_factory=list)
    pruned: list[ObjectKey] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


# -- keys and labels ---------------------------------------------------------------------------------------

def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def kind_ref(obj: dict[str, Any]) -> str:
    """``apiVersion/Kind`` as in ``applied_kinds`` (``v1/ConfigMap``, ``metallb.io/v1beta1/IPAddressPool``)."""
    return f"{obj['apiVersion']}/{obj['kind']}"


def split_kind_ref(ref: str) -> tuple[str, str]:
    api_version, _, kind = ref.rpartition("/")
    return api_version, kind


def object_key(obj: dict[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (str(obj["apiVersion"]), str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))


def key_text(key: ObjectKey) -> str:
    """``Kind ns/name`` (``Kind name`` when cluster-scoped), for messages and stamps."""
    _, kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def same_object(key: ObjectKey) -> Identity:
    """Identity regardless of API version: an object served as v1beta1 and v1 is one object."""
    api_version, kind, namespace, name = key
    return group_of(api_version), kind, namespace, name


def labelled(obj: dict[str, Any], release: str) -> dict[str, Any]:
    """A copy of ``obj`` carrying ``homelab.dev/release: <release>``."""
    out = copy.deepcopy(obj)  # not a JSON round trip: YAML may hold dates
    meta = out.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), RELEASE_LABEL: release}
    return out


def apply_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {kind: i for i, kind in enumerate(_ORDER)}
    return sorted(objects, key=lambda o: rank.get(str(o.get("kind")), len(_ORDER)))


# -- the client ------------------------------------------------------------------------------------------

_CLIENTS: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


def connect(kubeconfig: Path) -> Any:
    """A ``kubernetes.dynamic.DynamicClient`` for the kubeconfig (one per file version, per process).

    Discovery is cached next to the kubeconfig (``.<name>.discovery.json``); a kind missing from the
    cache (a CRD installed since) makes the client re-discover by itself.
    """
    path = Path(kubeconfig)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        raise KubeError(f"no kubeconfig at {path}") from None
    with _LOCK:
        cached = _CLIENTS.get((str(path), stamp))
        if cached is not None:
            return cached
        from kubernetes import config
        from kubernetes.dynamic import DynamicClient

        try:
            api = config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]
            dyn = DynamicClient(api, cache_file=str(path.with_name(f".{path.name}.discovery.json")))  # type: ignore[no-untyped-call]
        except Exception as exc:  # config errors, connection refused during discovery
            raise KubeError(f"cannot reach the cluster of {path}: {describe_error(exc)}") from None
        _CLIENTS[(str(path), stamp)] = dyn
        return dyn


def describe_error(exc: BaseException) -> str:
    """One redacted line for a Kubernetes API error: the API's own message when it sent one."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return redact.redact(" ".join(str(message).split()))
    status = getattr(exc, "status", None)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact.redact(f"HTTP {status}: {text[:300]}" if status else text[:300])


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return int(status) if isinstance(status, int) else None


def _resource(dyn: Any, api_version: str, kind: str) -> Any | None:
    """The API resource for (apiVersion, kind), or None when the cluster does not serve it."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    try:
        return dyn.resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError:
        return None


def _builtin(dyn: Any, api_version: str, kind: str) -> Any:
    """A built-in kind every cluster serves."""
    resource = _resource(dyn, api_version, kind)
    if resource is None:
        raise KubeError(f"the cluster serves no {kind} in {api_version}")
    return resource


def _resource_or_wait(dyn: Any, api_version: str, kind: str, deadline: float | None) -> Any:
    """Like ``_resource`` but, with a deadline (its CRD was just applied), waits for the API to appear."""
    while True:
        resource = _resource(dyn, api_version, kind)
        if resource is not None:
            return resource
        if deadline is None or time.monotonic() >= deadline:
            raise KubeError(f"the cluster serves no {kind} in {api_version}: the release that installs its "
                            "CRD must be applied first (add it to needs:)")
        time.sleep(POLL_SECONDS)


def _items(result: Any) -> list[dict[str, Any]]:
    data = result.to_dict() if hasattr(result, "to_dict") else result
    items = data.get("items") if isinstance(data, dict) else None
    return [i for i in items or [] if isinstance(i, dict)]


# -- server-side apply -----------------------------------------------------------------------------------

def _webhook_failure(exc: BaseException) -> bool:
    text = describe_error(exc).lower()
    return _status(exc) in (500, 502, 503, 504) and ("webhook" in text or "connection refused" in text
                                                      or "no endpoints" in text or "x509" in text)


def _ensure_namespaces(dyn: Any, names: Iterable[str], report: ApplyReport, release: str) -> None:
    namespaces = _builtin(dyn, "v1", "Namespace")
    for name in sorted(set(names)):
        try:
            namespaces.get(name=name)
            continue
        except Exception as exc:
            if _status(exc) != 404:
                raise KubeError(f"cannot read namespace {name}: {describe_error(exc)}") from None
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        try:
            namespaces.server_side_apply(body=body, name=name, field_manager=FIELD_MANAGER, force_conflicts=True)
        except Exception as exc:
            raise KubeError(f"cannot create namespace {name}: {describe_error(exc)}") from None
        # unlabelled on purpose: a namespace is never pruned with a release, it may hold anything
        report.messages.append(f"created namespace {name}: {release}'s manifests live there")


def list_labelled(dyn: Any, release: str, kinds: Iterable[str]) -> dict[Identity, tuple[ObjectKey, str]]:
    """Objects carrying ``homelab.dev/release=<release>`` of the given kinds: identity -> (key, resourceVersion).

    Kinds the cluster no longer serves (their CRD was removed) are skipped: their objects went with it.
    """
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    found: dict[Identity, tuple[ObjectKey, str]] = {}
    for ref in sorted(set(kinds)):
        api_version, kind = split_kind_ref(ref)
        resource = _resource(dyn, api_version, kind)
        if resource is None:
            continue
        try:
            listed = resource.get(label_selector=f"{RELEASE_LABEL}={release}")
        except ResourceNotFoundError:
            continue
        except Exception as exc:
            if _status(exc) == 404:
                continue
            raise KubeError(f"cannot list {kind} labelled {RELEASE_LABEL}={release}: {describe_error(exc)}") from None
        for item in _items(listed):
            meta = item.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            namespace = str(meta.get("namespace") or "") if resource.namespaced else ""
            key: ObjectKey = (api_version, kind, namespace, str(meta.get("name", "")))
            found[same_object(key)] = (key, str(meta.get("resourceVersion", "")))
    return found


def apply_objects(objects: list[dict[str, Any]], kubeconfig: Path, *, release: str,
                  previous_kinds: Iterable[str] = (), prune: bool = True, timeout: float = 300.0,
                  wait_webhooks: bool = True) -> ApplyReport:
    """Server-side apply ``objects`` (labelled for ``release``), then delete the release's labelled objects
    of ``previous_kinds`` and the current kinds that are no longer among them.

    Order: namespaces the objects need (created unlabelled when missing), webhook readiness for the kinds
    about to be applied, the objects (CRDs and other referenced kinds first), then pruning. Raises
    KubeError with one line on the first failure; objects applied before it stay applied.
    """
    dyn = connect(kubeconfig)
    deadline = time.monotonic() + timeout
    report = ApplyReport()
    wanted = [labelled(o, release) for o in apply_order(objects)]
    kinds = {kind_ref(o) for o in wanted}
    existing = list_labelled(dyn, release, kinds | set(previous_kinds))
    # kinds whose CRD is in this batch are looked up after the CRD is applied; their scope comes from the CRD
    crd_scope = {(str(o.get("spec", {}).get("group", "")), str(o.get("spec", {}).get("names", {}).get("kind", ""))):
                 o.get("spec", {}).get("scope", "Namespaced") == "Namespaced"
                 for o in wanted if o.get("kind") == "CustomResourceDefinition"}
    resources: dict[tuple[str, str], Any] = {}
    namespaces: set[str] = set()
    for obj in wanted:
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        if (group_of(api_version), kind) in crd_scope:
            namespaced = crd_scope[(group_of(api_version), kind)]
        else:
            if (api_version, kind) not in resources:
                resources[(api_version, kind)] = _resource_or_wait(dyn, api_version, kind, None)
            namespaced = bool(resources[(api_version, kind)].namespaced)
        if namespaced and obj["metadata"].get("namespace"):
            namespaces.add(str(obj["metadata"]["namespace"]))
    namespaces -= {str(o["metadata"]["name"]) for o in wanted if o["kind"] == "Namespace"}
    _ensure_namespaces(dyn, namespaces, report, release)
    if wait_webhooks:
        for hook in webhook_services(dyn, wanted):
            message, waited = _await_webhook(hook.name, hook.namespace, kubeconfig,
                                             max(1.0, deadline - time.monotonic()), hook)
            if waited >= POLL_SECONDS:  # a webhook that was ready all along is not news
                report.messages.append(message)
    for obj in wanted:
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        resource = resources.get((api_version, kind))
        if resource is None:  # a kind whose CRD is part of this batch: wait for the API to appear
            resource = _resource_or_wait(dyn, api_version, kind, deadline)
            resources[(api_version, kind)] = resource
        report.applied.append(_apply_one(dyn, resource, obj, existing, deadline, report))
    if prune:
        keep = {same_object(a.key) for a in report.applied}
        pruned, messages = _prune_listed(dyn, release, existing, keep)
        report.pruned += pruned
        report.messages += messages
    return report


def _apply_one(dyn: Any, resource: Any, obj: dict[str, Any], existing: dict[tuple[str, str, str, str],
               tuple[ObjectKey, str]], deadline: float, report: ApplyReport) -> Applied:
    body = copy.deepcopy(obj)
    meta = body["metadata"]
    if not resource.namespaced:
        meta.pop("namespace", None)
    namespace = meta.get("namespace") if resource.namespaced else None
    key: ObjectKey = (str(body["apiVersion"]), str(body["kind"]), str(namespace or ""), str(meta["name"]))
    delay = 1.0
    while True:
        try:
            result = resource.server_side_apply(body=body, name=meta["name"], namespace=namespace,
                                                field_manager=FIELD_MANAGER, force_conflicts=True)
            break
        except Exception as exc:
            if _webhook_failure(exc) and time.monotonic() + delay < deadline:
                report.messages.append(f"{key_text(key)}: admission webhook not answering yet "
                                       f"({describe_error(exc)[:160]}); retrying in {delay:.0f}s")
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
                continue
            raise KubeError(f"server-side apply of {key_text(key)} failed: {describe_error(exc)}") from None
    version = str((result.to_dict().get("metadata") or {}).get("resourceVersion", ""))
    before = existing.get(same_object(key))
    action = "created" if before is None else "unchanged" if before[1] == version else "configured"
    if action != "unchanged":
        report.messages.append(f"{action} {key_text(key)}")
    return Applied(key, action)


def delete(dyn: Any, key: ObjectKey) -> None:
    """Delete one object (background propagation); already gone is fine."""
    api_version, kind, namespace, name = key
    resource = _resource(dyn, api_version, kind)
    if resource is None:
        return
    try:
        resource.delete(name=name, namespace=namespace or None, propagation_policy="Background")
    except Exception as exc:
        if _status(exc) != 404:
            raise KubeError(f"cannot delete {key_text(key)}: {describe_error(exc)}") from None


def _prune_listed(dyn: Any, release: str, listed: dict[Identity, tuple[ObjectKey, str]],
                  keep: set[Identity]) -> tuple[list[ObjectKey], list[str]]:
    pruned: list[ObjectKey] = []
    messages: list[str] = []
    for ident, (key, _) in sorted(listed.items()):
        if ident in keep:
            continue
        if key[1] in NEVER_PRUNED:
            messages.append(f"kept {key_text(key)}: no longer in {release}'s manifests, but deleting a {key[1]} "
                            "deletes what it holds; delete it by hand if that is intended")
            continue
        delete(dyn, key)
        pruned.append(key)
        messages.append(f"pruned {key_text(key)}: no longer in {release}'s manifests")
    return pruned, messages


def prune(release: str, keep: set[ObjectKey], kinds: Iterable[str], kubeconfig: Path) -> list[ObjectKey]:
    """Delete objects labelled ``homelab.dev/release=<release>`` of ``kinds`` that are not in ``keep``
    (except NEVER_PRUNED kinds); returns what was deleted."""
    dyn = connect(kubeconfig)
    return _prune_listed(dyn, release, list_labelled(dyn, release, kinds), {same_object(k) for k in keep})[0]


# -- waiting ---------------------------------------------------------------------------------------------

def _rule_covers(rule: dict[str, Any], group: str, version: str, plural: str) -> bool:
    def has(values: Any, item: str) -> bool:
        return isinstance(values, list) and ("*" in values or item in values)

    operations = rule.get("operations") or ["*"]
    if not any(op in ("*", "CREATE", "UPDATE") for op in operations):
        return False
    resources = [r for r in rule.get("resources") or [] if isinstance(r, str)]
    return (has(rule.get("apiGroups"), group) and has(rule.get("apiVersions"), version)
            and any(r in ("*", "*/*", plural) for r in resources))


def webhook_services(dyn: Any, objects: list[dict[str, Any]]) -> list[WebhookService]:
    """Services of the admission webhooks (failurePolicy Fail) that admit any of ``objects``."""
    targets: dict[tuple[str, str, str], str] = {}  # (group, version, plural) -> kind
    for obj in objects:
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        resource = _resource(dyn, api_version, kind)
        if resource is not None:
            version = api_version.rpartition("/")[2]
            targets[(group_of(api_version), version, str(resource.name))] = kind
    if not targets:
        return []
    found: dict[tuple[str, str], WebhookService] = {}
    for api_version, config_kind in _WEBHOOK_KINDS:
        resource = _resource(dyn, api_version, config_kind)
        if resource is None:
            continue
        try:
            configs = _items(resource.get())
        except Exception as exc:
            raise KubeError(f"cannot list {config_kind}s: {describe_error(exc)}") from None
        for config in configs:
            config_name = f"{config_kind} {(config.get('metadata') or {}).get('name', '')}"
            for hook in config.get("webhooks") or []:
                service = (hook.get("clientConfig") or {}).get("service")
                if not service or hook.get("failurePolicy", "Fail") == "Ignore":
                    continue  # a URL webhook is outside the cluster; an ignored failure cannot block us
                kinds = sorted({kind for (g, v, p), kind in targets.items()
                                if any(_rule_covers(r, g, v, p) for r in hook.get("rules") or [])})
                if kinds:
                    where = (str(service.get("namespace", "")), str(service.get("name", "")))
                    prior = found.get(where)
                    merged = tuple(sorted(set(kinds) | set(prior.kinds if prior else ())))
                    found[where] = WebhookService(where[0], where[1], prior.configuration if prior else config_name,
                                                  merged)
    return [found[k] for k in sorted(found)]


def _pod_ready(pod: dict[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _selector(labels: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _workloads_behind(dyn: Any, namespace: str, selector: dict[str, Any]) -> list[str]:
    """``Deployment name r/n ready`` for workloads whose pod template matches the Service selector."""
    out = []
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        resource = _resource(dyn, "apps/v1", kind)
        if resource is None:
            continue
        try:
            items = _items(resource.get(namespace=namespace))
        except Exception:
            continue
        for item in items:
            labels = ((item.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                out.append(f"{kind} {item['metadata']['name']} {_readiness(kind, item)[1]}")
    return out


def _poll(check: Callable[[], tuple[bool, str]], timeout: float) -> tuple[bool, str, float]:
    started = time.monotonic()
    while True:
        done, detail = check()
        waited = time.monotonic() - started
        if done or waited >= timeout:
            return done, detail, waited
        time.sleep(min(POLL_SECONDS, max(0.0, timeout - waited)))


def wait_for_webhook(service: str, namespace: str, kubeconfig: Path, timeout: float,
                     *, why: WebhookService | None = None) -> str:
    """Wait until a pod behind the webhook Service is Ready; one line, or KubeError on timeout."""
    return _await_webhook(service, namespace, kubeconfig, timeout, why)[0]


def _await_webhook(service: str, namespace: str, kubeconfig: Path, timeout: float,
                   why: WebhookService | None) -> tuple[str, float]:
    dyn = connect(kubeconfig)
    services = _builtin(dyn, "v1", "Service")
    pods = _builtin(dyn, "v1", "Pod")
    selector: dict[str, Any] = {}

    def check() -> tuple[bool, str]:
        nonlocal selector
        try:
            svc = services.get(name=service, namespace=namespace).to_dict()
        except Exception as exc:
            if _status(exc) == 404:
                return False, "the Service does not exist"
            raise KubeError(f"cannot read Service {namespace}/{service}: {describe_error(exc)}") from None
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            return True, "Service without selector (endpoints managed elsewhere)"
        ready = [p for p in _items(pods.get(namespace=namespace, label_selector=_selector(selector)))
                 if _pod_ready(p)]
        return bool(ready), f"{len(ready)} ready pod(s)"

    done, detail, waited = _poll(check, timeout)
    purpose = f" ({why.configuration}, admits {', '.join(why.kinds)})" if why else ""
    if done:
        return f"webhook Service {namespace}/{service}{purpose} ready after {waited:.1f}s", waited
    behind = "; ".join(_workloads_behind(dyn, namespace, selector)) if selector else ""
    raise KubeError(f"timed out after {timeout:.0f}s waiting for webhook Service {namespace}/{service}{purpose}: "
                    f"{detail}{' - ' + behind if behind else ''}; its objects were not applied")


def _readiness(kind: str, obj: dict[str, Any]) -> tuple[bool, str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    meta = obj.get("metadata") or {}
    current = int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 0))
    if kind in ("Deployment", "StatefulSet"):
        want = int(spec.get("replicas", 1))
        field_name = "availableReplicas" if kind == "Deployment" else "readyReplicas"
        have = int(status.get(field_name, 0))
        updated = int(status.get("updatedReplicas", 0))
        return current and have >= want and updated >= want, f"{have}/{want} ready"
    if kind == "DaemonSet":
        want = int(status.get("desiredNumberScheduled", 0))
        have = int(status.get("numberReady", 0))
        updated = int(status.get("updatedNumberScheduled", 0))
        return current and have >= want and updated >= want, f"{have}/{want} ready"
    if kind == "Job":
        return int(status.get("succeeded", 0)) >= 1, f"{int(status.get('succeeded', 0))} succeeded"
    return True, "exists"


def wait_ready(kind: str, name: str, namespace: str, kubeconfig: Path, timeout: float,
               api_version: str = "") -> str:
    """Wait until a workload is ready (Deployment available, StatefulSet/DaemonSet ready, Job succeeded; any
    other kind: exists). One line, or KubeError on timeout."""
    dyn = connect(kubeconfig)
    resource = _resource_or_wait(dyn, api_version or ("batch/v1" if kind == "Job" else "apps/v1"), kind, None)

    def check() -> tuple[bool, str]:
        try:
            obj = resource.get(name=name, namespace=namespace or None).to_dict()
        except Exception as exc:
            if _status(exc) == 404:
                return False, "does not exist"
            raise KubeError(f"cannot read {kind} {namespace}/{name}: {describe_error(exc)}") from None
        return _readiness(kind, obj)

    done, detail, waited = _poll(check, timeout)
    if done:
        return f"{kind} {namespace}/{name} ready after {waited:.1f}s ({detail})"
    raise KubeError(f"timed out after {timeout:.0f}s waiting for {kind} {namespace}/{name}: {detail}")
