"""GPU mode switch (homelab.ops.gpu_mode, FR97-FR99, NFR51/52) against the FAKE Kubernetes API with the real kubectl.

The GPU host is a test double whose nvidia-smi answer follows the fake cluster: every vLLM pod that still
exists (terminating included) holds VRAM from a Kubernetes cgroup, and a Steam process holds some from a
user cgroup. The inference gateway is a small HTTP stand-in for LiteLLM that answers from vLLM while a vLLM
pod is ready and from Ollama otherwise, naming the backend in ``x-litellm-model-api-base`` as LiteLLM does.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.ops import gpu_mode
from homelab.ops.gpu_mode import Completed, GpuMode, Settings
from tests.fakeapi import FakeApiServer
from tests.fakeapi.plugin import KubeCli
from tests.fakeapi.workloads import pod_ready

pytestmark = pytest.mark.fakeapi

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "ops"
KUBECTL = REPO / ".venv" / "bin" / "kubectl"
API_KEY = "sk-gpu-mode-canary-4e1f9b"  # must never appear in any output
MODELS = ("vllm-deepseek-coder-6-7b", "vllm-llama-3-1-8b", "vllm-mistral-7b")


# -- stand-ins ------------------------------------------------------------------------------------------

class Gateway:
    """A LiteLLM stand-in on 127.0.0.1: /v1/models, /v1/chat/completions routed by the fake cluster's state."""

    def __init__(self, api: FakeApiServer, key: str = API_KEY) -> None:
        self.api = api
        self.key = key
        self.requests: list[tuple[str, str, str]] = []  # (method, path, authorization)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                auth = self.headers.get("Authorization", "")
                gateway.requests.append((method, self.path, auth))
                if auth != f"Bearer {gateway.key}":
                    self._answer(401, {"error": {"message": "Authentication Error"}})
                elif method == "GET" and self.path == "/v1/models":
                    names = ["llama-3.1-8b", "mistral-7b", "deepseek-coder-6.7b", "llama3.2:1b", "default"]
                    self._answer(200, {"object": "list", "data": [{"id": n, "object": "model"} for n in names]})
                elif method == "POST" and self.path == "/v1/chat/completions":
                    if gateway.vllm_ready():
                        model, base = "llama-3.1-8b-instruct", "http://vllm-llama-3-1-8b.ml.svc.cluster.local:8000/v1"
                    else:
                        model, base = "llama3.2:1b", "http://ollama.ml.svc.cluster.local:11434"
                    self._answer(200, {"object": "chat.completion", "model": model,
                                       "choices": [{"message": {"role": "assistant", "content": "OK"}}]},
                                 {"x-litellm-model-api-base": base})
                else:
                    self._answer(404, {"error": "not found"})

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def vllm_ready(self) -> bool:
        return any(pod_ready(p) for p in self.api.store.objects("Pod", "ml", "app=vllm"))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class GpuHost:
    """The GPU host as the switch's runner sees it: nvidia-smi rows and /proc/<pid>/cgroup of each process."""

    where = "gpu-host (test double)"

    def __init__(self, api: FakeApiServer) -> None:
        self.api = api
        self.stuck: list[int] = []  # Kubernetes pids that keep their VRAM whatever the cluster says
        self.calls: list[list[str]] = []

    def processes(self) -> list[tuple[int, str, int, bool]]:
        pods = self.api.store.objects("Pod", "ml", "app=vllm")
        rows = [(4000 + i, "/usr/bin/python3", 9800, True) for i, _ in enumerate(pods)]
        rows += [(9000 + i, "/usr/bin/python3", 9800, True) for i, _ in enumerate(self.stuck)]
        return [*rows, (777, "steam", 512, False)]

    def __call__(self, argv: list[str], timeout: float) -> Completed:
        self.calls.append(argv)
        procs = self.processes()
        if argv[0] == "nvidia-smi":
            return Completed(0, "".join(f"{pid}, {name}, {mib} MiB\n" for pid, name, mib, _ in procs), "")
        if argv[:2] == ["sh", "-c"]:
            lines = [f"{pid} 0::/kubepods.slice/kubepods-pod{pid}.slice/cri-containerd-{pid}.scope " if kube
                     else f"{pid} 0::/user.slice/user-1000.slice/session-2.scope " for pid, _, _, kube in procs]
            return Completed(0, "\n".join(lines) + "\n", "")
        return Completed(127, "", f"{argv[0]}: command not found")


