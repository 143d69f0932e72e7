"""The application releases (cluster layer part 2), checked in what they render to.

Each release is rendered the way the engine renders it, offline: placeholders resolved (inventory keys
from hosts/sandbox.yaml, ``${ref:}`` from the producing release's exports, secrets as ``<secret:NAME>``),
then ``helm template`` for the charts we own, followed by the release's extra manifests. Every assertion
names the spec story or requirement it holds the release to.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.placeholders import substitute
from homelab.releases import Release, load_one

REPO = Path(__file__).resolve().parents[2]
INVENTORY = yaml.safe_load((REPO / "hosts" / "sandbox.yaml").read_text())
DOMAIN = INVENTORY["domain"]
ISSUER = INVENTORY["tls"]["issuer"]

APPS = ["ollama", "vllm", "inference-gateway", "n8n", "dev-proxy", "paperless", "stirling-pdf", "email-bridge",
        "paperless-ai", "devcontainers"]
OWN_CHARTS = ["vllm", "inference-gateway", "n8n", "dev-proxy", "dev-containers", "paperless"]
# exposed host per release: <service>.<domain>
HOSTS = {"ollama": "ollama", "vllm": "vllm", "inference-gateway": "llm", "n8n": "n8n", "dev-proxy": "dev",
         "paperless": "paperless", "stirling-pdf": "stirling"}


def _helm() -> str:
    for candidate in (REPO / ".venv" / "bin" / "helm", shutil.which("helm")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.skip("helm is not installed (make setup installs it into .venv/bin)")


# -- rendering -----------------------------------------------------------------------------------------------

@functools.cache
def release(name: str) -> Release:
    rel, problems = load_one(REPO, REPO / "releases" / name, REPO / "schemas")
    errors = [p for p in problems if p.severity == "error"]
    assert rel is not None and not errors, [str(p) for p in problems]
    return rel


def _inv(path: str) -> Any:
    node: Any = INVENTORY
    for key in path.split("."):
        node = node[key]
    return node


def resolve(kind: str, target: str) -> Any:
    if kind == "inv":
        return _inv(target)
    if kind == "secret":
        return f"<secret:{target}>"
    producer, _, export = target.partition(".")
    value = release(producer).exports[export]["value"]
    return substitute(value, resolve)


def values(name: str) -> dict[str, Any]:
    out: dict[str, Any] = substitute(copy.deepcopy(release(name).values), resolve)
    return out


def helm_template(chart: Path, name: str, namespace: str, vals: dict[str, Any], tmp: Path) -> str:
    vfile = tmp / f"{name}-values.yaml"
    vfile.write_text(yaml.safe_dump(vals))
    run = subprocess.run([_helm(), "template", name, str(chart), "--namespace", namespace, "--kube-version", "1.31.4",
                          "-f", str(vfile)], capture_output=True, text=True, timeout=120, check=False)
    if run.returncode != 0:
        raise AssertionError(f"helm template {chart.name} failed: {run.stderr.strip()}")
    return run.stdout


@functools.cache
def rendered(name: str) -> tuple[dict[str, Any], ...]:
    """Every object the release deploys (chart output, then extra manifests), placeholders resolved."""
    import tempfile

    rel = release(name)
    docs: list[dict[str, Any]] = []
    if rel.chart and "path" in rel.chart:
        with tempfile.TemporaryDirectory() as tmp:
            text = helm_template(REPO / rel.chart["path"], name, rel.namespace, values(name), Path(tmp))
        docs += [d for d in yaml.safe_load_all(text) if d]
    for rel_path in sorted(rel.manifests):
        for doc in substitute(copy.deepcopy(rel.manifests[rel_path]), resolve):
            doc.setdefault("metadata", {}).setdefault("namespace", rel.namespace)
            docs.append(doc)
    return tuple(docs)


def objects(name: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered(name) if d.get("kind") == kind}


def one(name: str, kind: str, obj: str) -> dict[str, Any]:
    found = objects(name, kind)
    assert obj in found, f"{name}: no {kind}/{obj}; have {sorted(found)}"
    return found[obj]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any], cname: str | None = None) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    if cname is None:
        return dict(containers[0])
    return dict(next(c for c in containers if c["name"] == cname))


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def workloads(name: str) -> list[dict[str, Any]]:
    return [d for d in rendered(name) if d.get("kind") in WORKLOADS]


def all_containers(name: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for w in workloads(name):
        spec = pod_spec(w)
        for c in spec.get("initContainers", []) + spec["containers"]:
            out.append((f"{w['kind']}/{w['metadata']['name']}/{c['name']}", c))
    return out


# -- every chart we own ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("chart", sorted(p.parent.name for p in (REPO / "charts").glob("*/Chart.yaml")))
def test_helm_lint_strict(chart: str) -> None:
    run = subprocess.run([_helm(), "lint", "--strict", str(REPO / "charts" / chart)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("chart", OWN_CHARTS)
def test_own_chart_is_used_by_a_release(chart: str) -> None:
    users = [n for n in APPS if (release(n).chart or {}).get("path") == f"charts/{chart}"]
    assert users, f"charts/{chart} is used by no release"


# -- every application release -----------------------------------------------------------------------------

def test_needs_chain_is_the_pinned_one() -> None:
    want = {
        "ollama": {"postgres", "monitoring"},
        "vllm": {"postgres", "gpu-operator"},
        "inference-gateway": {"ollama", "vllm"},
        "n8n": {"postgres", "inference-gateway"},
        "paperless": {"ollama", "vllm", "postgres", "inference-gateway"},
        "devcontainers": {"paperless", "nfs-provisioner"},
        "dev-proxy": {"devcontainers"},
    }
    for name, needs in want.items():
        assert set(release(name).needs) == needs, name
    for name in ("stirling-pdf", "email-bridge", "paperless-ai"):
        assert "paperless" in release(name).needs


@pytest.mark.parametrize("name", APPS)
def test_release_renders_and_validates(name: str) -> None:
    docs = rendered(name)
    assert docs, f"{name} renders nothing"
    try:
        from homelab import validate
    except ImportError:  # pragma: no cover - validation module not present
        return
    found = validate.validate_objects(list(docs), "1.31.4", REPO / "schemas" / "crds", release=name)
    assert [v.line() for v in found if v.severity == "error"] == []


@pytest.mark.parametrize("name", APPS)
def test_namespace_is_from_the_table(name: str) -> None:
    assert release(name).namespace in INVENTORY["namespaces"]
    for d in rendered(name):
        ns = d["metadata"].get("namespace")
        assert ns in (None, release(name).namespace), f"{d['kind']}/{d['metadata']['name']} in {ns}"


@pytest.mark.parametrize("name", APPS)
def test_images_pinned_to_exact_tags(name: str) -> None:
    for where, c in all_containers(name):
        image = c["image"]
        m = re.fullmatch(r"(?P<repo>[^@\s]+?):(?P<tag>[\w][\w.-]*)(@sha256:[0-9a-f]{64})?", image)
        assert m, f"{where}: {image} has no tag"
        assert m.group("tag") != "latest", f"{where}: {image}"
        assert re.search(r"\d", m.group("tag")), f"{where}: {image} tag names no version"


@pytest.mark.parametrize("name", APPS)
def test_every_container_has_requests_and_limits(name: str) -> None:
    if "repo" not in (release(name).chart or {}):  # a remote chart's pods: see its values test (ollama)
        assert all_containers(name), f"{name} deploys no container"
    for where, c in all_containers(name):
        res = c.get("resources", {})
        for group in ("requests", "limits"):
            for r in ("cpu", "memory"):
                assert res.get(group, {}).get(r), f"{where}: no {group}.{r}"


@pytest.mark.parametrize("name", APPS)
def test_claims_use_the_nfs_storage_class(name: str) -> None:
    claims = [d["spec"] for d in rendered(name) if d["kind"] == "PersistentVolumeClaim"]
    for w in workloads(name):
        claims += [t["spec"] for t in w["spec"].get("volumeClaimTemplates", [])]
    for spec in claims:
        assert spec["storageClassName"] == "nfs-client"


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_exposed_service_has_tls_ingressroute_and_certificate(name: str) -> None:
    host = f"{HOSTS[name]}.{DOMAIN}"
    routes = list(objects(name, "IngressRoute").values())
    certs = {c["spec"]["secretName"]: c for c in objects(name, "Certificate").values()}
    matching = [r for r in routes if any(f"Host(`{host}`)" in rt["match"] for rt in r["spec"]["routes"])]
    assert matching, f"{name}: no IngressRoute for {host}"
    services = {s["metadata"]["name"]: s for s in objects(name, "Service").values()}
    for route in matching:
        assert route["apiVersion"] == "traefik.io/v1alpha1"
        assert route["spec"]["entryPoints"] == ["websecure"]
        secret = route["spec"]["tls"]["secretName"]
        assert secret in certs, f"{name}: {secret} is made by no Certificate"
        cert = certs[secret]["spec"]
        assert host in cert["dnsNames"]
        assert cert["issuerRef"] == {"name": ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"}
        for rt in route["spec"]["routes"]:
            for svc in rt["services"]:
                if name != "ollama":  # ollama's Service comes from the remote chart
                    assert svc["name"] in services, f"{name}: route to unknown Service {svc['name']}"
                    ports = [p["port"] for p in services[svc["name"]]["spec"]["ports"]]
                    assert svc["port"] in ports


def test_release_docs_blocks_are_filled() -> None:
    for name in APPS:
        docs = release(name).spec.get("docs", {})
        assert docs.get("why") and docs.get("settings") and docs.get("access"), name
        assert release(name).spec.get("timeout"), name


# -- ollama (story 6.1, 6.4) -------------------------------------------------------------------------------

def test_ollama_chart_values() -> None:
    rel = release("ollama")
    assert rel.chart == {"repo": "https://helm.otwld.com/", "name": "ollama", "version": "1.24.0"}
    v = values("ollama")
    assert "llama3.2:1b" in v["ollama"]["models"]["pull"]
    assert v["ollama"]["mountPath"] == "/root/.ollama"
    assert v["ollama"]["gpu"]["enabled"] is False
    assert v["image"] == {"repository": "ollama/ollama", "tag": "0.9.6"}
    pv = v["persistentVolume"]
    assert pv["enabled"] is True and pv["storageClass"] == "nfs-client" and pv["accessModes"] == ["ReadWriteMany"]
    assert v["replicaCount"] == 1 and v["podLabels"] == {"app": "ollama"}
    assert v["updateStrategy"]["type"] == "RollingUpdate"  # a Deployment that scales (FR12) on an RWX volume
    for group in ("requests", "limits"):
        assert set(v["resources"][group]) == {"cpu", "memory"}
    assert rel.exports["url"]["value"] == "http://ollama.ml.svc.cluster.local:11434"


# -- vLLM (story 12.4, 12.5, ADR-010) -------------------------------------------------------------------------

VLLM_MODELS = {"llama-3-1-8b": "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
               "mistral-7b": "TheBloke/Mistral-7B-Instruct-v0.2-AWQ",
               "deepseek-coder-6-7b": "TheBloke/deepseek-coder-6.7B-instruct-AWQ"}


def _args(c: dict[str, Any]) -> dict[str, str]:
    args = c["args"]
    return {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}


def test_vllm_one_deployment_per_model_on_the_gpu() -> None:
    deployments = objects("vllm", "Deployment")
    assert set(deployments) == {f"vllm-{m}" for m in VLLM_MODELS}
    for model, repo in VLLM_MODELS.items():
        d = deployments[f"vllm-{model}"]
        spec = pod_spec(d)
        assert spec["runtimeClassName"] == "nvidia"
        assert spec["nodeSelector"] == {"gpu": "nvidia"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert d["spec"]["template"]["metadata"]["labels"]["app"] == "vllm"
        assert d["spec"]["template"]["metadata"]["labels"]["model"] == model
        assert d["spec"]["selector"]["matchLabels"] == {"app": "vllm", "model": model}
        assert d["spec"]["strategy"]["type"] == "Recreate"
        c = container(d)
        assert c["image"] == "vllm/vllm-openai:v0.6.6.post1"
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
        a = _args(c)
        assert a["--model"] == repo and re.search(r"AWQ|GPTQ", repo)
        assert a["--quantization"].startswith("awq")
        assert 8192 <= int(a["--max-model-len"]) <= 16384
        assert 0 < float(a["--gpu-memory-utilization"]) < 1
        assert a["--port"] == "8000"
        svc = one("vllm", "Service", f"vllm-{model}")
        assert svc["spec"]["selector"] == {"app": "vllm", "model": model}
        assert [p["port"] for p in svc["spec"]["ports"]] == [8000]
    umbrella = one("vllm", "Service", "vllm")
    assert umbrella["spec"]["selector"] == {"app": "vllm"}
    # degradation target, and through the reference vLLM is ordered after Ollama (story 12.5)
    assert umbrella["metadata"]["annotations"]["homelab/cpu-fallback"] == release("ollama").exports["url"]["value"]


def test_vllm_replicas_are_values_with_one_model_resident() -> None:
    replicas = {n.removeprefix("vllm-"): d["spec"]["replicas"] for n, d in objects("vllm", "Deployment").items()}
    assert replicas == {"llama-3-1-8b": 1, "mistral-7b": 0, "deepseek-coder-6-7b": 0}


def test_vllm_replicas_zero_is_kept_and_default_is_one(tmp_path: Path) -> None:
    """Gaming mode writes replicas 0 for every model; a model without replicas gets the default 1."""
    v = values("vllm")
    for m in v["models"]:
        m["replicas"] = 0
    text = helm_template(REPO / "charts" / "vllm", "vllm", "ml", v, tmp_path)
    assert {d["spec"]["replicas"] for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment"} == {0}
    for m in v["models"]:
        del m["replicas"]
    text = helm_template(REPO / "charts" / "vllm", "vllm", "ml", v, tmp_path)
    assert {d["spec"]["replicas"] for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment"} == {1}


def test_vllm_pdb_and_route() -> None:
    pdb = one("vllm", "PodDisruptionBudget", "vllm-pdb")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "vllm"}}}
    route = one("vllm", "IngressRoute", "vllm-https")
    catch_all = route["spec"]["routes"][-1]
    assert catch_all["match"] == f"Host(`vllm.{DOMAIN}`)" and catch_all["services"][0]["name"] == "vllm"


def test_vllm_utilization_shares_match_the_declared_plan() -> None:
    """charts/vllm `plan` and release.yaml `gpu.models` say the same, and each share holds its model."""
    v = values("vllm")
    gpu_models = release("vllm").spec["gpu"]["models"]
    assert len(gpu_models) == len(v["models"])
    for m, g in zip(v["models"], gpu_models, strict=True):
        assert m["plan"] == {"weights": g["weights_gib"], "kvCache": g["kv_cache_gib"],
                             "overhead": g["runtime_overhead_gib"]}
        need = g["weights_gib"] + g["kv_cache_gib"] + g["runtime_overhead_gib"]
        assert need <= m["gpuMemoryUtilization"] * v["gpuVramGiB"] + 1e-9
        assert g["resident"] is False
    assert v["gpuVramGiB"] == INVENTORY["hosts"][3]["gpu"]["vram_gib"]


def test_vllm_chart_refuses_a_plan_larger_than_its_share(tmp_path: Path) -> None:
    v = values("vllm")
    v["models"][0]["gpuMemoryUtilization"] = 0.5
    with pytest.raises(AssertionError, match="exceed its share"):
        helm_template(REPO / "charts" / "vllm", "vllm", "ml", v, tmp_path)
    v = values("vllm")
    v["models"][0]["maxModelLen"] = 4096
    with pytest.raises(AssertionError, match="8K-16K"):
        helm_template(REPO / "charts" / "vllm", "vllm", "ml", v, tmp_path)


def _vram(models: list[dict[str, Any]]) -> list[str]:
    from homelab.inventory import Inventory
    from homelab.rules import vram_problems

    spec = copy.deepcopy(release("vllm").spec)
    spec["gpu"]["models"] = models
    rel = Release("vllm", REPO / "releases" / "vllm", "releases/vllm", spec, {})
    inv = Inventory(env="sandbox", rel="hosts/sandbox.yaml", data=INVENTORY)
    return [p.message for p in vram_problems(inv, [rel])]


def test_vllm_plan_passes_the_vram_rule() -> None:
    assert _vram(release("vllm").spec["gpu"]["models"]) == []


def test_the_spec_three_resident_plan_fails_the_vram_rule() -> None:
    """ADR-010's table: the three AWQ models resident at 8K context need 22.5 GiB of 11.5 usable."""
    spec_plan = [
        {"name": "deepseek-coder-6.7b", "weights_gib": 3.6, "kv_cache_gib": 4.0, "runtime_overhead_gib": 1.2},
        {"name": "mistral-7b", "weights_gib": 3.9, "kv_cache_gib": 1.0, "runtime_overhead_gib": 1.2},
        {"name": "llama-3.1-8b", "weights_gib": 5.4, "kv_cache_gib": 1.0, "runtime_overhead_gib": 1.2},
    ]
    problems = _vram(spec_plan)
    assert len(problems) == 1 and "need 22.5 GiB" in problems[0] and "11.5 GiB usable" in problems[0]
    for pair in ([spec_plan[1], spec_plan[2]], [spec_plan[0], spec_plan[1]]):
        assert _vram(pair), "two resident models do not fit either"
    adr = (REPO / "docs" / "adrs" / "ADR-010-vllm-vram-plan.md").read_text()
    for heading in ("- Status:", "## Context", "## Decision", "## Consequences"):
        assert heading in adr
    assert "22.5 GiB" in adr


