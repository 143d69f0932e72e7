"""Test fake: the HTTP front end and test control API of the FAKE Kubernetes API server.

:class:`FakeApiServer` binds a stdlib ``ThreadingHTTPServer`` to 127.0.0.1 on a free port (TCP_NODELAY on)
and routes the Kubernetes REST paths (discovery, CRUD, patch, server-side apply, watch, scale/status/
eviction subresources) to :class:`~.store.Store`, with :class:`~.workloads.Simulator` standing in for the
controllers. Every request is logged in memory (:attr:`FakeApiServer.requests`), and hooks can observe or
answer requests (inject failures, count calls). Nothing is printed.
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import discovery, helmstore, protobuf
from .resources import ResourceType
from .store import ApiError, Obj, Store
from .workloads import Rule, Simulator

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


@dataclass
class RequestRecord:
    """One request the fake server received (kept in memory, in arrival order)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    time: float = field(default_factory=time.time)
    status: int = 0

    @property
    def user_agent(self) -> str:
        """The User-Agent header (``kubectl/v1.35.2 ...``, ``Helm/4.1.4``, ``OpenAPI-Generator/...``)."""
        return self.headers.get("user-agent", "")

    @property
    def content_type(self) -> str:
        """The Content-Type header without parameters."""
        return self.headers.get("content-type", "").split(";")[0].strip()

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        vals = self.query.get(name)
        return vals[0] if vals else default

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def is_watch(self) -> bool:
        """Whether this was a watch request."""
        return self.param("watch", "") in ("true", "1", "True")

    def __str__(self) -> str:
        q = "&".join(f"{k}={v}" for k, vs in self.query.items() for v in vs)
        return f"{self.method} {self.path}{'?' + q if q else ''} -> {self.status}"


# A hook sees each request before it is handled; returning (code, body) answers it instead.
Hook = Callable[[RequestRecord], "tuple[int, Obj] | None"]


class _Stream:
    """Marker result: stream these watch events."""

    def __init__(self, events: Iterator[Obj]) -> None:
        self.events = events