# -- fixtures ------------------------------------------------------------------------------------------

@pytest.fixture
def cluster(fake_api: FakeApiServer, fake_cli: KubeCli) -> FakeApiServer:
    """The fake cluster with namespace ml and the three vLLM Deployments (llama resident, the others at 0)."""
    fake_cli.kubectl("create", "namespace", "ml")
    fake_cli.kubectl("apply", "--server-side", "--validate=false", "-f", str(FIXTURES / "gpu_vllm_deployments.yaml"))
    return fake_api


@pytest.fixture
def gateway(cluster: FakeApiServer) -> Iterator[Gateway]:
    gw = Gateway(cluster)
    yield gw
    gw.close()


@pytest.fixture
def host(cluster: FakeApiServer) -> GpuHost:
    return GpuHost(cluster)


@pytest.fixture
def settings(fake_kubeconfig: Path, gateway: Gateway, tmp_path: Path) -> Settings:
    if not KUBECTL.exists():
        pytest.skip("kubectl not installed (make kube-binaries)")
    return Settings(kubeconfig=str(fake_kubeconfig), kubectl=str(KUBECTL), endpoint=gateway.url, api_key=API_KEY,
                    state_file=str(tmp_path / "state" / "gpu-mode"), poll_seconds=0.1,
                    timeouts={"gaming": 20.0, "ml": 20.0}, actor="test")


def switch(settings: Settings, host: GpuHost) -> tuple[GpuMode, io.StringIO]:
    out = io.StringIO()
    return GpuMode(settings, host, out=out), out


def replicas(api: FakeApiServer) -> dict[str, int]:
    return {d["metadata"]["name"]: d["spec"]["replicas"] for d in api.store.objects("Deployment", "ml", "app=vllm")}


def record(api: FakeApiServer) -> dict[str, Any]:
    dep = api.store.find("Deployment", "vllm-llama-3-1-8b", "ml")
    assert dep is not None
    value: dict[str, Any] = json.loads(dep["metadata"]["annotations"][gpu_mode.ANNOTATION])
    return value


def check_output(text: str) -> None:
    assert API_KEY not in text
    for line in text.splitlines():
        assert line.startswith("["), line  # every line is a timed step


# -- gaming -------------------------------------------------------------------------------------------

def test_gaming_scales_to_zero_and_waits_for_slow_termination(cluster: FakeApiServer, settings: Settings,
                                                             host: GpuHost, gateway: Gateway) -> None:
    cluster.slow_termination(1.5, "Deployment", "vllm-*")
    assert len(cluster.store.objects("Pod", "ml", "app=vllm")) == 1
    sw, out = switch(settings, host)
    result = sw.gaming()
    text = out.getvalue()
    assert result.ok, text
    assert result.waited >= 1.0  # the terminating pod was waited for, not skipped
    assert replicas(cluster) == dict.fromkeys(MODELS, 0)
    assert cluster.store.objects("Pod", "ml", "app=vllm") == []
    assert record(cluster)["mode"] == "gaming"
    assert record(cluster)["replicas"] == {"vllm-llama-3-1-8b": 1, "vllm-mistral-7b": 0, "vllm-deepseek-coder-6-7b": 0}
    state = gpu_mode.read_state(settings.state_file)
    assert (state["mode"], state["status"]) == ("gaming", "done")
    assert "scaled ml/vllm-llama-3-1-8b 1 -> 0" in text
    assert "waiting: 1 vLLM pod(s) terminating" in text
    assert "no Kubernetes process holds VRAM (1 other process(es), 512 MiB)" in text
    assert "answers from Ollama (llama3.2:1b via http://ollama.ml.svc.cluster.local:11434)" in text
    assert "(target 30s: met)" in text
    assert "Gaming Mode: vLLM scaled to 0, GPU available for Steam" in text
    check_output(text)
    assert all(auth == f"Bearer {API_KEY}" for _, _, auth in gateway.requests)


