"""Switch the GPU between Steam (gaming mode) and vLLM (ML mode): FR97-FR99, NFR51, NFR52, Story 13.2.

STDLIB ONLY. This file is copied to the GPU host as /usr/local/lib/homelab/gpu_mode.py and run by the
``/usr/local/bin/gpu-mode`` wrapper as ``python3 gpu_mode.py gaming|ml|status`` with settings from
/etc/homelab/gpu-mode.yaml (a small YAML subset or JSON, read without PyYAML). The engine imports the same
module (``homelab.ops.gpu``) and runs it from the operator's machine, reaching the GPU host over SSH.

``gaming``: record the vLLM replica counts, scale every vLLM Deployment (label selector, default
``app=vllm`` in namespace ``ml``) to 0, wait until their pods are gone, confirm on the GPU host that no
Kubernetes process still holds VRAM (``nvidia-smi`` + the process's cgroup), confirm the inference gateway
answers from Ollama, and report the elapsed time against NFR51's 30 s.
``ml``: scale vLLM back to the counts recorded before gaming, wait for readiness, check ``/v1/models`` and
that the gateway routes to vLLM again, and report the elapsed time against NFR52's 2 minutes.

Both are idempotent: in the requested mode already -> "already in gaming mode: nothing to do". A re-run
after a failure continues where the failed run stopped (scaling an already-scaled Deployment is skipped).

Where the mode is recorded, and why in two places:
- on each vLLM Deployment, annotation ``homelab.dev/gpu-mode`` (JSON: mode, replicas before gaming, when,
  by whom). The cluster is what the host-side script and the engine share, so ``gpu-mode gaming`` on the
  NUC followed by ``doit gpu_ml`` on the laptop restores the right counts.
- a local state file (host: /var/lib/homelab/gpu-mode, engine: build/<env>/state/gpu-mode.json), written
  atomically, with the status of the last switch (switching / done / failed). The engine's converge reads
  it offline (``homelab.ops.gpu_state``) so a converge in gaming mode keeps vLLM at 0.

Every expected failure (cluster unreachable, timeout, a Kubernetes process still on the GPU) is a
``SwitchResult`` with ``ok=False`` and one line, never a traceback. The gateway key is never printed.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

ANNOTATION = "homelab.dev/gpu-mode"
MODES = ("gaming", "ml")
TARGET_SECONDS = {"gaming": 30.0, "ml": 120.0}  # NFR51, NFR52: what the elapsed time is reported against
# The hard limits sit above the targets: missing a target by a few seconds is reported, not a failure.
DEFAULT_TIMEOUTS = {"gaming": 60.0, "ml": 300.0}
DEFAULT_MESSAGES = {  # Story 13.2's closing lines
    "gaming": "Gaming Mode: vLLM scaled to 0, GPU available for Steam",
    "ml": "ML Mode: vLLM restored, GPU dedicated to inference",
}
HOST_CONFIG = "/etc/homelab/gpu-mode.yaml"
HOST_STATE = "/var/lib/homelab/gpu-mode"
NVIDIA_QUERY = ("--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader")
ROUTE_HEADER = "x-litellm-model-api-base"  # LiteLLM names the backend that answered in this header


# ---------------------------------------------------------------------------------------------------------
# configuration


class ConfigError(Exception):
    """The configuration file cannot be read; the message names the file and line."""


def _scalar(text: str) -> Any:
    """A YAML-ish scalar: quoted strings, booleans, null, numbers, JSON flow collections, else the text."""
    text = text.strip()
    if not text:
        return None
    if text[0] in "[{\"":
        try:
            return json.loads(text)
        except ValueError:
            return text
    if text[0] == "'" and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("null", "~"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _strip_comment(line: str) -> str:
    """Drop a ``#`` comment that is not inside quotes (``#`` starts a comment only after whitespace)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def parse_config_text(text: str, source: str = "config") -> dict[str, Any]:
    """Parse JSON, or the YAML subset the gaming stage writes: nested ``key: value`` mappings by indentation,
    ``- item`` lists of scalars, comments, quoted strings and JSON flow values. Anything else is a ConfigError
    naming the line, so a hand edit never silently changes meaning."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{source}: invalid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping at the top")
        return data
    lines: list[tuple[int, int, str]] = []  # (line number, indent, content)
    for number, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ConfigError(f"{source}:{number}: tabs are not allowed for indentation")
        content = _strip_comment(raw)
        if content.strip() in ("", "---"):
            continue
        lines.append((number, len(content) - len(content.lstrip()), content.strip()))
    if not lines:
        return {}
    value, end = _parse_block(lines, 0, lines[0][1], source)
    if end != len(lines):
        raise ConfigError(f"{source}:{lines[end][0]}: unexpected indentation")
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: expected a mapping at the top")
    return value


def _parse_block(lines: list[tuple[int, int, str]], i: int, indent: int, source: str) -> tuple[Any, int]:
    if lines[i][2].startswith("- ") or lines[i][2] == "-":
        items: list[Any] = []
        while i < len(lines) and lines[i][1] == indent and (lines[i][2].startswith("- ") or lines[i][2] == "-"):
            number, _, content = lines[i]
            item = content[1:].strip()
            if not item or (": " in item and item[0] not in "[{\"'") or item.endswith(":"):
                raise ConfigError(f"{source}:{number}: only lists of plain values are supported")
            items.append(_scalar(item))
            i += 1
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][1] == indent:
        number, _, content = lines[i]
        if content.startswith("- "):
            raise ConfigError(f"{source}:{number}: a list item where a key was expected")
        key, sep, rest = content.partition(":")
        if not sep or (rest and not rest.startswith(" ")):
            raise ConfigError(f"{source}:{number}: expected 'key: value'")
        key = str(_scalar(key)) if key[:1] in "\"'" else key.strip()
        i += 1
        if rest.strip():
            mapping[key] = _scalar(rest)
        elif i < len(lines) and lines[i][1] > indent:
            mapping[key], i = _parse_block(lines, i, lines[i][1], source)
        else:
            mapping[key] = None
    if i < len(lines) and lines[i][1] > indent:
        raise ConfigError(f"{source}:{lines[i][0]}: unexpected indentation")
    return mapping, i


@dataclass
class Settings:
    """Everything a switch needs. ``api_key`` (the gateway's master key) is excluded from repr and output."""

    kubeconfig: str = ""
    kubectl: str = "kubectl"
    context: str = ""
    namespace: str = "ml"
    selector: str = "app=vllm"
    endpoint: str = ""  # the gateway's OpenAI base URL, e.g. https://llm.<domain>/v1; "" skips the checks
    api_key: str = field(default="", repr=False)
    route_model: str = "default"  # the gateway alias probed to see which backend answers
    nvidia_smi: str = "nvidia-smi"
    vram_check: bool = True  # False where the GPU is a stand-in (the sandbox): said so, never silently
    state_file: str = HOST_STATE
    timeouts: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    messages: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MESSAGES))
    default_replicas: dict[str, int] = field(default_factory=dict)  # used when nothing was recorded
    poll_seconds: float = 0.5
    http_timeout: float = 10.0
    request_timeout: float = 15.0
    actor: str = field(default_factory=socket.gethostname)