def _truthy(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1")


def _manager_from(record: RequestRecord) -> str:
    explicit = record.param("fieldManager")
    if explicit:
        return explicit
    ua = record.user_agent
    return ua.split("/")[0] if ua else "unknown"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY: otherwise ~45 ms per request with Go clients
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log (requests are recorded in memory)."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        api = self.server.api
        parts = urlsplit(self.path)
        record = RequestRecord(
            method=method,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        api._log(record)
        extra_headers: dict[str, str] = {}
        try:
            answer = api._run_hooks(record)
            if answer is not None:
                code, payload = answer
            elif api.token and self.headers.get("Authorization", f"Bearer {api.token}") != f"Bearer {api.token}":
                code, payload = 401, ApiError(401, "Unauthorized", "Unauthorized").status()
            else:
                code, payload = api._route(record)
        except ApiError as exc:
            code, payload, extra_headers = exc.code, exc.status(), exc.headers
        except Exception as exc:
            api.store.errors.append(f"{record}: {exc!r}\n{traceback.format_exc()}")
            code, payload = 500, ApiError(500, "InternalError", f"fake API server error: {exc!r}").status()
        record.status = code
        if isinstance(payload, _Stream):
            self._stream(payload)
            return
        if isinstance(payload, str):
            body, ctype = payload.encode(), "text/plain; charset=utf-8"
        else:
            body, ctype = json.dumps(payload, separators=(",", ":")).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in extra_headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, stream: _Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        try:
            for event in stream.events:
                data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            close = getattr(stream.events, "close", None)
            if close is not None:
                close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, api: FakeApiServer) -> None:
        self.api = api
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record handler crashes instead of printing them; clients hanging up are not errors."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        self.api.store.errors.append(f"request handler crashed: {exc!r}\n{traceback.format_exc()}")


class FakeApiServer:
    """A FAKE Kubernetes API server for tests (stdlib HTTP on 127.0.0.1, in-memory state).

    Use as a context manager or call :meth:`start` / :meth:`stop`. Point real clients at it with
    :meth:`write_kubeconfig`; inspect state through :attr:`store`; steer workloads with the control methods
    (:meth:`never_ready`, :meth:`ready_after`, :meth:`slow_termination`, :meth:`complete_job`, ...); observe
    traffic with :attr:`requests`, :meth:`count` and :meth:`add_hook`.
    """

    def __init__(
        self,
        *,
        token: str = "fake-token",
        server_version: str = "v1.35.2",
        nodes: tuple[str, ...] | list[str] = (),
        pod_termination_seconds: float = 0.0,
    ) -> None:
        self.token = token
        self.server_version = server_version
        self.store = Store()
        self.sim = Simulator(self.store, pod_termination_seconds=pod_termination_seconds)
        self._initial_nodes = list(nodes)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: list[RequestRecord] = []
        self._req_lock = threading.Lock()
        self._hooks: list[Hook] = []
        self._stopping = threading.Event()

    # --------------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeApiServer:
        """Bind to a free port on 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakeapi-http", daemon=True)
        self._thread.start()
        for name in self._initial_nodes:
            self.add_node(name)
        return self

    def stop(self) -> None:
        """Stop serving, end open watches and the simulator's timers."""
        self._stopping.set()
        self.store.close()
        self.sim.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("FakeApiServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default", context: str = "fake") -> Path:
        """Write a kubeconfig (token auth, plain http) for kubectl, helm and the Python client."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            f"- name: {context}\n"
            "  cluster:\n"
            f"    server: {self.url}\n"
            "users:\n"
            f"- name: {context}\n"
            "  user:\n"
            f"    token: {self.token}\n"
            "contexts:\n"
            f"- name: {context}\n"
            "  context:\n"
            f"    cluster: {context}\n"
            f"    user: {context}\n"
            f"    namespace: {namespace}\n"
            f"current-context: {context}\n"
        )
        p.chmod(0o600)
        return p

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured for this server (imports the client lazily)."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        cfg.api_key = {"authorization": self.token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(cfg)

    @property
    def errors(self) -> list[str]:
        """Internal failures of the fake itself (a test suite should see none)."""
        return self.store.errors

    # ---------------------------------------------------------------------------------- request log

    def _log(self, record: RequestRecord) -> None:
        with self._req_lock:
            self._requests.append(record)

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request received so far."""
        with self._req_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the logged requests."""
        with self._req_lock:
            self._requests.clear()

    def count(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        agent: str | None = None,
        watch: bool | None = None,
        since: float | None = None,
    ) -> int:
        """Count logged requests: ``method`` exact, ``path`` a regex searched in the path, ``agent`` a
        case-insensitive substring of the User-Agent, ``watch`` filters watch requests, ``since`` a time."""
        n = 0
        for r in self.requests:
            if method and r.method != method.upper():
                continue
            if path and not re.search(path, r.path):
                continue
            if agent and agent.lower() not in r.user_agent.lower():
                continue
            if watch is not None and r.is_watch != watch:
                continue
            if since is not None and r.time < since:
                continue
            n += 1
        return n

    def add_hook(self, hook: Hook) -> Hook:
        """Call ``hook(record)`` before each request; a ``(code, body)`` return answers the request."""
        self._hooks.append(hook)
        return hook

    def remove_hook(self, hook: Hook) -> None:
        """Remove a hook added with :meth:`add_hook`."""
        self._hooks.remove(hook)

    def fail(self, method: str, path: str, *, code: int = 500, times: int = 1, message: str = "injected") -> Hook:
        """Answer the next ``times`` requests matching ``method`` and the ``path`` regex with an error."""
        left = [times]
        reason = {409: "Conflict", 404: "NotFound", 429: "TooManyRequests", 503: "ServiceUnavailable"}.get(
            code, "InternalError")

        def hook(r: RequestRecord) -> tuple[int, Obj] | None:
            if left[0] > 0 and r.method == method.upper() and re.search(path, r.path):
                left[0] -= 1
                return code, ApiError(code, reason, message).status()
            return None

        return self.add_hook(hook)

    def _run_hooks(self, record: RequestRecord) -> tuple[int, Obj] | None:
        for hook in list(self._hooks):
            answer = hook(record)
            if answer is not None:
                return answer
        return None

    # -------------------------------------------------------------------------------- control API

    def configure(
        self,
        kind: str = "*",
        name: str = "*",
        namespace: str = "*",
        *,
        ready: str | float | None = None,
        terminate_after: float | None = None,
        job: str | float | None = None,
    ) -> Rule:
        """Add a workload behaviour rule (see :class:`~.workloads.Rule`); later rules win."""
        return self.sim.configure(kind, name, namespace, ready=ready, terminate_after=terminate_after, job=job)

    def never_ready(self, kind: str, name: str = "*", namespace: str = "*") -> Rule:
        """Pods of matching workloads never become ready (``helm --wait`` / rollout status time out)."""
        return self.configure(kind, name, namespace, ready="never")

    def ready_after(self, kind: str, name: str, seconds: float, namespace: str = "*") -> Rule:
        """Pods of matching workloads become ready ``seconds`` after they are created."""
        return self.configure(kind, name, namespace, ready=float(seconds))

    def make_ready(self, kind: str, name: str = "*", namespace: str = "*") -> Rule:
        """Matching workloads become ready now (overrides earlier rules)."""
        return self.configure(kind, name, namespace, ready="ready")

    def crash(self, kind: str, name: str = "*", namespace: str = "*") -> Rule:
        """Pods of matching workloads sit in CrashLoopBackOff."""
        return self.configure(kind, name, namespace, ready="crash")

    def fail_rollout(self, name: str = "*", namespace: str = "*") -> Rule:
        """Matching Deployments never become ready and report ``ProgressDeadlineExceeded``."""
        return self.configure("Deployment", name, namespace, ready="fail")

    def slow_termination(self, seconds: float, kind: str = "*", name: str = "*", namespace: str = "*") -> Rule:
        """Deleted pods of matching workloads stay terminating for ``seconds`` before they disappear."""
        return self.configure(kind, name, namespace, terminate_after=float(seconds))

    def job_outcome(self, outcome: str | float, name: str = "*", namespace: str = "*") -> Rule:
        """How matching Jobs end: ``"complete"`` (default), ``"fail"``, ``"run"`` (forever) or seconds."""
        return self.configure("Job", name, namespace, job=outcome)

    def complete_job(self, name: str, namespace: str = "default") -> None:
        """Make an existing Job succeed now."""
        self.sim.finish_job(name, namespace, "success")

    def fail_job(self, name: str, namespace: str = "default") -> None:
        """Make an existing Job fail now (``BackoffLimitExceeded``)."""
        self.sim.finish_job(name, namespace, "failed")

    def add_node(self, name: str, **kwargs: Any) -> Obj:
        """Create a Node; see :meth:`~.workloads.Simulator.add_node` for the options."""
        return self.sim.add_node(name, **kwargs)

    def set_node_ready(self, name: str, ready: bool = True) -> None:
        """Set a Node Ready or NotReady."""
        self.sim.set_node_ready(name, ready)

    def set_kubelet_version(self, name: str, version: str) -> None:
        """Set the kubelet version a Node reports."""
        self.sim.set_kubelet_version(name, version)

    # ------------------------------------------------------------------------------------ helm helpers

    def helm_releases(self, namespace: str | None = None) -> list[helmstore.HelmRelease]:
        """Every helm release revision stored in the fake (decoded from the release Secrets)."""
        return helmstore.list_releases(self.store, namespace)

    def set_helm_release_status(self, name: str, namespace: str, status: str, revision: int | None = None) -> None:
        """Rewrite a stored helm release's status (e.g. ``pending-upgrade``) in its body and labels."""
        helmstore.set_status(self.store, name, namespace, status, revision)

    # ------------------------------------------------------------------------------------------- routing

    def _route(self, r: RequestRecord) -> tuple[int, Any]:
        path = r.path.rstrip("/") or "/"
        segs = [s for s in path.split("/") if s]
        registry = self.store.registry
        if path == "/version":
            return 200, discovery.version_info(self.server_version)
        if path in ("/healthz", "/livez", "/readyz"):
            return 200, "ok"
        if path == "/openapi/v3":
            return 200, discovery.openapi_v3_root(registry)
        if path.startswith("/openapi/v3/"):
            rest_gv = segs[2:]
            gv_doc = None
            if rest_gv[:1] == ["api"] and len(rest_gv) == 2:
                gv_doc = discovery.openapi_v3_group_version(registry, "", rest_gv[1])
            elif rest_gv[:1] == ["apis"] and len(rest_gv) == 3:
                gv_doc = discovery.openapi_v3_group_version(registry, rest_gv[1], rest_gv[2])
            if gv_doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return 200, gv_doc
        if not segs or segs[0] not in ("api", "apis"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if segs[0] == "api":
            if len(segs) == 1:
                return 200, discovery.api_versions(f"127.0.0.1:{self.port}")
            group, version, rest = "", segs[1], segs[2:]
        else:
            if len(segs) == 1:
                return 200, discovery.api_group_list(registry)
            if len(segs) == 2:
                doc = discovery.api_group(registry, segs[1])
                if doc is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return 200, doc
            group, version, rest = segs[1], segs[2], segs[3:]
        if not rest:
            if r.method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            doc = discovery.api_resource_list(registry, group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return 200, doc
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            inner = registry.lookup(group, version, rest[2])
            if inner is not None and inner.namespaced:
                ns, rest = rest[1], rest[2:]
        rt = registry.lookup(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name:
            return self._object(r, rt, version, ns, name, sub)
        return self._collection(r, rt, version, ns)

    def _wants_table(self, r: RequestRecord) -> bool:
        return "as=Table" in r.headers.get("accept", "")

    def _collection(self, r: RequestRecord, rt: ResourceType, version: str, ns: str) -> tuple[int, Any]:
        store = self.store
        if r.method == "GET":
            label, fsel = r.param("labelSelector"), r.param("fieldSelector")
            if r.is_watch:
                timeout = float(r.param("timeoutSeconds") or 1800)
                si = r.param("sendInitialEvents")
                events = store.watch(
                    rt, ns or None, label_selector=label, field_selector=fsel,
                    resource_version=r.param("resourceVersion"),
                    send_initial=_truthy(si) if si is not None else None,
                    timeout=timeout, version=version, stop=self._stopping.is_set,
                )
                return 200, _Stream(events)
            items, rv = store.list_objects(rt, ns or None, label, fsel, version=version)
            if self._wants_table(r):
                return 200, discovery.to_table(rt, items, rv, r.param("includeObject") or "Metadata")
            return 200, {
                "kind": rt.list_kind or f"{rt.kind}List",
                "apiVersion": rt.api_version(version),
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        if r.method == "POST":
            if rt.namespaced and not ns:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                               "resource")
            obj = store.create(rt, ns, self._body(r), manager=_manager_from(r), dry_run=self._dry(r),
                               version=version)
            return 201, obj
        if r.method == "DELETE":
            items, _ = store.list_objects(rt, ns or None, r.param("labelSelector"), r.param("fieldSelector"))
            opts = self._delete_options(r)
            deleted = []
            for item in items:
                meta = item["metadata"]
                try:
                    obj, _ = store.delete(rt, meta.get("namespace", ""), meta["name"], **opts, version=version)
                    deleted.append(obj)
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            return 200, {"kind": f"{rt.kind}List", "apiVersion": rt.api_version(version),
                         "metadata": {"resourceVersion": str(store.resource_version)}, "items": deleted}
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _object(
        self, r: RequestRecord, rt: ResourceType, version: str, ns: str, name: str, sub: str
    ) -> tuple[int, Any]:
        store = self.store
        if rt.namespaced and not ns:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        manager = _manager_from(r)
        dry = self._dry(r)
        if sub == "scale":
            return self._scale(r, rt, ns, name, manager, dry)
        if sub == "eviction":
            if r.method != "POST":
                raise ApiError(405, "MethodNotAllowed", "eviction only supports create")
            return 201, self.sim.evict(ns, name, self._body(r) if r.body else {})
        if sub == "log":
            store.get(rt, ns, name)
            return 200, f"fake log of pod {ns}/{name}\n"
        if r.method == "GET":
            obj = store.get(rt, ns, name, version)
            if self._wants_table(r) and not sub:
                return 200, discovery.to_table(rt, [obj], obj["metadata"].get("resourceVersion", ""),
                                               r.param("includeObject") or "Metadata")
            return 200, obj
        if sub == "finalize":
            return 200, store.get(rt, ns, name, version)
        if r.method == "PUT":
            return 200, store.update(rt, ns, name, self._body(r), subresource=sub, manager=manager, dry_run=dry,
                                     version=version)
        if r.method == "PATCH":
            ptype = PATCH_TYPES.get(r.content_type)
            if ptype is None:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                               f"accepted media types include: {', '.join(PATCH_TYPES)}")
            if ptype == "apply":
                obj, created = store.apply(rt, ns, name, self._body(r, yaml_ok=True), manager=manager,
                                           force=_truthy(r.param("force")), subresource=sub, dry_run=dry,
                                           version=version)
                return (201 if created else 200), obj
            return 200, store.patch(rt, ns, name, ptype, self._body(r, any_json=True), subresource=sub,
                                    manager=manager, dry_run=dry, version=version)
        if r.method == "DELETE":
            obj, gone = store.delete(rt, ns, name, **self._delete_options(r), version=version)
            if gone and rt.kind not in ("Pod", "Namespace"):
                return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                             "details": {"name": name, "group": rt.group, "kind": rt.plural,
                                         "uid": obj["metadata"].get("uid", "")}}
            return 200, obj
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _scale(
        self, r: RequestRecord, rt: ResourceType, ns: str, name: str, manager: str, dry: bool
    ) -> tuple[int, Any]:
        store = self.store
        if r.method == "GET":
            return 200, store.get_scale(rt, ns, name)
        if r.method == "PUT":
            return 200, store.set_scale(rt, ns, name, self._body(r), manager=manager, dry_run=dry)
        if r.method == "PATCH":
            ptype = PATCH_TYPES.get(r.content_type)
            from . import patching

            current = store.get_scale(rt, ns, name)
            body = self._body(r, any_json=True, yaml_ok=ptype == "apply")
            if ptype == "json":
                scale = patching.json_patch(current, body)
            elif ptype in ("merge", "strategic", "apply"):
                scale = patching.merge_patch(current, body)
            else:
                raise ApiError(415, "UnsupportedMediaType", "unsupported patch type")
            scale.setdefault("metadata", {}).pop("resourceVersion", None)
            return 200, store.set_scale(rt, ns, name, scale, manager=manager, dry_run=dry)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def _dry(r: RequestRecord) -> bool:
        return "All" in r.query.get("dryRun", [])

    @staticmethod
    def _body(r: RequestRecord, *, any_json: bool = False, yaml_ok: bool = False) -> Any:
        if not r.body:
            raise ApiError.bad_request("the request body is empty")
        if r.content_type == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(r.body)
            except protobuf.ProtobufError as exc:
                raise ApiError(415, "UnsupportedMediaType", str(exc)) from exc
        try:
            body = json.loads(r.body)
        except ValueError:
            body = _parse_yaml(r.body) if yaml_ok else None
            if body is None:
                raise ApiError.bad_request("the request body is not valid JSON") from None
        if not any_json and not isinstance(body, dict):
            raise ApiError.bad_request("the request body must be an object")
        return body

    def _delete_options(self, r: RequestRecord) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        body = r.json if r.body else None
        if r.body and r.content_type == "application/vnd.kubernetes.protobuf":
            try:
                body = protobuf.decode(r.body)
            except protobuf.ProtobufError:
                body = None
        if isinstance(body, dict):
            if body.get("propagationPolicy"):
                opts["propagation"] = body["propagationPolicy"]
            if body.get("gracePeriodSeconds") is not None:
                opts["grace_seconds"] = int(body["gracePeriodSeconds"])
            if body.get("preconditions"):
                opts["preconditions"] = body["preconditions"]
            if "All" in (body.get("dryRun") or []):
                opts["dry_run"] = True
            if body.get("orphanDependents") is True:
                opts["propagation"] = "Orphan"
        if r.param("propagationPolicy"):
            opts["propagation"] = r.param("propagationPolicy")
        if r.param("gracePeriodSeconds"):
            opts["grace_seconds"] = int(r.param("gracePeriodSeconds") or 0)
        if self._dry(r):
            opts["dry_run"] = True
        return opts


def _parse_yaml(data: bytes) -> Any:
    """Apply bodies are normally JSON (which is YAML); fall back to PyYAML if it happens to be installed."""
    try:
        import yaml
    except ImportError:
        return None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError:
        return None