def test_already_gaming_is_a_noop(cluster: FakeApiServer, settings: Settings, host: GpuHost) -> None:
    assert switch(settings, host)[0].gaming().ok
    since = cluster.requests[-1].time
    sw, out = switch(settings, host)
    result = sw.gaming()
    assert result.ok and result.noop
    assert result.message == "already in gaming mode: nothing to do"
    assert "already in gaming mode: nothing to do" in out.getvalue()
    assert cluster.count("PATCH", since=since) == 0 and cluster.count("PUT", since=since) == 0


def test_gaming_rerun_after_a_failure_keeps_the_recorded_counts(cluster: FakeApiServer, settings: Settings,
                                                                host: GpuHost) -> None:
    host.stuck = [31337]  # a Kubernetes process that does not let go of the GPU
    settings.timeouts["gaming"] = 2.0
    sw, out = switch(settings, host)
    failed = sw.gaming()
    assert not failed.ok
    assert "VRAM not released (timeout)" in failed.message and "pid 9000" in failed.message
    state = gpu_mode.read_state(settings.state_file)
    assert (state["mode"], state["status"]) == ("gaming", "failed")
    assert replicas(cluster)["vllm-llama-3-1-8b"] == 0
    host.stuck = []
    sw, out = switch(settings, host)
    again = sw.gaming()
    assert again.ok and not again.noop, out.getvalue()  # an unfinished switch is finished, not skipped
    assert "already at the wanted replicas" in out.getvalue()
    # the zeros the failed run set are not taken for the counts to restore
    assert record(cluster)["replicas"]["vllm-llama-3-1-8b"] == 1
    assert switch(settings, host)[0].ml().ok
    assert replicas(cluster)["vllm-llama-3-1-8b"] == 1


def test_gaming_without_a_cluster_fails_cleanly_and_keeps_the_record(settings: Settings, host: GpuHost,
                                                                     tmp_path: Path) -> None:
    gpu_mode.write_state(settings.state_file, {"mode": "ml", "status": "done"})
    settings.kubeconfig = str(tmp_path / "nowhere")
    (tmp_path / "nowhere").write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster:\n"
                                      "    server: http://127.0.0.1:9\nusers:\n- name: x\n  user: {}\ncontexts:\n"
                                      "- name: x\n  context: {cluster: x, user: x}\ncurrent-context: x\n")
    result = switch(settings, host)[0].gaming()
    assert not result.ok and result.message.startswith("gaming mode not reached: kubectl get failed:")
    assert gpu_mode.read_state(settings.state_file) == {"mode": "ml", "status": "done"}  # nothing changed


# -- ml -----------------------------------------------------------------------------------------------

def test_ml_restores_the_recorded_replicas_and_waits_for_readiness(cluster: FakeApiServer, settings: Settings,
                                                                  host: GpuHost, fake_cli: KubeCli) -> None:
    # the operator had swapped mistral in as well before gaming: exactly that comes back
    fake_cli.kubectl("-n", "ml", "scale", "deployment", "vllm-mistral-7b", "--replicas=1")
    assert switch(settings, host)[0].gaming().ok
    cluster.ready_after("Deployment", "vllm-*", 1.0)
    sw, out = switch(settings, host)
    result = sw.ml()
    text = out.getvalue()
    assert result.ok, text
    assert replicas(cluster) == {"vllm-llama-3-1-8b": 1, "vllm-mistral-7b": 1, "vllm-deepseek-coder-6-7b": 0}
    assert result.waited >= 0.8
    assert "scaled ml/vllm-llama-3-1-8b 0 -> 1" in text and "scaled ml/vllm-mistral-7b 0 -> 1" in text
    assert ("restoring vllm-deepseek-coder-6-7b=0, vllm-llama-3-1-8b=1, vllm-mistral-7b=1 (recorded in the cluster)"
            in text)
    assert "vLLM ready: vllm-llama-3-1-8b 1/1 ready, vllm-mistral-7b 1/1 ready" in text
    assert "/v1/models: 5 model(s)" in text
    assert "answers from vLLM (llama-3.1-8b-instruct via http://vllm-llama-3-1-8b" in text
    assert "2 Kubernetes process(es) hold 19600 MiB" in text
    assert "(target 120s: met)" in text
    assert "ML Mode: vLLM restored, GPU dedicated to inference" in text
    check_output(text)
    state = gpu_mode.read_state(settings.state_file)
    assert (state["mode"], state["status"]) == ("ml", "done")
    again = switch(settings, host)[0].ml()
    assert again.ok and again.noop and again.message == "already in ml mode: nothing to do"


