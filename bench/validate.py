"""Benchmark: schema-validation throughput (documents/s, one core) over every rendered manifest of the sandbox env.

Target: >= 2,000 documents/s per core *cold* (fresh validator caches: schema files read and validators built
during the measured pass). A benchmark, not a test: it prints figures and the ratio to the target and never
fails on them. Nothing here contacts a network: charts come from the local chart cache only.

What gets validated: all releases of the sandbox env rendered offline (extra manifests, charts we own, and
remote charts that are in the chart cache and match charts.lock). Remote charts that are not cached are
replaced by stand-ins, rendered in a temp dir: `helm create <chart name>` with ingress and autoscaling
enabled (ServiceAccount, Service, Deployment, HPA, Ingress), which is what typical chart output looks like.
The output says how many documents came from stand-ins.

For scale it also times kubernetes-validate's own validate() (strict, schema reads memoized as the project
notes recommend) on the core-kind documents.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
TARGET = 2000.0
WARM_SECONDS = 1.0
COLD_RUNS = 9


def _tree(tmp: Path) -> Path:
    root = tmp / "repo"
    root.mkdir()
    for name in ("hosts", "schemas", "releases", "charts", "deploys"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "charts.lock"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, root / name)
    return root


def _standin(project: Any, release: Any, work: Path) -> list[dict[str, Any]]:
    import yaml

    from homelab import charts, render

    chart = work / str(release.chart["name"])
    work.mkdir(parents=True, exist_ok=True)
    if not chart.exists():
        subprocess.run([charts.helm_binary(), "create", str(chart)], check=True, capture_output=True)
    run = subprocess.run([charts.helm_binary(), "template", release.name, str(chart), "--namespace",
                          release.namespace, "--kube-version", render.kube_version(project), "--skip-tests",
                          "--set", "ingress.enabled=true", "--set", "autoscaling.enabled=true"],
                         check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(run.stdout) if d]


def collect(tmp: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    os.environ.update(HOMELAB_REPO=str(_tree(tmp)), HOMELAB_ENV="sandbox", HOMELAB_CONFIG_DIR=str(tmp / "config"))
    os.environ.pop("HOMELAB_BUILD_DIR", None)
    from homelab import paths, render
    from homelab.project import Project

    project = Project.load(paths.layout())
    if project.inventory is None:
        raise SystemExit("validate bench: the sandbox inventory does not load")
    if not project.ok:
        # a benchmark of the validator, not of the inputs: measure what loaded and say so
        print(f"note: the inputs have {len([p for p in project.problems if p.severity == 'error'])} problem(s) "
              "(`doit check` lists them); releases that did not load are left out")
    counts = {"rendered": 0, "stand-in": 0, "releases": 0, "stand-in charts": 0}
    docs: list[dict[str, Any]] = []
    for release in sorted(project.releases, key=lambda r: r.name):
        name = release.name
        try:
            out, _ = render.check_release(project, release)
        except Exception as exc:  # inputs with problems (see the note above) may not even resolve
            print(f"note: {name} left out: {type(exc).__name__}: {exc}")
            continue
        counts["releases"] += 1
        docs += out.objects
        counts["rendered"] += len(out.objects)
        if release.chart and not out.chart_rendered and "name" in release.chart:
            extra = _standin(project, release, tmp / "standins")
            docs += extra
            counts["stand-in"] += len(extra)
            counts["stand-in charts"] += 1
    return docs, counts


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def measure(docs: list[dict[str, Any]], kube: str, crds: Path) -> dict[str, float]:
    """Median of COLD_RUNS cold passes (caches reset before each) and the warm rate over WARM_SECONDS."""
    from homelab import validate

    colds = []
    found: list[Any] = []
    for _ in range(COLD_RUNS):
        validate.reset_caches()
        started = time.perf_counter()
        found = validate.validate_objects(docs, kube, crds)
        colds.append(time.perf_counter() - started)
    passes, started = 0, time.perf_counter()
    while time.perf_counter() - started < WARM_SECONDS:
        validate.validate_objects(docs, kube, crds)
        passes += 1
    warm = (time.perf_counter() - started) / passes
    return {"cold": _rate(len(docs), statistics.median(colds)), "cold_first": _rate(len(docs), colds[0]),
            "cold_worst": _rate(len(docs), max(colds)), "warm": _rate(len(docs), warm), "violations": len(found)}


_PROCESS = """
import json, sys, time
started = time.perf_counter()
from homelab import validate
from pathlib import Path
imported = time.perf_counter()
docs = json.loads(Path(sys.argv[1]).read_text())
loaded = time.perf_counter()
validate.validate_objects(docs, sys.argv[2], Path(sys.argv[3]))
done = time.perf_counter()
print(json.dumps({"import": imported - started, "validate": done - loaded}))
"""


def fresh_process(docs: list[dict[str, Any]], kube: str, crds: Path, tmp: Path) -> dict[str, float]:
    """Import + first validation in a new interpreter (median of 5): the cost a release task really pays."""
    import json

    data = tmp / "docs.json"
    data.write_text(json.dumps(docs))
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    runs = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", _PROCESS, str(data), kube, str(crds)], env=env,
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    return {k: statistics.median(r[k] for r in runs) for k in ("import", "validate")}


def reference(docs: list[dict[str, Any]], kube: str) -> tuple[int, float]:
    """kubernetes-validate's validate() on the documents it has schemas for."""
    import kubernetes_validate

    from homelab import validate

    validate.install_schema_cache()
    core = 0
    started = time.perf_counter()
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, kube, strict=True)
            core += 1
        except kubernetes_validate.ValidationError:
            core += 1
        except kubernetes_validate.SchemaNotFoundError:
            pass
    return core, _rate(core, time.perf_counter() - started)


