"""Test fake: defaulting of new and updated objects in the fake Kubernetes API server.

Fills the fields the real API server defaults (Deployment replicas and strategy, pod spec defaults,
Service clusterIP and ports, Secret stringData folding, Namespace phase, CRD status, ...). Defaulting is
idempotent, which is what lets an unchanged server-side apply be detected as a no-op.
"""

from __future__ import annotations

import base64
import itertools
import threading
from typing import Any

from .resources import ResourceType


class Defaulter:
    """Applies per-kind defaults; owns the allocators for cluster IPs and node ports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cluster_ips = itertools.count(10)
        self._node_ports = itertools.count(30080)

    def next_cluster_ip(self) -> str:
        """Allocate a service cluster IP from 10.43.0.0/16 (the k3s default range)."""
        with self._lock:
            n = next(self._cluster_ips)
        return f"10.43.{n // 250}.{n % 250 + 1}"

    def next_node_port(self) -> int:
        """Allocate a NodePort."""
        with self._lock:
            return next(self._node_ports)

    def apply(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Default ``obj`` (of type ``rt``) in place."""
        fn = getattr(self, f"_default_{rt.kind.lower()}", None)
        if rt.crd is None and fn is not None:
            fn(obj)

    # -- core
    def _default_namespace(self, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        status = obj.setdefault("status", {})
        status["phase"] = "Terminating" if meta.get("deletionTimestamp") else "Active"

    def _default_secret(self, obj: dict[str, Any]) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if string_data:
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()

    def _default_service(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if spec["type"] != "ExternalName":
            if not spec.get("clusterIP"):
                spec["clusterIP"] = self.next_cluster_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                port["nodePort"] = self.next_node_port()
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        obj.setdefault("status", {}).setdefault("loadBalancer", {})

    def _default_persistentvolumeclaim(self, obj: dict[str, Any]) -> None:
        obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        obj.setdefault("status", {}).setdefault("phase", "Pending")

    def _default_pod(self, obj: dict[str, Any]) -> None:
        default_pod_spec(obj.setdefault("spec", {}))
        obj.setdefault("status", {}).setdefault("phase", "Pending")
        obj["status"].setdefault("qosClass", "BestEffort")

    def _default_node(self, obj: dict[str, Any]) -> None:
        status = obj.setdefault("status", {})
        if not status.get("conditions"):
            status["conditions"] = [node_ready_condition(True)]
        info = status.setdefault("nodeInfo", {})
        for k, v in {
            "kubeletVersion": "v1.35.2",
            "kubeProxyVersion": "v1.35.2",
            "containerRuntimeVersion": "containerd://2.0.0",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "kernelVersion": "6.1.0",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        }.items():
            info.setdefault(k, v)
        res = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi"}
        status.setdefault("capacity", dict(res))
        status.setdefault("allocatable", dict(res))

    # -- apps
    def _default_deployment(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
        default_template(spec)

    def _default_replicaset(self, obj: dict[str, Any]) -> None:
        obj.setdefault("spec", {}).setdefault("replicas", 1)
        default_template(obj["spec"])

    def _default_statefulset(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        us = spec.setdefault("updateStrategy", {})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
        default_template(spec)

    def _default_daemonset(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("revisionHistoryLimit", 10)
        us = spec.setdefault("updateStrategy", {})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        default_template(spec)

    # -- batch
    def _default_job(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("manualSelector", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        uid = obj.get("metadata", {}).get("uid", "")
        name = obj.get("metadata", {}).get("name", "")
        if uid and not spec.get("selector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
            labels.update({
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            })
        default_template(spec)

    def _default_cronjob(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)

    def _default_poddisruptionbudget(self, obj: dict[str, Any]) -> None:
        obj.setdefault("spec", {})


def node_ready_condition(ready: bool) -> dict[str, Any]:
    """A Node ``Ready`` condition."""
    return {
        "type": "Ready",
        "status": "True" if ready else "Unknown",
        "reason": "KubeletReady" if ready else "NodeStatusUnknown",
        "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.",
        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def default_template(spec: dict[str, Any]) -> None:
    """Default the pod template inside a workload spec."""
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        default_pod_spec(template.setdefault("spec", {}))


def default_pod_spec(spec: dict[str, Any]) -> None:
    """Default a pod spec the way the API server does (restart policy, DNS, container pull policy, ...)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for field in ("containers", "initContainers"):
        for c in spec.get(field) or []:
            if not isinstance(c, dict):
                continue
            image = str(c.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            c.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for p in c.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
