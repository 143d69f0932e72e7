"""A FAKE host runner for the kill tests: tests/fakes/fake_hostrun.py, plus a log line written (and fsync-ed)
when a ``run_stage`` call has *returned*, in RECORDING_HOSTRUN_RETURNED. The fake's own FAKE_HOSTRUN_LOG
records calls when they start. Selected with HOMELAB_HOST_RUNNER=tests.reliability.recording_hostrun.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.fakes import fake_hostrun
from tests.fakes.fake_hostrun import StageResult, fetch_kubeconfig

__all__ = ["StageResult", "fetch_kubeconfig", "run_stage"]


def run_stage(inventory: dict[str, Any], stage: str, host_name: str, **kwargs: Any) -> StageResult:
    result = fake_hostrun.run_stage(inventory, stage, host_name, **kwargs)
    log = os.environ.get("RECORDING_HOSTRUN_RETURNED")
    if log and not kwargs.get("dry"):
        with open(log, "a") as fh:
            fh.write(json.dumps({"task": f"{stage}:{host_name}", "ok": result.ok}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return result
