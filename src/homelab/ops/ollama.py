"""Ollama after deploy: pull the release's model list idempotently, and a health check (story 6.1, 6.2).

Both talk to Ollama's HTTP API: the in-cluster service is not reachable from the operator's machine, so the
endpoint is the release's HTTPS IngressRoute (``https://ollama.<domain>``) unless ``HOMELAB_OLLAMA_URL``
names another (the tests point it at a local stand-in on 127.0.0.1). Stdlib only.

- ``pull_models``: ``GET /api/tags``, then ``POST /api/pull`` for each listed model that is missing, then
  ``/api/tags`` again to confirm. Models already present are not pulled again.
- ``health``: ``/api/tags`` lists the spec's model, and a short ``/api/generate`` answers (NFR13: 30 s).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from homelab.ops.cluster import Steps
from homelab.ops.result import OpResult
from homelab.project import Project

PULL_TIMEOUT = 1800.0  # a first pull of a few GB over a home line
GENERATE_TARGET = 30.0  # NFR13


def endpoint(project: Project) -> str:
    override = os.environ.get("HOMELAB_OLLAMA_URL")
    if override:
        return override.rstrip("/")
    assert project.inventory is not None
    return f"https://ollama.{project.inventory.data['domain']}"


def model_list(project: Project) -> list[str]:
    """The models the ollama release asks for (values ollama.models.pull)."""
    values = project.release("ollama").values
    pull = ((values.get("ollama") or {}).get("models") or {}).get("pull") or []
    return [str(m) for m in pull]


def _call(url: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    # /api/pull without stream:false answers newline-delimited JSON; the last object is the outcome
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def _present(url: str) -> set[str]:
    tags = _call(url, "/api/tags")
    return {str(m.get("name", "")) for m in tags.get("models", [])}


def _has(present: set[str], model: str) -> bool:
    # "llama3.2:1b" and "llama3.2:1b" match; a model named without a tag means ":latest" in Ollama
    return model in present or (":" not in model and f"{model}:latest" in present)


def _unreachable(steps: Steps, url: str, exc: Exception) -> OpResult:
    reason = getattr(exc, "reason", None) or exc
    return steps.fail(f"Ollama at {url} did not answer ({reason}); is the ollama release applied and its "
                      "IngressRoute reachable? (HOMELAB_OLLAMA_URL overrides the endpoint)")


def pull_models(project: Project, out: Any = None) -> OpResult:
    """``doit ollama_models``: every listed model present on Ollama's volume, pulling only what is missing."""
    url = endpoint(project)
    steps = Steps(f"ollama models at {url}", out)
    wanted = model_list(project)
    if not wanted:
        return steps.done("the ollama release lists no models to pull")
    try:
        present = _present(url)
        missing = [m for m in wanted if not _has(present, m)]
        for model in wanted:
            if model not in missing:
                steps.say(f"{model}: already present, not pulled")
        for model in missing:
            started = time.monotonic()
            outcome = _call(url, "/api/pull", {"model": model, "stream": False}, timeout=PULL_TIMEOUT)
            if outcome.get("error"):
                return steps.fail(f"pulling {model} failed: {outcome['error']}")
            steps.say(f"{model}: pulled in {time.monotonic() - started:.1f}s")
        still = [m for m in wanted if not _has(_present(url), m)]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return _unreachable(steps, url, exc)
    if still:
        return steps.fail(f"still missing after pulling: {', '.join(still)}")
    return steps.done(f"{len(wanted)} model(s) present, {len(missing)} pulled", pulled=missing)


def health(project: Project, out: Any = None) -> OpResult:
    """``doit ollama_health``: /api/tags lists the first listed model and a short /api/generate answers."""
    url = endpoint(project)
    steps = Steps(f"ollama health at {url}", out)
    wanted = model_list(project)
    model = wanted[0] if wanted else "llama3.2:1b"
    try:
        if not _has(_present(url), model):
            return steps.fail(f"/api/tags does not list {model}: run `doit ollama_models`")
        steps.say(f"/api/tags lists {model}")
        started = time.monotonic()
        answer = _call(url, "/api/generate", {"model": model, "prompt": "Reply with the word OK.",
                                              "stream": False, "options": {"num_predict": 8}}, timeout=120.0)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return _unreachable(steps, url, exc)
    took = time.monotonic() - started
    text = str(answer.get("response", "")).strip()
    if not text:
        return steps.fail(f"/api/generate with {model} returned no text")
    steps.say(f"/api/generate answered in {took:.1f}s (NFR13 target {GENERATE_TARGET:.0f}s): {text[:40]!r}")
    if took > GENERATE_TARGET:
        return steps.fail(f"{model} answered in {took:.1f}s, over the {GENERATE_TARGET:.0f}s target")
    return steps.done(f"{model} is listed and answers ({took:.1f}s)", generate_seconds=round(took, 2))