def main() -> int:
    try:
        with tempfile.TemporaryDirectory(prefix="homelab-validate-bench-") as tmp:
            docs, counts = collect(Path(tmp))
            from homelab import paths, render
            from homelab.project import Project

            project = Project.load(paths.layout())
            kube = render.kube_version(project)
            crds = render.crd_schema_dir(project)
            figures = measure(docs, kube, crds)
            process = fresh_process(docs, kube, crds, Path(tmp))
            core, ref_rate = reference(docs, kube)
    except Exception as exc:  # a benchmark reports, it does not fail the build
        print(f"validate bench: could not run: {type(exc).__name__}: {exc}")
        return 0
    print(f"documents: {len(docs)} from {counts['releases']} releases of the sandbox env "
          f"({counts['rendered']} rendered from the release files and our charts, {counts['stand-in']} from "
          f"{counts['stand-in charts']} stand-in charts (`helm create`) for remote charts not in the chart cache)")
    print(f"kubernetes {kube}, one core; violations found: {int(figures['violations'])}")
    print(f"cold (fresh caches, median of {COLD_RUNS}): {figures['cold']:,.0f} documents/s  "
          f"target {TARGET:,.0f}/s  ratio {figures['cold'] / TARGET:.2f}x  "
          f"(first run {figures['cold_first']:,.0f}/s, slowest {figures['cold_worst']:,.0f}/s)")
    print(f"fresh process: import homelab.validate {process['import'] * 1000:.0f} ms, first validation of all "
          f"{len(docs)} documents {process['validate'] * 1000:.0f} ms = "
          f"{_rate(len(docs), process['validate']):,.0f} documents/s "
          f"(ratio {_rate(len(docs), process['validate']) / TARGET:.2f}x)")
    print(f"warm (validators built): {figures['warm']:,.0f} documents/s  ratio {figures['warm'] / TARGET:.2f}x")
    print(f"kubernetes-validate validate() with memoized schema reads, {core} core documents: {ref_rate:,.0f} "
          f"documents/s (homelab warm is {figures['warm'] / ref_rate:.0f}x that)" if ref_rate else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