# -- inference gateway (FR73, FR94, NFR50, story 13.3) ----------------------------------------------------------

def gateway_config() -> dict[str, Any]:
    cm = one("inference-gateway", "ConfigMap", "inference-gateway-config")
    config: dict[str, Any] = yaml.safe_load(cm["data"]["config.yaml"])
    return config


def test_gateway_routes_vllm_first_and_falls_back_to_ollama() -> None:
    config = gateway_config()
    models = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    gpu = {n: p for n, p in models.items() if p["model"].startswith("hosted_vllm/")}
    cpu = {n: p for n, p in models.items() if p["model"].startswith("ollama")}
    assert set(gpu) == {"llama-3.1-8b", "mistral-7b", "deepseek-coder-6.7b"}
    assert "llama3.2:1b" in cpu
    vllm_exports = release("vllm").exports
    assert {p["api_base"] for p in gpu.values()} == {vllm_exports[k]["value"] for k in
                                                    ("llama_url", "mistral_url", "deepseek_coder_url")}
    assert {p["api_base"] for p in cpu.values()} == {release("ollama").exports["url"]["value"]}
    fallbacks = {k: v for entry in config["router_settings"]["fallbacks"] for k, v in entry.items()}
    assert set(fallbacks) == set(gpu)
    for name, chain in fallbacks.items():
        assert chain[-1] in cpu, f"{name} does not end on the CPU"
        assert all(step in models for step in chain)


