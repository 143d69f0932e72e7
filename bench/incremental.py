"""Benchmark: incremental precision. For a suite of single-value edits, which tasks reran vs which should.

"Should" is derived from the files by text, independently of the engine's graph code: an edit to a release
file should rerun that release; an edit to an export's value should also rerun every release whose files
reference that export; an inventory key should rerun every release whose files read it (directly, or
through an export whose value reads it); a host's entry should rerun that host's stages; a deploy
package should rerun its stage on every host; a secret should rerun the tasks that use it.

Runs in a temporary copy with the FAKE host runner (tests/fakes): no host is contacted. Prints precision
(reran and should / reran) and recall (reran and should / should) per edit and overall. Never fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOSTS = ("sbx-master", "sbx-worker-01", "sbx-worker-02", "sbx-gpu-worker")


def _files_referencing(root: Path, needle: str) -> set[str]:
    found = set()
    for path in (root / "releases").rglob("*.yaml"):
        if needle in path.read_text():
            found.add(path.relative_to(root / "releases").parts[0])
    return found


def _exports_reading(root: Path, needle: str) -> set[str]:
    """RELEASE.EXPORT whose value text contains ``needle``."""
    import yaml

    out = set()
    for spec_path in (root / "releases").glob("*/release.yaml"):
        spec = yaml.safe_load(spec_path.read_text())
        for key, export in (spec.get("exports") or {}).items():
            if needle in str(export.get("value", "")):
                out.add(f"{spec['name']}.{key}")
    return out


def _should_for_inventory(root: Path, key: str) -> set[str]:
    should = _files_referencing(root, f"${{inv:{key}")
    for ref in _exports_reading(root, f"${{inv:{key}"):
        should |= _files_referencing(root, f"${{ref:{ref}}}")
    return should


Edit = tuple[str, Callable[[Path], None], Callable[[Path], set[str]]]


def _replace(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / rel
        text = path.read_text()
        if old not in text:
            raise SystemExit(f"incremental bench: {old!r} not found in {rel}; update the edit suite")
        path.write_text(text.replace(old, new, 1))
    return apply


def _rotate_secret(name: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        code = ("from homelab.paths import layout; from homelab.secrets import Secrets;"
                f"s=Secrets(layout('sandbox')); v=dict(s.load()); v[{name!r}]=v[{name!r}]+'-rotated'; s.save(v)")
        subprocess.run([sys.executable, "-c", code], env=os.environ.copy(), check=True)
    return apply


def _append(rel: str, text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        with (root / rel).open("a") as fh:
            fh.write(text)
    return apply


def _gaming(root: Path) -> None:
    state = root / "build" / "sandbox" / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "gpu-mode.json").write_text(json.dumps({"mode": "gaming", "status": "done", "replicas": {}}))


SUITE: list[Edit] = [
    ("postgres volume size (values.yaml)", _replace("releases/postgres/values.yaml", "size: 20Gi", "size: 25Gi"),
     lambda root: {"postgres"}),
    ("postgres exported host", _replace("releases/postgres/release.yaml", "value: postgresql.data.svc.cluster.local",
                                        "value: pg.data.svc.cluster.local"),
     lambda root: {"postgres"} | _files_referencing(root, "${ref:postgres.host}")),
    ("inventory domain", _replace("hosts/sandbox.yaml", "domain: home.sandbox.test", "domain: lab.sandbox.test"),
     lambda root: _should_for_inventory(root, "domain")),
    ("one host's hardware", _replace("hosts/sandbox.yaml", "address: 10.77.0.12\n    roles: [agent]\n    hardware: "
                                     "{cpus: 4", "address: 10.77.0.12\n    roles: [agent]\n    hardware: {cpus: 6"),
     lambda root: {f"{stage}:sbx-worker-02" for stage in ("vm", "tailscale", "k3s", "nfs")}),
    ("nfs deploy code", _append("deploys/nfs/__init__.py", "\n# benchmark edit\n"),
     lambda root: {f"nfs:{h}" for h in HOSTS}),
    ("k3s token rotated", _rotate_secret("k3s.token"), lambda root: {f"k3s:{h}" for h in HOSTS}),
    ("GPU gaming mode", _gaming, lambda root: {"vllm"}),
]


def _ran(stdout: str) -> set[str]:
    return {line[2:].strip() for line in stdout.splitlines() if line.startswith("> ")}


def measure() -> dict[str, object]:
    tmp = tempfile.mkdtemp(prefix="homelab-incr-")
    root = Path(tmp) / "repo"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns("build", ".venv", ".git", "__pycache__", "sandbox.age"))
    os.environ.update(HOMELAB_REPO=str(root), HOMELAB_ENV="sandbox", HOMELAB_HOST_RUNNER="tests.fakes.fake_hostrun",
                      HOMELAB_CONFIG_DIR=str(Path(tmp) / "config"), PYTHONPATH=str(REPO),
                      HOMELAB_CHART_CACHE=str(Path(tmp) / "charts"))
    os.environ.pop("HOMELAB_KUBECONFIG", None)

    def doit() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "doit"], cwd=root, capture_output=True, text=True)

    try:
        first = doit()
        if first.returncode != 0:
            raise SystemExit(f"incremental bench: first converge failed\n{first.stdout[-2000:]}")
        rows = []
        for label, apply, should_of in SUITE:
            should = should_of(root)
            apply(root)
            ran = _ran(doit().stdout)
            hit = ran & should
            rows.append({"edit": label, "ran": sorted(ran), "should": sorted(should),
                         "precision": len(hit) / len(ran) if ran else 1.0,
                         "recall": len(hit) / len(should) if should else 1.0})
        tp = sum(len(set(r["ran"]) & set(r["should"])) for r in rows)  # type: ignore[arg-type]
        ran_total = sum(len(r["ran"]) for r in rows)  # type: ignore[arg-type]
        should_total = sum(len(r["should"]) for r in rows)  # type: ignore[arg-type]
        return {"edits": rows, "precision": tp / ran_total if ran_total else 1.0,
                "recall": tp / should_total if should_total else 1.0}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    result = measure()
    if "--json" in sys.argv:
        print(json.dumps(result))
        return
    print("incremental precision (single-value edits; FAKE host runner, no host contacted)")
    for row in result["edits"]:  # type: ignore[attr-defined]
        extra = sorted(set(row["ran"]) - set(row["should"]))
        missed = sorted(set(row["should"]) - set(row["ran"]))
        notes = (f"  extra: {', '.join(extra)}" if extra else "") + (f"  missed: {', '.join(missed)}" if missed else "")
        print(f"  {row['edit']:<36} reran {len(row['ran']):>2}  should {len(row['should']):>2}  "
              f"precision {row['precision']:.2f}  recall {row['recall']:.2f}{notes}")
    print(f"  overall precision {result['precision']:.2f}, recall {result['recall']:.2f}")


if __name__ == "__main__":
    main()
