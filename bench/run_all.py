"""`make bench`: every benchmark, then one summary table (figures, targets, ratios) with the machine it ran on.

Benchmarks never fail on their figures. Each runs in its own process; one that cannot run here (the host
benchmark needs root and the sandbox) is listed with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def _run(script: str, *args: str) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True)
    return proc.stdout, proc.stderr if proc.returncode else ""


def _machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    mem = ""
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        mem = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores {cpu}, {mem}, "
            f"Python {platform.python_version()}")


def main() -> None:
    rows: list[tuple[str, str, str, str]] = []
    out, err = _run("noop.py", "--json")
    if out.strip():
        r = json.loads(out.strip().splitlines()[-1])
        rows.append((f"no-op converge, {r['tasks']} tasks ({r['mode']}), median of {r['runs']}",
                     f"{r['median_s'] * 1000:.0f} ms", "<= 250 ms", f"{r['ratio_to_target']}x of target"))
    else:
        rows.append(("no-op converge", "not run", "<= 250 ms", err.strip().splitlines()[-1] if err else ""))
    out, err = _run("incremental.py", "--json")
    if out.strip():
        r = json.loads(out.strip().splitlines()[-1])
        rows.append((f"incremental precision, {len(r['edits'])} single-value edits", f"precision {r['precision']:.2f}",
                     "1.00", f"recall {r['recall']:.2f}"))
    out, err = _run("validate.py")
    cold = re.search(r"cold .*?: ([\d,]+) documents/s .*?ratio ([\d.]+)x", out)
    docs = re.search(r"documents: (\d+)", out)
    if cold:
        rows.append((f"validation throughput, {docs.group(1) if docs else '?'} documents, one core, cold",
                     f"{cold.group(1)} docs/s", ">= 2,000/s", f"{cold.group(2)}x"))
    out, err = _run("hosts.py", "--json")
    if out.strip().startswith("{"):
        r = json.loads(out.strip().splitlines()[-1])
        for key, label, target in (("noop_ratio", "host layer no-op: ansible-core / homelab", ">= 5x"),
                                   ("one_host_ratio", "one host changed / single-host run", "<= 1.2x")):
            if key in r:
                rows.append((label, f"{r[key]}x", target, ""))
        for key, value in r.items():
            if key.endswith("_s"):
                rows.append((f"  {key[:-2].replace('_', ' ')}", f"{value:.1f} s", "", ""))
    else:
        rows.append(("host layer vs ansible-core", "not run", "", (out or err).strip().splitlines()[-1][:80]
                     if (out or err).strip() else "bench/hosts.py missing"))
    width = max(len(r[0]) for r in rows)
    print(f"homelab benchmarks on {_machine()}")
    print(f"{'benchmark':<{width}}  {'figure':>16}  {'target':>10}  ratio / note")
    for name, figure, target, note in rows:
        print(f"{name:<{width}}  {figure:>16}  {target:>10}  {note}")


if __name__ == "__main__":
    main()