def test_ml_when_vllm_never_becomes_ready_fails_clearly_and_a_rerun_works(cluster: FakeApiServer,
                                                                         settings: Settings, host: GpuHost) -> None:
    assert switch(settings, host)[0].gaming().ok
    cluster.never_ready("Deployment", "vllm-*")
    settings.timeouts["ml"] = 2.0
    sw, out = switch(settings, host)
    result = sw.ml()
    assert not result.ok
    assert result.message.startswith("ml mode not reached: vLLM not ready (timeout): vllm-llama-3-1-8b 0/1 ready")
    assert "not ready);" in result.message and "describe pods -l app=vllm" in result.message  # pod and why
    assert 2.0 <= result.seconds < 6.0
    # recorded sensibly: the intent is ML (vLLM is scaled up and owns the GPU), the switch failed
    state = gpu_mode.read_state(settings.state_file)
    assert (state["mode"], state["status"]) == ("ml", "failed")
    assert state["replicas"]["vllm-llama-3-1-8b"] == 1 and "not ready" in state["message"]
    assert record(cluster)["mode"] == "ml"
    cluster.make_ready("Deployment", "vllm-*")
    sw, out = switch(settings, host)
    rerun = sw.ml()
    assert rerun.ok and not rerun.noop, out.getvalue()
    assert replicas(cluster)["vllm-llama-3-1-8b"] == 1


def test_ml_without_any_record_uses_the_configured_counts_or_refuses(cluster: FakeApiServer, settings: Settings,
                                                                     host: GpuHost, fake_cli: KubeCli) -> None:
    fake_cli.kubectl("-n", "ml", "scale", "deployment", "vllm-llama-3-1-8b", "--replicas=0")
    result = switch(settings, host)[0].ml()
    assert not result.ok and "nothing to restore" in result.message
    settings.default_replicas = {"vllm-llama-3-1-8b": 1, "vllm-mistral-7b": 0, "vllm-deepseek-coder-6-7b": 0}
    sw, out = switch(settings, host)
    assert sw.ml().ok, out.getvalue()
    assert "restoring vllm-deepseek-coder-6-7b=0, vllm-llama-3-1-8b=1, vllm-mistral-7b=0 (configured)" in out.getvalue()


# -- overhead ------------------------------------------------------------------------------------------

