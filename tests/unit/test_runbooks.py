"""Runbooks: every alert links to one that exists, each names a doit task, and the index lists them all.

Sources scanned for alerts: every release's ``manifests/*.yaml`` and values (parsed as YAML), and the templates of
the charts we own (Go templates, so matched line by line). A runbook is any ``docs/runbooks/*.md`` except the index.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks"
INDEX = RUNBOOKS / "README.md"

# The lab's own alerts and the page each must link to (releases/monitoring and charts/inference-gateway).
KNOWN_ALERTS = {
    "NodeDown": "node-down.md",
    "TargetDown": "target-down.md",
    "PostgreSQLDown": "postgres-unhealthy.md",
    "NFSUnreachable": "nfs-unreachable.md",
    "GPUWorkerDown": "gpu-worker-down.md",
    "PodCrashLooping": "pod-crashlooping.md",
    "NodeMemoryPressure": "node-memory-pressure.md",
    "CertificateExpirySoon": "certificate-expiry.md",
    "DiskSpaceLow": "disk-space-low.md",
    "GPUInferenceUnavailable": "egpu-hotplug.md",
}
# Procedures without an alert that the spec asks for by name.
PROCEDURES = [
    "nfs-restore.md", "egpu-hotplug.md", "dev-proxy.md", "alertmanager-setup.md", "n8n-setup.md",
    "gaming-ml-mode.md", "postgres-restore.md", "postgres-connectivity.md", "k3s-upgrade.md", "k3s-rollback.md",
    "cluster-backup.md", "cluster-restore.md", "node-removal.md",
]

AUTOMATED_BY = re.compile(r"^Automated by:.*`doit [^`\s][^`]*`", re.MULTILINE)
MD_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
TEMPLATE_ALERT = re.compile(r"^\s*-\s*alert:\s*(\S+)\s*$", re.MULTILINE)
TEMPLATE_RUNBOOK = re.compile(r"^\s*runbook_url:\s*(\S+)\s*$", re.MULTILINE)


def _rules_in(doc: Any) -> list[dict[str, Any]]:
    """Alerting rules of a PrometheusRule document (or of a `kind: PrometheusRule`-shaped value anywhere)."""
    found: list[dict[str, Any]] = []
    if isinstance(doc, dict):
        if doc.get("kind") == "PrometheusRule":
            for group in (doc.get("spec") or {}).get("groups") or []:
                found += [r for r in group.get("rules") or [] if isinstance(r, dict) and "alert" in r]
        else:
            for value in doc.values():
                found += _rules_in(value)
    elif isinstance(doc, list):
        for item in doc:
            found += _rules_in(item)
    return found


def _alerts() -> list[tuple[str, str, str | None]]:
    """(source file, alert name, runbook_url or None) for every alerting rule we define."""
    alerts: list[tuple[str, str, str | None]] = []
    for path in sorted((REPO / "releases").glob("*/*.yaml")) + sorted((REPO / "releases").glob("*/manifests/*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for rule in _rules_in(doc):
                url = (rule.get("annotations") or {}).get("runbook_url")
                alerts.append((str(path.relative_to(REPO)), str(rule["alert"]), url))
    for path in sorted((REPO / "charts").glob("*/templates/*.yaml")):
        text = path.read_text(encoding="utf-8")
        names = TEMPLATE_ALERT.findall(text)
        urls = TEMPLATE_RUNBOOK.findall(text)
        rel = str(path.relative_to(REPO))
        assert len(names) == len(urls), f"{rel}: {len(names)} alert(s) but {len(urls)} runbook_url annotation(s)"
        alerts += [(rel, name, url) for name, url in zip(names, urls, strict=True)]
    return alerts


ALERTS = _alerts()
RUNBOOK_FILES = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md") if RUNBOOKS.is_dir() else []


def test_every_known_alert_is_found() -> None:
    """The scan sees the lab's alerts, so the checks below cannot pass on an empty list."""
    names = {name for _src, name, _url in ALERTS}
    assert set(KNOWN_ALERTS) <= names, f"alerts not found by the scan: {sorted(set(KNOWN_ALERTS) - names)}"


@pytest.mark.parametrize(("source", "alert", "url"), ALERTS, ids=[f"{a}@{s}" for s, a, _u in ALERTS])
def test_alert_links_an_existing_runbook(source: str, alert: str, url: str | None) -> None:
    assert url, f"{source}: alert {alert} has no runbook_url annotation"
    assert url.startswith("docs/runbooks/") and url.endswith(".md"), \
        f"{source}: alert {alert}: runbook_url {url!r} is not docs/runbooks/<name>.md"
    target = REPO / url
    assert target.is_file(), f"{source}: alert {alert}: runbook_url {url} does not exist"
    if alert in KNOWN_ALERTS:
        assert target.name == KNOWN_ALERTS[alert], f"{alert} should link {KNOWN_ALERTS[alert]}, links {target.name}"
    assert alert in target.read_text(encoding="utf-8"), f"{url} never names the alert {alert}"


@pytest.mark.parametrize("name", PROCEDURES)
def test_procedure_runbook_exists(name: str) -> None:
    assert (RUNBOOKS / name).is_file(), f"docs/runbooks/{name} is missing"


@pytest.mark.parametrize("path", RUNBOOK_FILES, ids=[p.name for p in RUNBOOK_FILES])
def test_runbook_names_a_doit_task(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert AUTOMATED_BY.search(text), f"docs/runbooks/{path.name}: no line 'Automated by: ... `doit <task>` ...'"


def test_index_lists_every_runbook_and_every_link_resolves() -> None:
    assert INDEX.is_file(), "docs/runbooks/README.md is missing"
    links = {link for link in MD_LINK.findall(INDEX.read_text(encoding="utf-8")) if "/" not in link}
    unlisted = sorted(p.name for p in RUNBOOK_FILES if p.name not in links)
    assert not unlisted, f"runbooks not linked from docs/runbooks/README.md: {unlisted}"
    dangling = sorted(link for link in links if not (RUNBOOKS / link).is_file())
    assert not dangling, f"docs/runbooks/README.md links missing runbooks: {dangling}"
    missing = sorted((set(PROCEDURES) | set(KNOWN_ALERTS.values())) - links)
    assert not missing, f"docs/runbooks/README.md does not list: {missing}"


@pytest.mark.parametrize("path", RUNBOOK_FILES, ids=[p.name for p in RUNBOOK_FILES])
def test_relative_links_between_runbooks_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    dangling = sorted({link for link in MD_LINK.findall(text)
                       if "://" not in link and not (path.parent / link).resolve().is_file()})
    assert not dangling, f"docs/runbooks/{path.name} links missing files: {dangling}"
