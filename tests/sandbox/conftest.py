"""The session's sandbox: two real hosts, brought up once and ALWAYS torn down at the end.

The fixture comes from ``homelab.sandbox.testing.sandbox_fixture`` so any other test package can make the
same fixture in its own conftest.py (``sandbox = sandbox_fixture(name="sandbox", hosts=[...])``). It skips
with the reason when not root or when a needed tool (mmdebstrap, systemd-nspawn, ...) is missing.
"""

from __future__ import annotations

from homelab.sandbox.testing import sandbox_fixture

HOSTS = ["sbx-master", "sbx-worker-01"]

sandbox = sandbox_fixture(name="sandbox", hosts=HOSTS, scope="session")
