"""Benchmark: median wall time of 20 no-op `doit` runs of the whole graph after a complete first run.

Target: <= 250 ms on the 2-core build machine. A benchmark, not a test: it prints figures and never fails
on them. It only ever contacts the sandbox hosts it converges (10.77.0.x in network namespaces made by
this machine), or none at all in --fake-hosts mode.

Modes:
  --real        converge the sandbox for real first (root, sandbox image built by `make setup`)
  --fake-hosts  first run with the FAKE host runner (tests/fakes) in a temporary copy of the repository;
                the no-op runs are identical either way, since a no-op run never reaches the runner
Default: --real when running as root with the sandbox image present, else --fake-hosts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 0.250
RUNS = 20


def _doit(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "doit", *args], cwd=cwd, env=env, capture_output=True, text=True)


def _real_available() -> bool:
    cache = Path(os.environ.get("HOMELAB_SANDBOX_CACHE", "/var/cache/homelab/sandbox")) / "bookworm-base"
    return os.geteuid() == 0 and cache.is_dir()


def measure(mode: str) -> dict[str, object]:
    env = dict(os.environ, HOMELAB_ENV="sandbox", PYTHONPATH=str(REPO))
    tmp: tempfile.TemporaryDirectory[str] | None = None
    cwd = REPO
    if mode == "fake-hosts":
        tmp = tempfile.TemporaryDirectory(prefix="homelab-bench-")
        cwd = Path(tmp.name) / "repo"
        skip = shutil.ignore_patterns("build", ".venv", ".git", "__pycache__", "sandbox.age")
        shutil.copytree(REPO, cwd, ignore=skip)
        env.update(HOMELAB_REPO=str(cwd), HOMELAB_HOST_RUNNER="tests.fakes.fake_hostrun",
                   HOMELAB_CONFIG_DIR=str(Path(tmp.name) / "config"))
    try:
        started = time.perf_counter()
        first = _doit(cwd, env)
        first_s = time.perf_counter() - started
        if first.returncode != 0:
            raise SystemExit(f"noop bench: the first run failed:\n{first.stdout[-2000:]}\n{first.stderr[-2000:]}")
        tasks = sum(1 for line in _doit(cwd, env, "list", "--all", "--quiet").stdout.split() if ":" in line
                    or line in _release_names(cwd))
        samples = []
        for _ in range(RUNS):
            t = time.perf_counter()
            run = _doit(cwd, env)
            samples.append(time.perf_counter() - t)
            if "0 ran" not in run.stdout:
                raise SystemExit(f"noop bench: a run that should be a no-op did work:\n{run.stdout[-2000:]}")
        median = statistics.median(samples)
        return {"mode": mode, "tasks": tasks, "first_run_s": round(first_s, 2), "median_s": round(median, 4),
                "min_s": round(min(samples), 4), "max_s": round(max(samples), 4), "target_s": TARGET_S,
                "ratio_to_target": round(median / TARGET_S, 2), "runs": RUNS}
    finally:
        if tmp is not None:
            tmp.cleanup()


def _release_names(root: Path) -> set[str]:
    return {p.name for p in (root / "releases").iterdir() if p.is_dir()} if (root / "releases").is_dir() else set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--real", action="store_true")
    group.add_argument("--fake-hosts", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    if args.real or args.fake_hosts:
        mode = "real" if args.real else "fake-hosts"
    else:
        mode = "real" if _real_available() else "fake-hosts"
    result = measure(mode)
    if args.json:
        print(json.dumps(result))
        return
    print(f"no-op converge ({result['mode']}, {result['tasks']} tasks, {RUNS} runs after a complete first run)")
    print(f"  median {result['median_s'] * 1000:.0f} ms  (min {result['min_s'] * 1000:.0f}, "
          f"max {result['max_s'] * 1000:.0f})  target <= {TARGET_S * 1000:.0f} ms  "
          f"ratio {result['ratio_to_target']}")


if __name__ == "__main__":
    main()