def test_gateway_notices_a_dead_gpu_within_ten_seconds() -> None:
    config = gateway_config()
    router = config["router_settings"]
    assert router["num_retries"] == 0
    assert router["allowed_fails"] == 1 and 0 < router["cooldown_time"] <= 60
    assert config["general_settings"]["background_health_checks"] is True
    assert config["general_settings"]["health_check_interval"] <= 10
    for m in config["model_list"]:
        if m["litellm_params"]["model"].startswith("hosted_vllm/"):
            assert m["litellm_params"]["stream_timeout"] <= 10
    # a failing vLLM engine leaves its Service within period x threshold (the gateway's connection is refused)
    for d in objects("vllm", "Deployment").values():
        probe = container(d)["readinessProbe"]
        assert probe["periodSeconds"] * probe["failureThreshold"] <= 10


def test_gateway_deployment_service_route_and_key() -> None:
    d = one("inference-gateway", "Deployment", "inference-gateway")
    c = container(d)
    assert c["image"] == "ghcr.io/berriai/litellm:v1.80.11-stable.1"
    assert c["args"][:2] == ["--config", "/app/config.yaml"]
    assert env(c)["LITELLM_MASTER_KEY"] == {"secretKeyRef": {"name": "inference-gateway", "key": "master-key"}}
    secret = one("inference-gateway", "Secret", "inference-gateway")
    assert secret["stringData"]["master-key"] == "<secret:inference.litellm_master_key>"
    assert gateway_config()["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    svc = one("inference-gateway", "Service", "inference-gateway")
    assert [p["port"] for p in svc["spec"]["ports"]] == [4000]
    assert release("inference-gateway").exports["url"]["value"] == "http://inference-gateway.ml.svc.cluster.local:4000/v1"
    rule = one("inference-gateway", "PrometheusRule", "inference-gateway")
    alert = rule["spec"]["groups"][0]["rules"][0]
    assert alert["annotations"]["summary"] == "GPU unavailable - using CPU fallback"


def test_gateway_refuses_a_fallback_to_an_unknown_model(tmp_path: Path) -> None:
    v = values("inference-gateway")
    v["fallbacks"]["llama-3.1-8b"] = ["no-such-model"]
    with pytest.raises(AssertionError, match="not a backend name"):
        helm_template(REPO / "charts" / "inference-gateway", "inference-gateway", "ml", v, tmp_path)


# -- n8n (story 6.3, 13.3) -------------------------------------------------------------------------------------

def test_n8n_uses_postgres_by_reference_and_nfs() -> None:
    d = one("n8n", "Deployment", "n8n")
    c = container(d)
    e = env(c)
    pg = release("postgres").exports
    assert e["DB_TYPE"] == "postgresdb"
    assert e["DB_POSTGRESDB_HOST"] == pg["host"]["value"]
    assert e["DB_POSTGRESDB_PORT"] == str(pg["port"]["value"])
    assert e["DB_POSTGRESDB_DATABASE"] == pg["n8n_db"]["value"]
    assert e["DB_POSTGRESDB_USER"] == pg["n8n_user"]["value"]
    assert e["N8N_HOST"] == f"n8n.{DOMAIN}" and e["N8N_PROTOCOL"] == "https"
    assert e["INFERENCE_GATEWAY_URL"] == release("inference-gateway").exports["url"]["value"]
    secret = one("n8n", "Secret", "n8n")["stringData"]
    assert secret["DB_POSTGRESDB_PASSWORD"] == "<secret:postgres.n8n_password>"
    assert secret["INFERENCE_GATEWAY_KEY"] == "<secret:inference.litellm_master_key>"
    assert {"secretRef": {"name": "n8n"}} in c["envFrom"]
    pvc = one("n8n", "PersistentVolumeClaim", "n8n-data")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/home/node/.n8n"] == "data"
    assert one("n8n", "Service", "n8n")["spec"]["ports"][0]["port"] == 5678


def test_n8n_sample_workflow_calls_the_gateway() -> None:
    wf = json.loads((REPO / "docs" / "workflows" / "n8n-inference-sample.json").read_text())
    nodes = {n["name"]: n for n in wf["nodes"]}
    ask = nodes["Ask inference gateway"]
    assert ask["type"] == "n8n-nodes-base.httpRequest"
    assert ask["parameters"]["url"] == "={{ $env.INFERENCE_GATEWAY_URL }}/chat/completions"
    assert ask["onError"] == "continueErrorOutput"
    fallback = wf["connections"]["Ask inference gateway"]["main"][1][0]["node"]
    assert "/api/generate" in nodes[fallback]["parameters"]["url"]
    for source, outputs in wf["connections"].items():
        assert source in nodes
        for branch in outputs["main"]:
            assert all(link["node"] in nodes for link in branch)


# -- dev proxy (Epic 7, story 11.4) ------------------------------------------------------------------------------

def nginx_conf() -> str:
    text: str = one("dev-proxy", "ConfigMap", "dev-proxy-nginx")["data"]["nginx.conf"]
    return text


def test_dev_proxy_config_from_targets_and_streams() -> None:
    conf = nginx_conf()
    for t in values("dev-proxy")["targets"]:
        assert f"location ^~ {t['path']}/ {{" in conf
        assert f"proxy_pass http://{t['host']}:{t['port']}{t['path']}/;" in conf
    assert "proxy_pass http://192.168.2.50:3000/app1/;" in conf
    assert re.search(r"location / \{\s*return 404;\s*\}", conf)
    streams = {int(m.group(1)): m.group(2) for m in
               re.finditer(r"upstream ssh_(\d+) \{\s*server ([^;]+);", conf)}
    assert streams == {2222: "dev-container-belego-svc.dev.svc.cluster.local:22",
                       2223: "dev-container-pilates-svc.dev.svc.cluster.local:22"}
    for port in (2222, 2223):
        assert f"listen {port};" in conf and f"proxy_pass ssh_{port};" in conf
    assert not re.search(r"^\s*load_module", conf, re.M)  # the official image has the stream module built in


def test_dev_proxy_reloads_in_place() -> None:
    d = one("dev-proxy", "Deployment", "dev-proxy")
    spec = pod_spec(d)
    assert d["spec"]["template"]["metadata"]["labels"]["app"] == "nginx"
    assert spec["shareProcessNamespace"] is True
    assert not d["spec"]["template"]["metadata"].get("annotations"), "a config checksum would restart the pod"
    reloader = container(d, "config-reloader")
    script = reloader["args"][0]
    assert "nginx -s reload" in script and "nginx -t" in script
    interval = values("dev-proxy")["reloader"]["interval"]
    assert interval <= 30
    for c in spec["containers"]:
        mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
        assert "subPath" not in mount, f"{c['name']}: a subPath mount never sees ConfigMap updates"
        assert c["image"] == "nginx:1.27.3"


def test_dev_proxy_services_and_ssh_exposure() -> None:
    svc = one("dev-proxy", "Service", "dev-proxy")
    assert {p["port"] for p in svc["spec"]["ports"]} == {80, 2222, 2223}
    ssh = one("dev-proxy", "Service", "dev-proxy-ssh")
    assert ssh["spec"]["type"] == "LoadBalancer"
    assert ssh["spec"]["loadBalancerIP"] == INVENTORY["network"]["ingress_ip"]
    assert ssh["metadata"]["annotations"]["metallb.io/allow-shared-ip"] == "homelab-ingress"
    assert {p["port"] for p in ssh["spec"]["ports"]} == {2222, 2223}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_dev_proxy_config_runs_and_a_removed_target_answers_404(tmp_path: Path) -> None:
    """The rendered nginx.conf under a real nginx (Debian's, if installed): proxying, 404, reload."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed")
    module = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
    backend_port, proxy_port, ssh_port = _free_port(), _free_port(), _free_port()
    (tmp_path / "www" / "app2").mkdir(parents=True)
    (tmp_path / "www" / "app2" / "index.html").write_text("app2\n")
    v = values("dev-proxy")
    v["targets"] = [{"path": "/app2", "host": "127.0.0.1", "port": backend_port}]
    v["ssh_streams"] = [{"listen": ssh_port, "service": "127.0.0.1", "port": backend_port}]

    def write_conf() -> Path:
        text = helm_template(REPO / "charts" / "dev-proxy", "dev-proxy", "dev", v, tmp_path)
        cm = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "ConfigMap")
        conf = cm["data"]["nginx.conf"].replace("/var/run/nginx/nginx.pid", str(tmp_path / "nginx.pid"))
        conf = conf.replace("listen 8080 default_server;", f"listen 127.0.0.1:{proxy_port} default_server;")
        conf = conf.replace("access_log /dev/stdout;", f"access_log {tmp_path}/access.log;")
        conf = conf.replace("error_log /dev/stderr notice;", f"error_log {tmp_path}/error.log notice;")
        if module.exists():  # Debian builds the stream module as a dynamic module
            conf = f"load_module {module};\n" + conf
        path = tmp_path / "nginx.conf"
        path.write_text(conf)
        return path

    conf = write_conf()
    check = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
                           check=False)
    if check.returncode != 0 and "stream" in check.stderr:
        pytest.skip(f"this nginx has no stream module: {check.stderr.strip()}")
    assert check.returncode == 0, check.stderr
    backend = subprocess.Popen(["python3", "-m", "http.server", str(backend_port), "--bind", "127.0.0.1",
                                "--directory", str(tmp_path / "www")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = False
    try:
        subprocess.run([nginx, "-p", str(tmp_path), "-c", str(conf)], check=True, capture_output=True)
        started = True
        deadline = time.monotonic() + 10
        while True:
            try:
                if _get(proxy_port, "/app2/") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "nginx did not proxy /app2/ within 10 s"
            time.sleep(0.2)
        assert _get(proxy_port, "/not-a-target/") == 404
        v["targets"] = []
        write_conf()
        subprocess.run([nginx, "-p", str(tmp_path), "-c", str(conf), "-s", "reload"], check=True,
                       capture_output=True)
        deadline = time.monotonic() + 10
        while _get(proxy_port, "/app2/") != 404:
            assert time.monotonic() < deadline, "removed target still answers after reload"
            time.sleep(0.2)
    finally:
        if started:
            subprocess.run([nginx, "-p", str(tmp_path), "-c", str(conf), "-s", "quit"], check=False,
                           capture_output=True)
        backend.terminate()
        backend.wait(timeout=10)


# -- Paperless-ngx ecosystem (Epic 10, story 12.7) ------------------------------------------------------------

SPEC_PAPERLESS_ENV = {
    "PAPERLESS_OCR_LANGUAGE": "deu+eng",
    "PAPERLESS_OCR_MODE": "skip",
    "PAPERLESS_CONSUMER_SUBDIRS_AS_TAGS": "true",
    "PAPERLESS_CONSUMER_RECURSIVE": "true",
    "PAPERLESS_CONSUMER_DELETE_DUPLICATES": "true",
    "PAPERLESS_CONSUMER_POLLING": "10",
    "PAPERLESS_CONSUMER_POLLING_DELAY": "5",
    "PAPERLESS_CONSUMER_POLLING_RETRY_COUNT": "5",
    "PAPERLESS_CSRF_TRUSTED_ORIGINS": f"https://paperless.{DOMAIN}",
    "PAPERLESS_CORS_ALLOWED_HOSTS": f"https://paperless.{DOMAIN}",
    "PAPERLESS_COOKIE_PREFIX": "paperless_ngx",
    "PAPERLESS_ENABLE_HTTP_REMOTE_USER": "false",
    "PAPERLESS_TIKA_ENABLED": "true",
    "PAPERLESS_TIKA_ENDPOINT": "http://tika:9998",
    "PAPERLESS_TIKA_GOTENBERG_ENDPOINT": "http://gotenberg:3000",
    "PAPERLESS_TASK_WORKERS": "2",
    "PAPERLESS_REDIS": "redis://redis:6379",
    "PAPERLESS_DBENGINE": "postgresql",
    "PAPERLESS_URL": f"https://paperless.{DOMAIN}",
}


def test_paperless_env_is_the_spec() -> None:
    d = one("paperless", "Deployment", "paperless-ngx")
    c = container(d)
    e = env(c)
    for key, value in SPEC_PAPERLESS_ENV.items():
        assert e.get(key) == value, key
    pg = release("postgres").exports
    assert e["PAPERLESS_DBHOST"] == pg["host"]["value"]
    assert e["PAPERLESS_DBPORT"] == str(pg["port"]["value"])
    assert e["PAPERLESS_DBNAME"] == pg["paperless_db"]["value"]
    assert e["PAPERLESS_DBUSER"] == pg["paperless_user"]["value"]
    secret = one("paperless", "Secret", "paperless-ngx")["stringData"]
    assert secret["PAPERLESS_DBPASS"] == "<secret:postgres.paperless_password>"
    assert secret["PAPERLESS_SECRET_KEY"] == "<secret:paperless.secret_key>"
    assert {"secretRef": {"name": "paperless-ngx"}} in c["envFrom"]
    assert c["image"] == "ghcr.io/paperless-ngx/paperless-ngx:2.14.7"
    assert one("paperless", "Service", "paperless-ngx")["spec"]["ports"][0]["port"] == 8000


def test_paperless_volumes() -> None:
    claims = objects("paperless", "PersistentVolumeClaim")
    sizes = {n: c["spec"]["resources"]["requests"]["storage"] for n, c in claims.items()}
    assert sizes["paperless-data"] == "50Gi" and sizes["paperless-media"] == "20Gi"
    assert "paperless-consume" in sizes
    assert claims["paperless-consume"]["spec"]["accessModes"] == ["ReadWriteMany"]
    d = one("paperless", "Deployment", "paperless-ngx")
    volumes = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod_spec(d)["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container(d)["volumeMounts"]}
    assert mounts["/usr/src/paperless/data"] == "paperless-data"
    assert mounts["/usr/src/paperless/media"] == "paperless-media"
    assert mounts["/usr/src/paperless/consume"] == "paperless-consume"


def test_paperless_redis_tika_gotenberg() -> None:
    for name, port in (("redis", 6379), ("tika", 9998), ("gotenberg", 3000)):
        one("paperless", "Deployment", name)
        svc = one("paperless", "Service", name)
        assert [p["port"] for p in svc["spec"]["ports"]] == [port]
        assert svc["spec"]["selector"] == {"app": name}
    gotenberg = container(one("paperless", "Deployment", "gotenberg"))
    assert gotenberg["image"].startswith("docker.io/gotenberg/gotenberg:8.")
    assert "--chromium-disable-javascript=true" in gotenberg["args"]
    assert gotenberg["args"][0] == "gotenberg"


def test_stirling_pdf() -> None:
    c = container(one("stirling-pdf", "Deployment", "stirling-pdf"))
    e = env(c)
    assert e["SECURITY_ENABLELOGIN"] == "false" and e["SYSTEM_DEFAULTLOCALE"] == "de-DE"
    assert not objects("stirling-pdf", "PersistentVolumeClaim")  # stateless
    assert one("stirling-pdf", "Service", "stirling-pdf")["spec"]["ports"][0]["port"] == 8080


def test_email_bridge() -> None:
    sts = one("email-bridge", "StatefulSet", "email-bridge")
    ports = {p["containerPort"] for p in container(sts)["ports"]}
    assert ports == {143, 25}
    (vct,) = sts["spec"]["volumeClaimTemplates"]
    assert vct["spec"]["resources"]["requests"]["storage"] == "1Gi"
    svc = one("email-bridge", "Service", "email-bridge")
    assert {p["port"] for p in svc["spec"]["ports"]} == {143, 25}


def test_paperless_ai() -> None:
    d = one("paperless-ai", "Deployment", "paperless-ai")
    c = container(d)
    assert c["image"].startswith("docker.io/douaberigoale/paperless-metadata-ollama-processor:")
    cfg = one("paperless-ai", "ConfigMap", "paperless-ai-config")["data"]
    ollama = release("ollama").exports["url"]["value"]
    assert cfg["OLLAMA_URL"] == ollama and cfg["OLLAMA_API_URL"] == f"{ollama}/api/generate"
    assert cfg["OLLAMA_MODEL"] == cfg["OLLAMA_MODEL_NAME"] == "llama3.2:1b"
    assert cfg["PAPERLESS_URL"] == "http://paperless-ngx.docs.svc.cluster.local:8000"
    assert cfg["PROCESS_PREDEFINED_DOCUMENTS"] == "true" and cfg["ADD_AI_PROCESSED_TAG"] == "true"
    token = one("paperless-ai", "Secret", "paperless-ai-secrets")["stringData"]["PAPERLESS_API_TOKEN"]
    assert token == "<secret:paperless.ai_api_token>"
    assert {"configMapRef": {"name": "paperless-ai-config"}} in c["envFrom"]
    assert {"secretRef": {"name": "paperless-ai-secrets"}} in c["envFrom"]


# -- dev containers (Epic 11) -------------------------------------------------------------------------------------

def test_dev_containers_per_entry() -> None:
    for name in ("belego", "pilates"):
        d = one("devcontainers", "Deployment", f"dev-container-{name}")
        assert d["spec"]["replicas"] == 1
        assert d["spec"]["template"]["metadata"]["labels"]["app"] == "dev-container"
        c = container(d)
        assert c["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
        volumes = {v["name"]: v for v in pod_spec(d)["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert volumes[mounts["/home/dev/workspace"]]["persistentVolumeClaim"]["claimName"] == f"dev-{name}-workspace"
        assert "emptyDir" in volumes[mounts["/home/dev/build"]]
        svc = one("devcontainers", "Service", f"dev-container-{name}-svc")
        assert [p["port"] for p in svc["spec"]["ports"]] == [22]
        assert svc["spec"]["selector"]["app"] == "dev-container"
        pvc = one("devcontainers", "PersistentVolumeClaim", f"dev-{name}-workspace")
        assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
        assert pvc["spec"]["storageClassName"] == "nfs-client"
    assert {e["value"] for e in release("devcontainers").exports.values() if e["type"] == "host"} == {
        "dev-container-belego-svc.dev.svc.cluster.local", "dev-container-pilates-svc.dev.svc.cluster.local"}


def test_dev_container_network_policy() -> None:
    np = one("devcontainers", "NetworkPolicy", "dev-container-isolation")["spec"]
    assert np["podSelector"] == {"matchLabels": {"app": "dev-container"}}
    assert np["policyTypes"] == ["Ingress", "Egress"]
    assert np["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app": "nginx"}}}],
                              "ports": [{"protocol": "TCP", "port": 22}]}]
    dns, postgres, ollama = np["egress"]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert sorted(dns["ports"], key=lambda p: p["protocol"]) == [{"protocol": "TCP", "port": 53},
                                                                 {"protocol": "UDP", "port": 53}]
    assert postgres == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "data"}}}],
                        "ports": [{"protocol": "TCP", "port": 5432}]}
    assert ollama == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ml"}}}],
                      "ports": [{"protocol": "TCP", "port": 11434}]}
    # the dev proxy's pods carry the label the policy admits
    proxy = one("dev-proxy", "Deployment", "dev-proxy")
    assert proxy["spec"]["template"]["metadata"]["labels"]["app"] == "nginx"


def test_dev_container_image_definition() -> None:
    text = (REPO / "images" / "dev-container" / "Dockerfile").read_text()
    assert re.search(r"^FROM ubuntu:22\.04$", text, re.M)
    assert re.search(r"^ARG NODE_VERSION=20\.\d+\.\d+-1nodesource1$", text, re.M)
    assert "python3.11" in text and "openssh-server" in text and "git" in text
    for arg in ("KUBECTL_SHA256", "HELM_BINARY_SHA256"):
        assert re.search(rf"^ARG {arg}=[0-9a-f]{{64}}$", text, re.M), arg
    assert re.search(r"^ARG KUBECTL_VERSION=v1\.3\d\.\d+$", text, re.M)
    assert re.search(r"^ARG HELM_VERSION=v3\.\d+\.\d+$", text, re.M)
    assert text.count("sha256sum -c") >= 3
    assert re.search(r"^ARG CLAUDE_CODE_VERSION=\d+\.\d+\.\d+$", text, re.M)
    assert '"@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"' in text
    assert "useradd -m -s /bin/bash -u 1000 -U dev" in text
    assert text.rstrip().endswith('CMD ["/usr/sbin/sshd", "-D", "-e"]')
    entry = REPO / "images" / "dev-container" / "entrypoint.sh"
    assert subprocess.run(["bash", "-n", str(entry)], check=False).returncode == 0