def test_overhead_against_the_fake_api(cluster: FakeApiServer, settings: Settings, host: GpuHost,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The tool's own time (kubectl calls, nvidia-smi, HTTP, state writes) excluding the waits, <= 1 s target."""
    figures: dict[str, list[float]] = {"gaming": [], "ml": []}
    for _ in range(3):
        for mode in ("gaming", "ml"):
            sw, out = switch(settings, host)
            result = sw.gaming() if mode == "gaming" else sw.ml()
            assert result.ok and not result.noop, out.getvalue()
            figures[mode].append(result.overhead)
    with capsys.disabled():
        for mode, values in figures.items():
            print(f"\n[gpu-mode overhead] {mode}: median {statistics.median(values):.3f}s "
                  f"(runs {', '.join(f'{v:.3f}' for v in values)}; target <= 1 s; waits excluded)")
    assert statistics.median(figures["gaming"]) <= 1.0
    assert statistics.median(figures["ml"]) <= 1.0


# -- the host command ------------------------------------------------------------------------------------

def test_host_command_runs_standalone_with_the_gaming_stage_config(cluster: FakeApiServer, gateway: Gateway,
                                                                   fake_kubeconfig: Path, tmp_path: Path) -> None:
    """gpu_mode.py copied alone, run with `python3 -I` (no homelab, no site-packages), config in the YAML
    subset the gaming stage writes, nvidia-smi a stand-in script run through the local runner."""
    from deploys.gaming import GPU_MODE_CONFIG

    host_dir = tmp_path / "usr-local-lib-homelab"
    host_dir.mkdir()
    module = host_dir / "gpu_mode.py"
    shutil.copy(REPO / "src" / "homelab" / "ops" / "gpu_mode.py", module)
    key_file = tmp_path / "gpu-mode.key"
    key_file.write_text(API_KEY + "\n")
    rows = tmp_path / "nvidia-rows.csv"
    rows.write_text(f"{os.getpid()}, steam, 640 MiB\n")  # not in a kubepods cgroup
    config = tmp_path / "gpu-mode.yaml"
    config.write_text(GPU_MODE_CONFIG.replace("kubeconfig: /etc/homelab/gpu-mode.kubeconfig",
                                              f"kubeconfig: {fake_kubeconfig}")
                      + f"kubectl: {KUBECTL}\nendpoint: \"{gateway.url}\"  # the gateway\n"
                      + f"api_key_file: {key_file}\nstate_file: {tmp_path / 'var-lib' / 'gpu-mode'}\n"
                      + f"nvidia_smi: {FIXTURES / 'gpu_nvidia_smi_standin.sh'}\npoll_seconds: 0.1\n")
    env = {"PATH": "/usr/bin:/bin", "NVIDIA_SMI_STANDIN_ROWS": str(rows)}
    for mode in ("gaming", "gaming", "status", "ml"):
        proc = subprocess.run([sys.executable, "-I", str(module), "--config", str(config), mode],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert API_KEY not in proc.stdout + proc.stderr
    assert "ok: ml mode in " in proc.stdout and "vLLM restored and ready" in proc.stdout
    assert gpu_mode.read_state(str(tmp_path / "var-lib" / "gpu-mode"))["mode"] == "ml"
    usage = subprocess.run([sys.executable, "-I", str(module), "dance"], capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and "usage: gpu-mode" in usage.stderr


def test_module_imports_only_the_standard_library() -> None:
    source = (REPO / "src" / "homelab" / "ops" / "gpu_mode.py").read_text()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from "))}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# -- pure parts ------------------------------------------------------------------------------------------

def test_config_subset_reads_the_gaming_stage_file_like_yaml_does() -> None:
    from deploys.gaming import GPU_MODE_CONFIG

    assert gpu_mode.parse_config_text(GPU_MODE_CONFIG) == yaml.safe_load(GPU_MODE_CONFIG)
    text = ("# c\nnamespace: ml  # trailing\nquoted: \"a # b\"\nsingle: 'it''s'\nflow: {\"a\": 1}\nlist:\n"
            "  - x\n  - 2\nempty:\nnested:\n  deeper:\n    n: 1.5\n    t: yes\n")
    assert gpu_mode.parse_config_text(text) == yaml.safe_load(text.replace("t: yes", "t: true"))
    s = gpu_mode.settings_from_mapping(gpu_mode.parse_config_text(GPU_MODE_CONFIG), environ={})
    assert (s.namespace, s.selector, s.kubeconfig) == ("ml", "app=vllm", "/etc/homelab/gpu-mode.kubeconfig")
    assert s.timeouts == {"gaming": 30.0, "ml": 120.0}
    assert s.messages["gaming"] == "Gaming Mode: vLLM scaled to 0, GPU available for Steam"
    assert gpu_mode.parse_config_text('{"namespace": "ml"}') == {"namespace": "ml"}


@pytest.mark.parametrize("text, where", [
    ("a: 1\n  b: 2\n", ":2: unexpected indentation"),
    ("a:\n  - k: v\n", ":2: only lists of plain values"),
    ("just words\n", ":1: expected 'key: value'"),
    ("a:\n\tb: 1\n", ":2: tabs are not allowed"),
])
def test_config_errors_name_the_line(text: str, where: str) -> None:
    with pytest.raises(gpu_mode.ConfigError, match=where):
        gpu_mode.parse_config_text(text, "gpu-mode.yaml")


def test_the_key_comes_from_a_file_or_the_environment_never_the_config(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("from-file\n")
    assert gpu_mode.settings_from_mapping({"api_key_file": str(key)}, environ={}).api_key == "from-file"
    assert gpu_mode.settings_from_mapping({}, environ={"GPU_MODE_API_KEY": "from-env"}).api_key == "from-env"
    assert gpu_mode.settings_from_mapping({"api_key": "inline"}, environ={}).api_key == ""
    assert "from-env" not in repr(gpu_mode.settings_from_mapping({}, environ={"GPU_MODE_API_KEY": "from-env"}))
    with pytest.raises(gpu_mode.ConfigError, match="api_key_file"):
        gpu_mode.settings_from_mapping({"api_key_file": str(tmp_path / "missing")}, environ={})


def test_parse_compute_apps_and_cgroups() -> None:
    text = "1234, /usr/bin/python3, 9876 MiB\n\n42, steam, 512 MiB\nNo running processes found\n"
    assert gpu_mode.parse_compute_apps(text) == [gpu_mode.GpuProcess(1234, "/usr/bin/python3", 9876),
                                                 gpu_mode.GpuProcess(42, "steam", 512)]
    assert gpu_mode.parse_compute_apps("[N/A]\n") == []
    assert gpu_mode.is_kubernetes_cgroup("0::/kubepods.slice/kubepods-besteffort.slice/x.scope")
    assert gpu_mode.is_kubernetes_cgroup("12:memory:/kubepods/burstable/pod1/abc")
    assert not gpu_mode.is_kubernetes_cgroup("0::/user.slice/user-1000.slice/session-2.scope")


def test_classify_route() -> None:
    def answer(base: str, model: str) -> gpu_mode.HttpAnswer:
        return gpu_mode.HttpAnswer(200, {"x-litellm-model-api-base": base} if base else {}, {"model": model})

    assert gpu_mode.classify_route(answer("http://ollama.ml.svc.cluster.local:11434", "llama3.2:1b"))[0] == "ollama"
    assert gpu_mode.classify_route(answer("http://vllm-mistral-7b.ml:8000/v1", "mistral-7b-instruct"))[0] == "vllm"
    assert gpu_mode.classify_route(answer("", "hosted_vllm/x"))[0] == "vllm"
    assert gpu_mode.classify_route(answer("", "gpt"))[0] == "unknown"


def test_state_file_accepts_a_bare_mode_word_and_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "gpu-mode"
    assert gpu_mode.read_state(str(path)) == {}
    path.write_text("gaming\n")
    assert gpu_mode.read_state(str(path)) == {"mode": "gaming", "status": "done"}
    gpu_mode.write_state(str(path), {"mode": "ml"})
    assert json.loads(path.read_text()) == {"mode": "ml"}
    assert [p.name for p in tmp_path.iterdir()] == ["gpu-mode"]  # no temp file left behind


def test_ssh_runner_command_line() -> None:
    runner = gpu_mode.SshRunner("tom@192.0.2.25", ["-p", "22", "-i", "/home/tom/.ssh/id_ed25519"])
    assert runner.where == "192.0.2.25"
    assert runner.argv(["nvidia-smi", *gpu_mode.NVIDIA_QUERY]) == [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", "22", "-i", "/home/tom/.ssh/id_ed25519",
        "tom@192.0.2.25",
        "nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader"]
    assert gpu_mode.SshRunner("sbx-gpu-worker", ["-F", "build/sandbox/ssh/config"]).argv(["sh", "-c", "a; b"])[-1] \
        == "sh -c 'a; b'"
