"""Offline rendering of releases into build/<env>/manifests/<release>/, and the render-validate-policy check.

A release renders to its chart's ``helm template`` output (when the chart is available offline: ours, or a
cached archive that matches charts.lock) followed by its extra manifests. Secrets appear only as
``<secret:NAME>`` references: rendering never decrypts anything, so nothing rendered can leak a value, and
every file still passes through the redaction layer as a second line of defence.

Decisions:
- ``--include-crds``: CRDs a chart ships are rendered so they are validated as CustomResourceDefinition
  objects; Helm installs them, the engine never applies chart output itself.
- ``--skip-tests``: test hooks run only under ``helm test``, never on install, so they are not part of
  what a release deploys. Other hooks (pre-install Jobs and the like) are deployed and stay.
- ``--api-versions`` lists every CRD group/version we hold a schema for: in the cluster those CRDs exist
  (their releases come first), so charts that render e.g. a ServiceMonitor only when the API is present
  render here as they will there.
- Only the extra manifests get the tracking label ``homelab.dev/release``: Helm tracks chart objects itself;
  the label is how the engine later finds (and prunes) objects it applied without Helm.
- The release's directory is replaced in one atomic step (renameat2 RENAME_EXCHANGE where available),
  so a reader or a crash sees either the previous complete rendering or the new one.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homelab import charts, redact
from homelab.atomic import replace_dir
from homelab.project import Project
from homelab.releases import Release
from homelab.violations import Violation

RELEASE_LABEL = "homelab.dev/release"


class RenderError(Exception):
    """helm template failed for a release (bad values, a template error); the message is redacted."""


@dataclass
class Rendered:
    """What one release renders to."""

    objects: list[dict[str, Any]]  # chart output (helm's order) then extra manifests (file order)
    chart_rendered: bool  # False: no chart, or the chart is not available offline (see note)
    note: str  # why the chart was not rendered, "" when it was or there is none
    files: list[Path]  # build/<env>/manifests/<release>/NN-kind-name.yaml, one per object, in order
    release: str = ""
    extra: list[dict[str, Any]] = field(default_factory=list)  # the labeled extra manifests (applied by us)


def kube_version(project: Project) -> str:
    from homelab.validate import kube_version as from_k3s

    assert project.inventory is not None
    return from_k3s(str(project.inventory.data["k3s"]["version"]))


def crd_schema_dir(project: Project) -> Path:
    return project.schema_dir / "crds"


def _api_versions(project: Project) -> list[str]:
    import json

    try:
        index = json.loads((crd_schema_dir(project) / "index.json").read_text())
    except (OSError, ValueError):
        return []
    out: set[str] = set()
    for gvk in index if isinstance(index, dict) else []:
        group_version, _, _ = str(gvk).rpartition("/")
        if group_version:
            out.update((group_version, str(gvk)))  # charts test both forms with .Capabilities.APIVersions.Has
    return sorted(out)


def helm_template(project: Project, release: Release, chart: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's rendered objects; the values go through a 0600 temp file removed right after."""
    import yaml

    fd, values_path = tempfile.mkstemp(prefix="homelab-values-", suffix=".yaml")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(values, fh, sort_keys=True)
        cmd = [charts.helm_binary(), "template", release.name, str(chart), "--namespace", release.namespace,
               "--kube-version", kube_version(project), "--include-crds", "--skip-tests", "-f", values_path]
        for api in _api_versions(project):
            cmd += ["--api-versions", api]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RenderError(f"cannot run helm: {exc}") from None
    finally:
        os.unlink(values_path)
    if run.returncode != 0:
        # helm 4 spreads one error over several lines and appends advice about --debug: keep the error
        lines = [ln.strip() for ln in run.stderr.splitlines() if ln.strip() and "--debug" not in ln]
        detail = " ".join(lines).removeprefix("Error: ")[:500] or f"exit {run.returncode}"
        raise RenderError(redact.redact(f"helm template failed: {detail}"))
    try:
        docs = [d for d in yaml.load_all(run.stdout, Loader=_loader()) if d is not None]
    except yaml.YAMLError as exc:
        raise RenderError(redact.redact(f"helm template produced malformed YAML: {exc}")) from None
    bad = [d for d in docs if not isinstance(d, dict)]
    if bad:
        raise RenderError(f"helm template produced a document that is not a mapping: {str(bad[0])[:60]!r}")
    return docs


_LOADER: list[type] = []


def _loader() -> type:
    """A safe loader that leaves unquoted dates as strings, as the Kubernetes API reads them.

    PyYAML would turn ``2024-01-01`` into a date, which is not JSON, and schema validation would then
    report a string field holding a date.
    """
    if not _LOADER:
        import yaml

        base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loader = type("NoTimestampLoader", (base,), {})
        loader.yaml_implicit_resolvers = {  # type: ignore[attr-defined]
            first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
            for first, resolvers in base.yaml_implicit_resolvers.items()  # type: ignore[attr-defined]
        }
        _LOADER.append(loader)
    return _LOADER[0]


