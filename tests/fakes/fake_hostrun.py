"""A FAKE host runner for engine tests: records which (stage, host) ran instead of running pyinfra over SSH.

Selected with HOMELAB_HOST_RUNNER=tests.fakes.fake_hostrun. Calls are appended to the file named by
FAKE_HOSTRUN_LOG (one JSON line each) so a test can assert which hosts a run contacted. Facts can be
steered per (stage, host) with FAKE_HOSTRUN_FACTS (JSON: {"tailscale:sbx-master": {"tailscale_ip": ...}}),
FAKE_HOSTRUN_FAIL names tasks that fail ("vm:sbx-worker-01,k3s:sbx-master") and FAKE_HOSTRUN_SLEEP
makes tasks slow ("k3s:sbx-master=30"), so a test can kill the run in the middle of one.
Dry runs report FAKE_HOSTRUN_DRIFT (JSON: {"vm:sbx-worker-01": ["files.put /etc/environment"]}).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageResult:
    host: str
    stage: str
    ok: bool
    changed: int
    facts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    planned: list[str] = field(default_factory=list)


def run_stage(inventory: dict[str, Any], stage: str, host_name: str, *, secrets: Mapping[str, str],
              upstream: Mapping[str, object], ssh_config: Path | None, dry: bool = False) -> StageResult:
    task = f"{stage}:{host_name}"
    log = os.environ.get("FAKE_HOSTRUN_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps({"task": task, "dry": dry, "secret_names": sorted(secrets),
                                 "upstream_keys": sorted(upstream)}) + "\n")
    slow = dict(item.split("=", 1) for item in os.environ.get("FAKE_HOSTRUN_SLEEP", "").split(",") if "=" in item)
    if task in slow:
        time.sleep(float(slow[task]))
    if os.environ.get("FAKE_HOSTRUN_ECHO_SECRETS") == "1":
        # what a careless verbose deploy would do: the redaction layer must catch it
        for name, value in secrets.items():
            print(f"debug: {name}={value}")
    if task in os.environ.get("FAKE_HOSTRUN_FAIL", "").split(","):
        leak = " ".join(secrets.values()) if os.environ.get("FAKE_HOSTRUN_ECHO_SECRETS") == "1" else ""
        return StageResult(host_name, stage, False, 0,
                           error=f"{host_name}: ssh: connect to host refused (fake) {leak}".strip())
    if dry:
        drift = json.loads(os.environ.get("FAKE_HOSTRUN_DRIFT", "{}"))
        return StageResult(host_name, stage, True, 0, planned=[f"{host_name}: {op}" for op in drift.get(task, [])])
    facts: dict[str, str] = {}
    if stage == "tailscale":
        host = next(h for h in inventory["hosts"] if h["name"] == host_name)
        facts["tailscale_ip"] = host.get("tailscale_ip", "100.64.0.1")
    steer = json.loads(os.environ.get("FAKE_HOSTRUN_FACTS", "{}"))
    facts.update(steer.get(task, {}))
    return StageResult(host_name, stage, True, 1, facts)


def fetch_kubeconfig(inventory: dict[str, Any], server_host: str, dest: Path, ssh_config: Path | None) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("apiVersion: v1\nkind: Config\n")
    dest.chmod(0o600)
    return dest