def settings_from_mapping(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from a parsed config file. The gateway key comes from ``api_key_file`` or the environment
    variable GPU_MODE_API_KEY, never from the (world-readable) config file itself."""
    env = os.environ if environ is None else environ
    s = Settings()
    for key in ("kubeconfig", "kubectl", "context", "namespace", "selector", "endpoint", "route_model",
                "nvidia_smi", "state_file", "actor"):
        if data.get(key) is not None:
            setattr(s, key, str(data[key]))
    if data.get("selector") is None and data.get("deployment"):
        # older configs name "the vllm deployment"; the chart makes one Deployment per model, all app=<that>
        s.selector = f"app={data['deployment']}"
    for key in ("poll_seconds", "http_timeout", "request_timeout"):
        if data.get(key) is not None:
            setattr(s, key, float(data[key]))
    if data.get("vram_check") is not None:
        s.vram_check = bool(data["vram_check"])
    modes = data.get("modes") or {}
    if not isinstance(modes, Mapping):
        raise ConfigError("modes: expected a mapping")
    for mode in MODES:
        entry = modes.get(mode) or {}
        if entry.get("timeout_seconds") is not None:
            s.timeouts[mode] = float(entry["timeout_seconds"])
        if entry.get("message"):
            s.messages[mode] = str(entry["message"])
    replicas = data.get("replicas") or {}
    if not isinstance(replicas, Mapping):
        raise ConfigError("replicas: expected a mapping of Deployment name to replica count")
    s.default_replicas = {str(k): int(v) for k, v in replicas.items()}
    key_file = data.get("api_key_file")
    if key_file:
        try:
            with open(str(key_file), encoding="utf-8") as fh:
                s.api_key = fh.read().strip()
        except OSError as exc:
            raise ConfigError(f"api_key_file {key_file}: {exc.strerror}") from None
    if env.get("GPU_MODE_API_KEY"):
        s.api_key = env["GPU_MODE_API_KEY"]
    return s


def load_settings(path: str, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and parse a configuration file (ConfigError when missing or malformed)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    return settings_from_mapping(parse_config_text(text, path), environ)


# ---------------------------------------------------------------------------------------------------------
# state


def read_state(path: str) -> dict[str, Any]:
    """The recorded state: JSON, or a bare mode word (a hand-written file); {} when absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError:
        return {}
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        word = text.split()[0]
        return {"mode": word, "status": "done"} if word in MODES else {}
    return data if isinstance(data, dict) else {}


def write_state(path: str, state: Mapping[str, Any]) -> None:
    """Write atomically (temp file, fsync, rename, fsync the directory): a crash leaves old or new, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".gpu-mode.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(state), fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------------------------------------------------
# commands on the GPU host


@dataclass(frozen=True)
class Completed:
    """A finished command: exit code and output."""

    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """Runs a command on the GPU host. ``where`` names the host in messages."""

    where: str

    def __call__(self, argv: list[str], timeout: float) -> Completed: ...


def _run(argv: list[str], timeout: float, stdin: str | None = None) -> Completed:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=stdin, check=False)
    except FileNotFoundError:
        return Completed(127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return Completed(124, "", f"{argv[0]}: no answer within {timeout:.0f}s")
    return Completed(proc.returncode, proc.stdout, proc.stderr)


class LocalRunner:
    """Runs commands here (the script runs on the GPU host itself)."""

    where = "this host"

    def __call__(self, argv: list[str], timeout: float) -> Completed:
        return _run(argv, timeout)


class SshRunner:
    """Runs commands on the GPU host over ssh (the engine's case). ``options`` are ssh arguments before
    the destination, e.g. ``["-F", "build/sandbox/ssh/config"]`` or ``["-p", "22", "-i", key]``."""

    def __init__(self, destination: str, options: list[str] | None = None, ssh: str = "ssh") -> None:
        self.destination = destination
        self.options = list(options or [])
        self.ssh = ssh
        self.where = destination.rpartition("@")[2]

    def argv(self, argv: list[str]) -> list[str]:
        # BatchMode: never prompt for a password in the middle of a switch; the remote side gets one
        # shell-quoted string because ssh joins its arguments with spaces
        return [self.ssh, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *self.options, self.destination,
                shlex.join(argv)]

    def __call__(self, argv: list[str], timeout: float) -> Completed:
        return _run(self.argv(argv), timeout)


@dataclass(frozen=True)
class GpuProcess:
    """One process holding VRAM, as nvidia-smi reports it."""

    pid: int
    name: str
    used_mib: int
    kubernetes: bool = False


def parse_compute_apps(text: str) -> list[GpuProcess]:
    """Rows of ``nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader``:
    ``1234, /usr/bin/python3, 9876 MiB``. "No running processes found" and blank lines yield nothing."""
    found: list[GpuProcess] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        memory = parts[-1].split()[0] if parts[-1] else ""
        found.append(GpuProcess(int(parts[0]), ",".join(parts[1:-1]), int(memory) if memory.isdigit() else 0))
    return found


def is_kubernetes_cgroup(text: str) -> bool:
    """Whether a /proc/<pid>/cgroup belongs to a Kubernetes pod (kubepods slice, any cgroup driver)."""
    return "kubepods" in text


# ---------------------------------------------------------------------------------------------------------
# the gateway


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP answer: ``status`` 0 when there was none (``error`` says why)."""

    status: int
    headers: dict[str, str]
    body: Any
    error: str = ""


def http_json(method: str, url: str, *, body: Any = None, api_key: str = "", timeout: float = 10.0) -> HttpAnswer:
    """One JSON request with the stdlib; never raises for network or HTTP errors."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, headers, raw = response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, dict(exc.headers.items()), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return HttpAnswer(0, {}, None, f"{type(reason).__name__}: {reason}")
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return HttpAnswer(status, {k.lower(): v for k, v in headers.items()}, parsed)


def classify_route(answer: HttpAnswer) -> tuple[str, str]:
    """Which backend answered a chat completion through LiteLLM: ("vllm" | "ollama" | "unknown", evidence).

    LiteLLM names the backend's API base in ``x-litellm-model-api-base`` (``http://vllm-llama-...:8000/v1``
    or ``http://ollama.ml...:11434``); the body's ``model`` is the fallback evidence."""
    api_base = answer.headers.get(ROUTE_HEADER, "")
    model = answer.body.get("model", "") if isinstance(answer.body, dict) else ""
    evidence = " via ".join(part for part in (str(model), api_base) if part) or "no backend named in the answer"
    text = f"{api_base} {model}".lower()
    if "ollama" in text:
        return "ollama", evidence
    if "vllm" in text:
        return "vllm", evidence
    return "unknown", evidence


Http = Callable[..., HttpAnswer]


# ---------------------------------------------------------------------------------------------------------
# the switch


@dataclass(frozen=True)
class SwitchResult:
    """The outcome of a switch. ``waited`` is the time spent waiting for the cluster, the GPU or the gateway
    to change state; ``seconds - waited`` is the tool's own overhead."""

    ok: bool
    message: str
    seconds: float
    mode: str
    waited: float = 0.0
    noop: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def overhead(self) -> float:
        return max(0.0, self.seconds - self.waited)


@dataclass
class Deployment:
    """What the switch reads of one vLLM Deployment."""

    name: str
    replicas: int
    ready: int
    current: int  # status.replicas: pods that are not terminating
    updated: int
    settled: bool  # the controller has seen the latest spec (observedGeneration >= generation)
    record: dict[str, Any]


class SwitchFailed(Exception):
    """An expected failure inside a switch; becomes ``SwitchResult(ok=False)``."""


class _Steps:
    """Prints ``[ 2.1s] text`` lines and keeps the clock; ``waited`` accumulates time spent in waits."""

    def __init__(self, out: TextIO, clock: Callable[[], float], scrub: Callable[[str], str]) -> None:
        self.out = out
        self.clock = clock
        self.scrub = scrub
        self.started = clock()
        self.waited = 0.0

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def say(self, text: str) -> None:
        self.out.write(f"[{self.elapsed:4.1f}s] {self.scrub(text)}\n")
        self.out.flush()


class GpuMode:
    """The switch. ``runner`` reaches the GPU host (LocalRunner / SshRunner / a test double); ``http`` is
    ``http_json`` unless a test passes another; ``out`` receives the step lines."""

    def __init__(self, settings: Settings, runner: Runner | None = None, *, out: TextIO | None = None,
                 http: Http | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.s = settings
        self.runner: Runner = runner or LocalRunner()
        self.out = out or sys.stdout
        self.http: Http = http or http_json
        self.clock = clock
        self.sleep = sleep
        self.steps = _Steps(self.out, clock, self.scrub)

    # -- plumbing -----------------------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """Never let the gateway key reach the terminal, whatever an error message quotes."""
        return text.replace(self.s.api_key, "<redacted>") if self.s.api_key else text

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        argv = [self.s.kubectl]
        if self.s.kubeconfig:
            argv += ["--kubeconfig", self.s.kubeconfig]
        if self.s.context:
            argv += ["--context", self.s.context]
        argv += [f"--request-timeout={int(self.s.request_timeout)}s", "-n", self.s.namespace, *args]
        done = _run(argv, self.s.request_timeout + 15, stdin)
        if done.returncode != 0:
            lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit code {done.returncode}"
            raise SwitchFailed(f"kubectl {args[0]} failed: {last[:300]}")
        return done.stdout

    def _get(self, kind: str) -> list[dict[str, Any]]:
        text = self.kubectl("get", kind, "-l", self.s.selector, "-o", "json")
        try:
            data = json.loads(text or "{}")
        except ValueError:
            raise SwitchFailed(f"kubectl get {kind}: unreadable output") from None
        items: list[dict[str, Any]] = data.get("items") or [] if isinstance(data, dict) else []
        return items

    def deployments(self) -> list[Deployment]:
        found = []
        for item in self._get("deployments"):
            meta, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
            try:
                record = json.loads((meta.get("annotations") or {}).get(ANNOTATION) or "{}")
            except ValueError:
                record = {}
            found.append(Deployment(
                name=str(meta.get("name")), replicas=int(spec.get("replicas", 1)),
                ready=int(status.get("readyReplicas") or 0), current=int(status.get("replicas") or 0),
                updated=int(status.get("updatedReplicas") or 0),
                settled=int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0),
                record=record if isinstance(record, dict) else {}))
        return sorted(found, key=lambda d: d.name)

    def pods(self) -> list[dict[str, Any]]:
        return self._get("pods")

    def wait(self, check: Callable[[], tuple[bool, str]], deadline: float, what: str) -> str:
        """Poll ``check`` until it returns (True, _) or the deadline passes (SwitchFailed naming ``what`` and
        the last state). Progress lines are printed when the state text changes. The time after the first,
        unsatisfied check counts as waiting, not as overhead."""
        done, state = check()
        if done:
            return state
        started = self.clock()
        shown = ""
        try:
            while True:
                if state != shown:
                    self.steps.say(f"waiting: {state}")
                    shown = state
                if self.clock() >= deadline:
                    raise SwitchFailed(f"{what} (timeout): {state}")
                self.sleep(min(self.s.poll_seconds, max(0.0, deadline - self.clock())))
                done, state = check()
                if done:
                    return state
        finally:
            self.steps.waited += self.clock() - started

    @staticmethod
    def recorded(deps: list[Deployment]) -> dict[str, Any]:
        """The newest cluster record among the Deployments' annotations."""
        records = [d.record for d in deps if d.record.get("mode") in MODES]
        return max(records, key=lambda r: str(r.get("at", "")), default={})

    def annotate(self, deps: list[Deployment], record: dict[str, Any]) -> None:
        if deps:
            value = json.dumps(record, sort_keys=True, separators=(",", ":"))
            self.kubectl("annotate", "deployment", *[d.name for d in deps], f"{ANNOTATION}={value}", "--overwrite")

    def scale(self, deps: list[Deployment], targets: dict[str, int]) -> None:
        """One ``kubectl scale`` per distinct target count, only for Deployments not there yet."""
        by_target: dict[int, list[Deployment]] = {}
        for d in deps:
            if d.replicas != targets[d.name]:
                by_target.setdefault(targets[d.name], []).append(d)
        for target, group in sorted(by_target.items()):
            self.kubectl("scale", "deployment", *[d.name for d in group], f"--replicas={target}")
            for d in group:
                self.steps.say(f"scaled {self.s.namespace}/{d.name} {d.replicas} -> {target}")
        unchanged = [d.name for d in deps if d.replicas == targets[d.name]]
        if unchanged:
            self.steps.say(f"already at the wanted replicas: {', '.join(unchanged)}")

    def save(self, state: dict[str, Any]) -> None:
        try:
            write_state(self.s.state_file, state)
        except OSError as exc:
            raise SwitchFailed(f"cannot record the mode in {self.s.state_file}: {exc.strerror}") from None

    def _finish(self, mode: str, state: dict[str, Any], ok: bool, message: str, *, noop: bool = False,
                record: bool = True, **details: Any) -> SwitchResult:
        """Build the result; record the outcome unless nothing was changed (a no-op, or a failure before
        the first change: the previous record stays true)."""
        seconds = self.steps.elapsed
        if record and not noop:
            state.update(status="done" if ok else "failed", message=message, finished_at=_now(),
                         seconds=round(seconds, 2))
            try:
                write_state(self.s.state_file, state)
            except OSError as exc:
                ok, message = False, f"{message}; and the mode could not be recorded: {exc.strerror}"
        result = SwitchResult(ok, self.scrub(message), round(seconds, 3), mode, round(self.steps.waited, 3),
                              noop, details)
        self.steps.say(("ok: " if ok else "FAILED: ") + result.message)
        return result

    def _timing(self, mode: str) -> tuple[str, bool]:
        """``12.3s (target 30s: met)``: the elapsed time against the NFR target, and whether it was met."""
        elapsed, target = self.steps.elapsed, TARGET_SECONDS[mode]
        met = elapsed <= target
        verdict = "met" if met else f"MISSED by {elapsed - target:.1f}s"
        return f"{elapsed:.1f}s (target {target:.0f}s: {verdict})", met

    # -- GPU and gateway checks ----------------------------------------------------------------------------

    def gpu_processes(self) -> list[GpuProcess]:
        """Processes holding VRAM on the GPU host, each marked when its cgroup is a Kubernetes pod's."""
        done = self.runner([self.s.nvidia_smi, *NVIDIA_QUERY], timeout=20)
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()
            raise SwitchFailed(f"nvidia-smi on {self.runner.where} failed: "
                               f"{reason[-1][:200] if reason else f'exit code {done.returncode}'}")
        found = parse_compute_apps(done.stdout)
        if not found:
            return []
        # one call for every pid; a process that exited meanwhile simply has no cgroup file any more
        script = "; ".join(f"printf '%s ' {p.pid}; tr '\\n' ' ' 2>/dev/null < /proc/{p.pid}/cgroup; echo"
                           for p in found)
        cgroups = self.runner(["sh", "-c", script], timeout=20)
        kube_pids = set()
        for line in cgroups.stdout.splitlines():
            pid, _, text = line.partition(" ")
            if pid.isdigit() and is_kubernetes_cgroup(text):
                kube_pids.add(int(pid))
        return [GpuProcess(p.pid, p.name, p.used_mib, p.pid in kube_pids) for p in found]

    def confirm_vram_free(self, deadline: float) -> str:
        if not self.s.vram_check:
            return "GPU check skipped: the GPU is a stand-in here (vram_check: false)"

        def check() -> tuple[bool, str]:
            procs = self.gpu_processes()
            kube = [p for p in procs if p.kubernetes]
            others = [p for p in procs if not p.kubernetes]
            if kube:
                listing = ", ".join(f"pid {p.pid} {p.name} {p.used_mib} MiB" for p in kube)
                return False, f"Kubernetes process(es) still hold VRAM on {self.runner.where}: {listing}"
            extra = f" ({len(others)} other process(es), {sum(p.used_mib for p in others)} MiB)" if others else ""
            return True, f"GPU on {self.runner.where}: no Kubernetes process holds VRAM{extra}"

        return self.wait(check, deadline, "VRAM not released")

    def url(self, path: str) -> str:
        return self.s.endpoint.rstrip("/") + path

    def probe_route(self) -> tuple[str, str]:
        answer = self.http("POST", self.url("/chat/completions"), api_key=self.s.api_key,
                           timeout=self.s.http_timeout,
                           body={"model": self.s.route_model, "max_tokens": 1, "temperature": 0,
                                 "messages": [{"role": "user", "content": "Reply with OK."}]})
        if answer.status != 200:
            return "none", (f"HTTP {answer.status}" if answer.status else answer.error)
        return classify_route(answer)

    def confirm_route(self, backend: str, deadline: float) -> str:
        """Wait until a chat completion through the gateway is answered by ``backend``."""
        if not self.s.endpoint:
            return "gateway check skipped: no endpoint configured"
        label = {"vllm": "vLLM", "ollama": "Ollama"}[backend]

        def check() -> tuple[bool, str]:
            got, evidence = self.probe_route()
            if got == backend:
                return True, f"{self.s.endpoint} answers from {label} ({evidence})"
            return False, f"{self.s.endpoint} answers from {got} ({evidence}), want {label}"

        return self.wait(check, deadline, f"the gateway does not route to {label}")

    def confirm_models(self, deadline: float) -> str:
        if not self.s.endpoint:
            return "gateway check skipped: no endpoint configured"

        def check() -> tuple[bool, str]:
            answer = self.http("GET", self.url("/models"), api_key=self.s.api_key, timeout=self.s.http_timeout)
            models = answer.body.get("data") if isinstance(answer.body, dict) else None
            if answer.status == 200 and isinstance(models, list):
                names = ", ".join(str(m.get("id")) for m in models[:6] if isinstance(m, dict))
                return True, f"GET {self.url('/models')}: {len(models)} model(s): {names}"
            why = f"HTTP {answer.status}" if answer.status else answer.error
            return False, f"GET {self.url('/models')}: {why}"

        return self.wait(check, deadline, "/v1/models does not answer")

    # -- the modes ---------------------------------------------------------------------------------------

    def gaming(self) -> SwitchResult:
        """Scale vLLM to 0, wait for the pods to go, confirm the GPU is free and the gateway on Ollama."""
        mode = "gaming"
        deadline = self.steps.started + self.s.timeouts[mode]
        state: dict[str, Any] = read_state(self.s.state_file)
        changed = False
        try:
            self.steps.say(f"gaming mode: vLLM Deployments -l {self.s.selector} in namespace {self.s.namespace}")
            deps = self.deployments()
            pods = self.pods()
            record = self.recorded(deps)
            recorded_mode = record.get("mode") or state.get("mode")
            unfinished_here = state.get("mode") == mode and state.get("status") != "done"
            if (recorded_mode == mode and not unfinished_here and not pods
                    and all(d.replicas == 0 for d in deps)):
                return self._finish(mode, state, True, "already in gaming mode: nothing to do", noop=True)
            if not deps:
                self.steps.say(f"no Deployment matches -l {self.s.selector}: nothing to scale")
            # Counts to restore later. Re-running an unfinished gaming switch must not overwrite the counts
            # recorded before it with the zeros it set itself.
            previous = record.get("replicas") if record.get("mode") == mode else (
                state.get("replicas") if state.get("mode") == mode else None)
            previous = previous if isinstance(previous, dict) else {}
            keep = {d.name: d.replicas if d.replicas > 0 else int(previous.get(d.name, 0)) for d in deps}
            state = {"mode": mode, "status": "switching", "replicas": keep, "started_at": _now(),
                     "by": self.s.actor}
            self.save(state)
            changed = True
            self.annotate(deps, {"mode": mode, "replicas": keep, "at": _now(), "by": self.s.actor})
            self.steps.say("recorded for ml mode: " + (", ".join(f"{k}={v}" for k, v in keep.items()) or "nothing"))
            self.scale(deps, {d.name: 0 for d in deps})

            def pods_gone() -> tuple[bool, str]:
                left = self.pods()
                names = ", ".join(str((p.get("metadata") or {}).get("name")) for p in left)
                return not left, f"{len(left)} vLLM pod(s) terminating: {names}" if left else "vLLM pods gone"

            self.steps.say(self.wait(pods_gone, deadline, "vLLM pods still running"))
            self.steps.say(self.confirm_vram_free(deadline))
            self.steps.say(self.confirm_route("ollama", deadline))
            timing, met = self._timing(mode)
            self.steps.say(f"gaming mode reached in {timing}")
            self.steps.say(self.s.messages[mode])
            return self._finish(mode, state, True, f"gaming mode in {timing}: vLLM at 0, GPU free, gateway on Ollama",
                                target_met=met)
        except SwitchFailed as exc:
            return self._finish(mode, state, False, f"gaming mode not reached: {exc}", record=changed)

    def ml(self) -> SwitchResult:
        """Scale vLLM back to the recorded counts, wait for readiness, confirm the gateway routes to vLLM."""
        mode = "ml"
        deadline = self.steps.started + self.s.timeouts[mode]
        state: dict[str, Any] = read_state(self.s.state_file)
        changed = False
        try:
            self.steps.say(f"ml mode: vLLM Deployments -l {self.s.selector} in namespace {self.s.namespace}")
            deps = self.deployments()
            if not deps:
                raise SwitchFailed(f"no Deployment matches -l {self.s.selector} in namespace {self.s.namespace} "
                                   "(converge the vllm release first)")
            record = self.recorded(deps)
            recorded_mode = record.get("mode") or state.get("mode") or mode
            unfinished_here = state.get("mode") == mode and state.get("status") != "done"
            if (recorded_mode == mode and not unfinished_here and any(d.replicas > 0 for d in deps)
                    and all(self._ready(d) for d in deps)):
                return self._finish(mode, state, True, "already in ml mode: nothing to do", noop=True)
            targets, sources = self.restore_targets(deps, record, state)
            if not any(targets.values()):
                raise SwitchFailed(
                    "nothing to restore: no replica counts were recorded when gaming mode started and none are "
                    "configured (set `replicas:` in the gpu-mode config, or run `doit gpu_ml`, which falls back "
                    "to the vllm release's values)")
            by_source: dict[str, list[str]] = {}
            for name, count in targets.items():
                by_source.setdefault(sources[name], []).append(f"{name}={count}")
            self.steps.say("restoring " + "; ".join(f"{', '.join(v)} ({k})" for k, v in by_source.items()))
            state = {"mode": mode, "status": "switching", "replicas": targets, "started_at": _now(),
                     "by": self.s.actor}
            self.save(state)
            changed = True
            self.annotate(deps, {"mode": mode, "replicas": targets, "at": _now(), "by": self.s.actor})
            self.scale(deps, targets)

            def all_ready() -> tuple[bool, str]:
                current = self.deployments()
                want = [d for d in current if targets.get(d.name, d.replicas) > 0]
                text = ", ".join(f"{d.name} {d.ready}/{d.replicas} ready" for d in want)
                return all(self._ready(d) for d in current), text

            try:
                self.steps.say("vLLM ready: " + self.wait(all_ready, deadline, "vLLM not ready"))
            except SwitchFailed as exc:
                raise SwitchFailed(f"{exc}{self.pod_problems()}; see kubectl -n {self.s.namespace} describe pods "
                                   f"-l {self.s.selector}") from None
            self.steps.say(self.confirm_models(deadline))
            self.steps.say(self.confirm_route("vllm", deadline))
            self.steps.say(self.vram_info())
            timing, met = self._timing(mode)
            self.steps.say(f"ml mode reached in {timing}")
            self.steps.say(self.s.messages[mode])
            return self._finish(mode, state, True, f"ml mode in {timing}: vLLM restored and ready, gateway on vLLM",
                                target_met=met)
        except SwitchFailed as exc:
            return self._finish(mode, state, False, f"ml mode not reached: {exc}", record=changed)

    def status(self) -> SwitchResult:
        """Print the recorded mode, the Deployments and their pods; changes nothing."""
        state = read_state(self.s.state_file)
        try:
            deps = self.deployments()
            pods = self.pods()
        except SwitchFailed as exc:
            return self._finish(str(state.get("mode", "unknown")), state, False, str(exc), noop=True)
        record = self.recorded(deps)
        mode = str(record.get("mode") or state.get("mode") or "ml")
        self.steps.say(f"recorded mode: cluster {record.get('mode', 'none')} (by {record.get('by', '-')}), "
                       f"local {state.get('mode', 'none')} ({state.get('status', '-')}) in {self.s.state_file}")
        for d in deps:
            self.steps.say(f"{self.s.namespace}/{d.name}: {d.ready}/{d.replicas} ready")
        self.steps.say(f"{len(pods)} vLLM pod(s)")
        last = f" (last switch here: {state['status']})" if state.get("mode") == mode and state.get("status") else ""
        return self._finish(mode, state, True, f"{mode} mode{last}", noop=True)

    # -- helpers of ml -------------------------------------------------------------------------------------

    @staticmethod
    def _ready(d: Deployment) -> bool:
        return d.settled and d.ready >= d.replicas and d.updated >= d.replicas and d.current == d.replicas

    def restore_targets(self, deps: list[Deployment], record: dict[str, Any],
                        state: dict[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
        """Per Deployment: the count recorded in the cluster, else in the local state, else configured
        (the engine passes the vllm release's values), else what it runs now."""
        sources_in_order: list[tuple[str, Any]] = [
            ("recorded in the cluster", record.get("replicas") if record.get("mode") == "gaming" else None),
            ("recorded locally", state.get("replicas") if state.get("mode") == "gaming" else None),
            # a failed ml run already restored the counts it meant: re-use them
            ("recorded by the last ml run", record.get("replicas") if record.get("mode") == "ml" else None),
            ("configured", self.s.default_replicas),
        ]
        targets: dict[str, int] = {}
        sources: dict[str, str] = {}
        for d in deps:
            for label, counts in sources_in_order:
                if isinstance(counts, dict) and d.name in counts:
                    targets[d.name], sources[d.name] = int(counts[d.name]), label
                    break
            else:
                targets[d.name], sources[d.name] = d.replicas, "unchanged"
        return targets, sources

    def pod_problems(self) -> str:
        """Why pods are not ready, for the timeout message (best effort)."""
        try:
            pods = self.pods()
        except SwitchFailed:
            return ""
        notes = []
        for pod in pods:
            name = (pod.get("metadata") or {}).get("name")
            status = pod.get("status") or {}
            reasons = [((c.get("state") or {}).get("waiting") or {}).get("reason")
                       for c in status.get("containerStatuses") or []]
            reason = next((r for r in reasons if r), None) or status.get("phase", "unknown")
            notes.append(f"pod {name}: {reason}, not ready")
        return f" ({'; '.join(notes)})" if notes else ""

    def vram_info(self) -> str:
        """VRAM held by Kubernetes processes after ml mode (informational: a failure here is a warning)."""
        if not self.s.vram_check:
            return "GPU check skipped: the GPU is a stand-in here (vram_check: false)"
        try:
            kube = [p for p in self.gpu_processes() if p.kubernetes]
        except SwitchFailed as exc:
            return f"warning: {exc}"
        return (f"GPU on {self.runner.where}: {len(kube)} Kubernetes process(es) hold "
                f"{sum(p.used_mib for p in kube)} MiB")


# ---------------------------------------------------------------------------------------------------------
# command line (the GPU host)


def main(argv: list[str] | None = None) -> int:
    """``python3 gpu_mode.py [--config FILE] gaming|ml|status``: exit 0 done, 1 failed, 2 usage/config."""
    args = list(sys.argv[1:] if argv is None else argv)
    config = os.environ.get("GPU_MODE_CONFIG", HOST_CONFIG)
    if len(args) >= 2 and args[0] == "--config":
        config, args = args[1], args[2:]
    if len(args) != 1 or args[0] not in (*MODES, "status"):
        print("usage: gpu-mode [--config FILE] gaming|ml|status", file=sys.stderr)
        return 2
    try:
        settings = load_settings(config)
    except (ConfigError, ValueError, TypeError) as exc:
        print(f"gpu-mode: {exc}", file=sys.stderr)
        return 2
    switch = GpuMode(settings, LocalRunner())
    result = {"gaming": switch.gaming, "ml": switch.ml, "status": switch.status}[args[0]]()
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