def _label(doc: dict[str, Any], release: str) -> dict[str, Any]:
    meta = doc.setdefault("metadata", {})
    labels = meta.get("labels")
    meta["labels"] = {**(labels if isinstance(labels, dict) else {}), RELEASE_LABEL: release}
    return doc


def render_objects(project: Project, release: Release) -> Rendered:
    """Render in memory (no files); raises RenderError when helm fails."""
    from homelab import resolve

    objects: list[dict[str, Any]] = []
    chart_rendered = False
    note = ""
    if release.chart is not None:
        where = charts.find(project, release)
        if where.path is None:
            note = f"{where.reason}; extra manifests rendered only"
        else:
            objects += helm_template(project, release, where.path, resolve.resolved_values(project, release))
            chart_rendered = True
    extra = [_label(doc, release.name) for doc in resolve.resolved_manifests(project, release)]
    return Rendered(objects + extra, chart_rendered, note, [], release.name, extra)


def render_release(project: Project, release: Release) -> Rendered:
    """Render a release and replace build/<env>/manifests/<release>/ with the result."""
    rendered = render_objects(project, release)
    rendered.files = write_manifests(project.layout.manifests, release.name, rendered.objects)
    return rendered


# -- files -------------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^a-z0-9.-]+")


def file_names(objects: list[dict[str, Any]]) -> list[str]:
    """``NN-kind-name.yaml``: the index keeps names unique and sorted in render order."""
    width = max(2, len(str(len(objects) - 1)))
    names = []
    for i, obj in enumerate(objects):
        kind = _UNSAFE.sub("-", str(obj.get("kind", "object")).lower()).strip("-") or "object"
        meta = obj.get("metadata")
        raw = meta.get("name", "") if isinstance(meta, dict) else ""
        name = _UNSAFE.sub("-", str(raw).lower()).strip("-.") or "unnamed"
        names.append(f"{i:0{width}d}-{kind}-{name[:100]}.yaml")
    return names


def _dump(obj: dict[str, Any]) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(obj, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return int(fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)) == 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifests(base: Path, release: str, objects: list[dict[str, Any]]) -> list[Path]:
    """Replace base/<release>/ with one file per object; Secrets are written 0600."""
    base.mkdir(parents=True, exist_ok=True)
    for leftover in base.glob(f".{release}.*"):
        shutil.rmtree(leftover, ignore_errors=True)  # from a run that crashed mid-way
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=f".{release}.new-"))
    final = base / release
    try:
        os.chmod(tmp, 0o755)
        for name, obj in zip(file_names(objects), objects, strict=True):
            _write(tmp / name, redact.redact(_dump(obj)), 0o600 if obj.get("kind") == "Secret" else 0o644)
        _fsync_dir(tmp)
        if final.exists() and _exchange(tmp, final):
            shutil.rmtree(tmp)  # tmp now holds the previous rendering
        else:
            replace_dir(tmp, final, base / f".{release}.old-{os.getpid()}")
        _fsync_dir(base)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [final / name for name in file_names(objects)]


# -- the check the engine runs per release ------------------------------------------------------------------

def check_release(project: Project, release: Release) -> tuple[Rendered, list[Violation]]:
    """Render, validate against schemas, apply policy. Never raises for bad input: failures are violations."""
    from homelab import policy, validate

    try:
        rendered = render_release(project, release)
    except RenderError as exc:
        chart = release.chart or {}
        name = str(chart.get("name") or chart.get("path", "chart")).rsplit("/", 1)[-1]
        return (Rendered([], False, str(exc), [], release.name),
                [Violation(release.name, "Chart", name, "", str(exc))])
    found = validate.validate_objects(rendered.objects, kube_version(project), crd_schema_dir(project),
                                      release=release.name)
    found += policy.check(project, release, rendered.objects)
    return rendered, found


def render_all(project: Project) -> dict[str, tuple[Rendered, list[Violation]]]:
    """check_release for every release (helm runs in parallel), and removal of renderings of deleted releases."""
    names = sorted(r.name for r in project.releases)
    base = project.layout.manifests
    if base.is_dir():
        for stale in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if stale.name not in names:
                shutil.rmtree(stale)
    # threads: the time goes to helm subprocesses, which run outside the GIL
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        results = list(pool.map(lambda n: check_release(project, project.release(n)), names))
    return dict(zip(names, results, strict=True))


def summary(project: Project, rendered: Rendered, violations: list[Violation]) -> list[str]:
    """What a task prints for one release: where the output went, why a chart was skipped, every violation."""
    from homelab.violations import errors

    where = project.layout.rel(project.layout.manifests / rendered.release)
    chart = len(rendered.objects) - len(rendered.extra)
    lines = [f"{rendered.release}: {len(rendered.objects)} object(s) ({chart} from the chart, "
             f"{len(rendered.extra)} extra) -> {where}/, {len(errors(violations))} error(s), "
             f"{len(violations) - len(errors(violations))} warning(s)"]
    if rendered.note:
        lines.append(f"{rendered.release}: note: {rendered.note}")
    lines += [v.line() for v in violations]
    return lines
