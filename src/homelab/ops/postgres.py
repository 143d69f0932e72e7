"""PostgreSQL backup, restore and restore drill (FR33, FR34; Stories 5.3, 5.4).

``pg_backup``: create a Job from the backup CronJob (what ``kubectl create job --from=cronjob/postgres-backup``
does), wait for it, then verify the newest dump: non-empty, a valid gzip stream (every byte, CRC included),
starting with a PostgreSQL dump header and ending with its "dump complete" footer (a dump cut short by a
full disk or a killed pod has no footer), written after the backup started.
``pg_restore``: restore one database from a dump, after confirmation on stdin unless forced. The dump is
restored into a temporary database first and swapped in only when that succeeded, so a failed restore
leaves the current database as it was.
``pg_restore_drill``: restore every application database of the newest dump into a scratch database,
compare the row count of every table with the live database, drop the scratch database, report the
measured restore time (Story 5.4's "restore time is documented").

How the pieces split, and why:
- The SQL work is bash + psql + awk scripts (``CHECK_SCRIPT``, ``RESTORE_SCRIPT``, ``DRILL_SCRIPT``). In the
  cluster they run as Jobs built from the backup CronJob's own pod template (same image as the server, the
  same PGHOST/PGUSER/password Secret reference, the backup claim mounted read-only), so the dump never
  leaves the cluster and no credential passes through this process. The tests run the very same scripts
  with bash against a throw-away local PostgreSQL. Scripts report in ``HOMELAB <kind> ...`` lines that
  Python parses; nothing else of their output is interpreted.
- Verification and the row-count comparison are pure functions (``verify_sample``, ``verify_dump``,
  ``compare_counts``), tested on real gzip bytes and real counts.
- Where scripts run is pluggable (``ScriptRunner``): ``JobScripts`` (cluster) or ``LocalScripts`` (bash here).

The kubernetes client is imported lazily. Expected failures are ``OpResult(ok=False)`` with one line;
everything printed passes through ``homelab.redact``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import gzip
import io
import json
import os
import secrets as _random
import shlex
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from homelab import redact
from homelab.ops.result import OpResult

if TYPE_CHECKING:
    from homelab.project import Project

RELEASE = "postgres"
CRONJOB = "postgres-backup"
SYSTEM_DATABASES = ("template0", "template1", "postgres")
SAMPLE_BYTES = 4096  # of the decompressed dump's start and end: enough for header and footer
CLOCK_SKEW = 120.0  # seconds a dump's mtime may precede the backup start (node vs. operator clock)
OPS_LABELS = {"app.kubernetes.io/name": "postgres-ops", "app.kubernetes.io/part-of": "homelab"}
PG_ENV = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGSSLMODE")  # what the ops Jobs inherit from the CronJob

HEADERS = {"cluster": "-- PostgreSQL database cluster dump", "database": "-- PostgreSQL database dump"}
FOOTERS = {"cluster": "-- PostgreSQL database cluster dump complete",
           "database": "-- PostgreSQL database dump complete"}


# ---------------------------------------------------------------------------------------------------------
# verification (pure)


@dataclass(frozen=True)
class DumpSample:
    """What verification looks at: size and mtime of the file, whether the whole gzip stream is intact,
    and the first and last bytes of the decompressed SQL."""

    name: str
    size: int
    mtime: float
    gzip_ok: bool
    head: bytes
    tail: bytes


@dataclass(frozen=True)
class DumpCheck:
    """The verdict: ``kind`` is "cluster" (pg_dumpall) or "database" (pg_dump) when recognised."""

    ok: bool
    message: str
    kind: str = ""
    problems: tuple[str, ...] = ()


def sample_from_bytes(name: str, data: bytes, mtime: float = 0.0, keep: int = SAMPLE_BYTES) -> DumpSample:
    """Decompress a whole dump in memory (a truncated stream or a CRC/length mismatch makes ``gzip_ok``
    False, as ``gzip -t`` does) and keep its first and last ``keep`` bytes."""
    head, tail, ok = b"", b"", bool(data)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            while chunk := stream.read(1 << 16):
                if len(head) < keep:
                    head += chunk[: keep - len(head)]
                tail = (tail + chunk)[-keep:]
    except (OSError, EOFError, zlib.error):
        ok = False
    return DumpSample(name, len(data), mtime, ok, head, tail)


def verify_sample(sample: DumpSample) -> DumpCheck:
    """Is this a complete PostgreSQL dump? Every problem found is listed, the first one in ``message``."""
    problems: list[str] = []
    if sample.size == 0:
        problems.append(f"{sample.name} is empty (0 bytes)")
    elif not sample.gzip_ok:
        problems.append(f"{sample.name} is not a valid gzip stream (truncated or corrupt)")
    text_head = sample.head.decode("utf-8", "replace").lstrip("\ufeff \r\n")
    kind = ""
    first_lines = "\n".join(text_head.splitlines()[:3])
    for candidate, header in HEADERS.items():
        if first_lines.startswith("--\n" + header) and first_lines[len("--\n" + header):][:1] in ("\n", ""):
            kind = candidate
    if sample.size and not sample.head:
        problems.append(f"{sample.name} decompresses to nothing")
    elif sample.size and not kind:
        first = text_head.splitlines()[0][:60] if text_head.strip() else "(blank)"
        problems.append(f"{sample.name} does not start with a PostgreSQL dump header (first line: {first!r})")
    if kind and FOOTERS[kind] not in sample.tail.decode("utf-8", "replace"):
        problems.append(f"{sample.name} has no '{FOOTERS[kind]}' footer: the dump was cut short")
    if problems:
        return DumpCheck(False, problems[0], kind, tuple(problems))
    what = "cluster dump (pg_dumpall)" if kind == "cluster" else "database dump (pg_dump)"
    return DumpCheck(True, f"{sample.name}: {human_size(sample.size)}, valid gzip, complete PostgreSQL {what}", kind)


def verify_dump(data: bytes, name: str = "dump") -> DumpCheck:
    """``verify_sample`` over the bytes of a gzip'd dump."""
    return verify_sample(sample_from_bytes(name, data))


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


# ---------------------------------------------------------------------------------------------------------
# the scripts (bash, psql, awk: what the postgres image has)

_PRELUDE = r"""
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) fails the script too
BACKUP_DIR="${BACKUP_DIR:-/backups}"
say() { printf 'HOMELAB %s\n' "$*"; }
pick_dump() {
  if [ -n "${DUMP:-}" ] && [ "$DUMP" != latest ]; then
    case "$DUMP" in */*|.*) echo "dump must be a file name in the backup volume, not $DUMP" >&2; return 1 ;; esac
    printf '%s/%s\n' "$BACKUP_DIR" "$DUMP"
  else
    # the backup job renames its .partial file only after a complete dump: only finished dumps match
    ls -1t "$BACKUP_DIR" 2>/dev/null | grep -E '^postgres-.*\.sql\.gz$' | head -n 1 | sed "s|^|$BACKUP_DIR/|" || true
  fi
}
sanitize() { printf '%s' "$1" | tr -c 'A-Za-z0-9_' '_' | tr 'A-Z' 'a-z' | cut -c1-40; }
sql() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
"""

# One database's section of a pg_dumpall script, its database renamed to TARGET. pg_dumpall writes each
# database as '-- Database "NAME" dump' followed by pg_dump --create output; the section ends at the next
# such header or the cluster footer. Renaming touches the statements that name the database (CREATE/ALTER/
# COMMENT ON/GRANT/REVOKE/SECURITY LABEL ... DATABASE x) and the \connect lines, never COPY data: a drill
# must not alter the live database's comment, settings or privileges. Names come through ENVIRON because
# awk -v would interpret backslashes.
EXTRACT_AWK = r"""
BEGIN {
  db = ENVIRON["DB"]; target = ENVIRON["TARGET"]
  header = "-- Database \"" db "\" dump"
  qdb = db; gsub(/"/, "\"\"", qdb); qdb = "\"" qdb "\""
  inside = 0; copying = 0; done = 0
}
function rename(s,    forms, i, f, p, after) {
  forms[1] = qdb; forms[2] = db
  for (i = 1; i <= 2; i++) {
    f = "DATABASE " forms[i]
    p = index(s, f)
    if (p > 0) {
      after = substr(s, p + length(f), 1)
      if (after == " " || after == ";" || after == "")
        return substr(s, 1, p - 1) "DATABASE " target substr(s, p + length(f))
    }
  }
  return s
}
{
  # read to the end rather than exit: an early exit kills gunzip with SIGPIPE, which pipefail reports as failure
  if (done) next
  if (copying) { print; if ($0 == "\\.") copying = 0; next }
  if (!inside) { if ($0 == header) inside = 1; else next }
  else if ($0 ~ /^-- Database ".*" dump$/ || $0 == "-- PostgreSQL database cluster dump complete") { done = 1; next }
  if ($0 ~ /^COPY .* FROM stdin;$/) { print; copying = 1; next }
  if ($0 ~ /^\\connect /) { print "\\connect " target; next }
  if ($0 ~ /^(CREATE|ALTER|COMMENT ON|GRANT|REVOKE|SECURITY LABEL)/) { print rename($0); next }
  print
}
"""

# exact row counts of every ordinary and partitioned table, one "<rows> <schema>.<table>" line each
COUNT_SQL = r"""SELECT format('SELECT count(*) || %L FROM %I.%I',
              ' ' || n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
ORDER BY n.nspname, c.relname
\gexec"""

_HELPERS = _PRELUDE + f"EXTRACT_AWK={shlex.quote(EXTRACT_AWK)}\nCOUNT_SQL={shlex.quote(COUNT_SQL)}\n" + r"""
count_rows() {  # count_rows LABEL DATABASE
  printf '%s\n' "$COUNT_SQL" | PGDATABASE="$2" psql -X -q -At -v ON_ERROR_STOP=1 | while IFS= read -r row; do
    say "count $1 $row"
  done
}
db_exists() {
  local found
  found="$(printf '%s\n' "SELECT 1 FROM pg_database WHERE datname = :'name'" | psql -X -q -At -v name="$1" -d postgres)"
  [ "$found" = 1 ]
}
drop_db() { printf '%s\n' 'DROP DATABASE IF EXISTS :"name" WITH (FORCE);' | sql -v name="$1" >/dev/null; }
restore_section() {  # restore_section FILE DATABASE TARGET: prints the seconds it took
  local start end
  start=$(date +%s.%N)
  gunzip -c "$1" | DB="$2" TARGET="$3" awk "$EXTRACT_AWK" | sql >/dev/null || {
    echo "restoring database $2 into $3 failed (see the psql error above)" >&2; return 1
  }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}
dump_or_fail() {
  f="$(pick_dump)"
  if [ -z "$f" ] || [ ! -f "$f" ]; then echo "no dump ${DUMP:-latest} in $BACKUP_DIR" >&2; exit 3; fi
  say "dump $(stat -c '%s %Y' "$f") $(basename "$f")"
  gzip -t "$f" 2>/dev/null || { echo "$(basename "$f") is not a valid gzip file" >&2; exit 4; }
}
# grep -c reads to the end: grep -q would exit early and, under pipefail, fail the pipeline it ends
databases_in() { (gunzip -c "$1" || true) | sed -n 's/^-- Database "\(.*\)" dump$/\1/p'; }
"""

CHECK_SCRIPT = _PRELUDE + r"""
ls -1t "$BACKUP_DIR" 2>/dev/null | grep -E '^postgres-.*\.sql\.gz$' | while IFS= read -r g; do
  say "file $(stat -c '%s %Y' "$BACKUP_DIR/$g") $g"
done || true
f="$(pick_dump)"
if [ -z "$f" ] || [ ! -f "$f" ]; then say "none ${DUMP:-latest}"; exit 0; fi
say "dump $(stat -c '%s %Y' "$f") $(basename "$f")"
if gzip -t "$f" 2>/dev/null; then say "gzip ok"; else say "gzip bad"; fi
say "head $( (gunzip -c "$f" 2>/dev/null || true) | head -c 4096 | base64 -w0)"
say "tail $( (gunzip -c "$f" 2>/dev/null || true) | tail -c 4096 | base64 -w0)"
say "end"
"""

DRILL_SCRIPT = _HELPERS + r"""
dump_or_fail
scratch=""
cleanup() { if [ -n "$scratch" ]; then drop_db "$scratch" 2>/dev/null || true; fi; }
trap cleanup EXIT
i=0
while IFS= read -r db; do
  case "$db" in template0|template1|postgres) continue ;; esac
  if [ -n "${DATABASES:-}" ]; then case " $DATABASES " in *" $db "*) ;; *) continue ;; esac; fi
  i=$((i + 1))
  scratch="hl_drill_${i}_$(sanitize "$db")"
  say "database $scratch $db"
  drop_db "$scratch"  # left over by a drill that was killed
  seconds="$(restore_section "$f" "$db" "$scratch")"
  say "restored $seconds $db"
  count_rows restored "$scratch"
  if db_exists "$db"; then count_rows source "$db"; else say "nosource $db"; fi
  drop_db "$scratch"
  say "dropped $scratch"
  scratch=""
done < <(databases_in "$f")
say "end"
"""

RESTORE_SCRIPT = _HELPERS + r"""
: "${DATABASE:?DATABASE is required}"
dump_or_fail
if [ "$(databases_in "$f" | grep -cxF -- "$DATABASE" || true)" = 0 ]; then
  echo "database $DATABASE is not in $(basename "$f") (it has: $(databases_in "$f" | tr '\n' ' '))" >&2; exit 5
fi
tmp="hl_restore_$(sanitize "$DATABASE")"
cleanup() { if [ -n "$tmp" ]; then drop_db "$tmp" 2>/dev/null || true; fi; }
trap cleanup EXIT
drop_db "$tmp"
seconds="$(restore_section "$f" "$DATABASE" "$tmp")"
say "restored $seconds $DATABASE"
count_rows restored "$tmp"
# the swap: from here on the restored copy is the only good one and must survive any failure
keep="$tmp"; tmp=""
printf '%s\n' 'DROP DATABASE IF EXISTS :"db" WITH (FORCE);' 'ALTER DATABASE :"keep" RENAME TO :"db";' \
  | sql -v db="$DATABASE" -v keep="$keep" >/dev/null || {
  echo "the restored copy is database $keep; $DATABASE may be gone:" \
       "rename it by hand (ALTER DATABASE $keep RENAME TO ...)" >&2
  exit 6
}
say "swapped $DATABASE"
say "end"
"""


# ---------------------------------------------------------------------------------------------------------
# reading the scripts' reports (pure)


@dataclass
class DrillDatabase:
    """One database of a drill or restore: where it was restored, how long it took, the row counts."""

    name: str
    scratch: str = ""
    seconds: float | None = None
    restored: dict[str, int] = field(default_factory=dict)
    source: dict[str, int] | None = field(default_factory=dict)  # None: the live database does not exist


@dataclass
class Report:
    """Everything a script reported. ``files`` lists the dumps on the volume, newest first."""

    dump: tuple[int, float, str] | None = None  # (size, mtime, name)
    files: list[tuple[int, float, str]] = field(default_factory=list)
    missing: str = ""
    gzip_ok: bool | None = None
    head: bytes = b""
    tail: bytes = b""
    databases: list[DrillDatabase] = field(default_factory=list)
    swapped: bool = False
    complete: bool = False


def parse_report(text: str) -> Report:
    """Read the ``HOMELAB ...`` lines; anything else (psql notices, pod noise) is ignored."""
    report = Report()
    current: DrillDatabase | None = None
    for line in text.splitlines():
        if not line.startswith("HOMELAB "):
            continue
        kind, _, rest = line[len("HOMELAB "):].partition(" ")
        if kind in ("dump", "file"):
            size, mtime, name = rest.split(" ", 2)
            entry = (int(size), float(mtime), name)
            if kind == "dump":
                report.dump = entry
            else:
                report.files.append(entry)
        elif kind == "none":
            report.missing = rest
        elif kind == "gzip":
            report.gzip_ok = rest.strip() == "ok"
        elif kind in ("head", "tail"):
            setattr(report, kind, base64.b64decode(rest.strip()) if rest.strip() else b"")
        elif kind == "database":
            scratch, _, name = rest.partition(" ")
            current = DrillDatabase(name, scratch)
            report.databases.append(current)
        elif kind == "restored":
            seconds, _, name = rest.partition(" ")
            if current is None or current.name != name:  # a restore reports no "database" line first
                current = DrillDatabase(name)
                report.databases.append(current)
            current.seconds = float(seconds)
        elif kind == "count" and current is not None:
            side, rows, table = rest.split(" ", 2)
            target = current.restored if side == "restored" else current.source
            if target is not None:
                target[table] = int(rows)
        elif kind == "nosource" and current is not None:
            current.source = None
        elif kind == "swapped":
            report.swapped = True
        elif kind == "end":
            report.complete = True
    return report


def sample_from_report(report: Report) -> DumpSample | None:
    if report.dump is None:
        return None
    size, mtime, name = report.dump
    return DumpSample(name, size, mtime, bool(report.gzip_ok), report.head, report.tail)


def compare_counts(restored: Mapping[str, int], source: Mapping[str, int]) -> list[str]:
    """Differences between a restored database and its live source, one line each ([] when equal)."""
    diffs = []
    for table in sorted(set(restored) | set(source)):
        if table not in source:
            diffs.append(f"{table}: in the dump ({restored[table]} rows) but no longer in the source")
        elif table not in restored:
            diffs.append(f"{table}: in the source ({source[table]} rows) but not in the dump")
        elif restored[table] != source[table]:
            diffs.append(f"{table}: {restored[table]} rows restored, {source[table]} in the source")
    return diffs


# ---------------------------------------------------------------------------------------------------------
# running the scripts


@dataclass(frozen=True)
class ScriptRun:
    """A finished script: ``ok``, its combined output, and a one-line ``message`` when it failed."""

    ok: bool
    output: str
    message: str = ""
    seconds: float = 0.0


class ScriptRunner(Protocol):
    """Runs one of the scripts with extra environment variables (DUMP, DATABASE, DATABASES)."""

    where: str

    def attach(self, say: Callable[[str], None]) -> None:
        """Where progress lines go (the operation's step printer)."""

    def run(self, op: str, script: str, env: Mapping[str, str], timeout: float) -> ScriptRun: ...


def _tail(text: str, lines: int = 3) -> str:
    """The lines that explain a failure: psql's first ERROR/FATAL line and the script's last words, else the
    last ``lines`` lines (psql follows an error with LINE/caret/HINT lines that say little on their own)."""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("HOMELAB ")]
    errors = [ln for ln in kept if "ERROR:" in ln or "FATAL:" in ln or "psql: error" in ln]
    if errors:
        return " | ".join(dict.fromkeys([errors[0], kept[-1]]))
    return " | ".join(kept[-lines:])


class LocalScripts:
    """Runs the scripts with bash on this machine, against the PostgreSQL that PG* variables name
    (the tests' throw-away cluster, or an operator's port-forward) and dumps in ``backup_dir``."""

    def __init__(self, backup_dir: Path, pg_env: Mapping[str, str]) -> None:
        self.backup_dir = backup_dir
        self.pg_env = dict(pg_env)
        self.where = f"bash on this machine ({backup_dir})"

    def attach(self, say: Callable[[str], None]) -> None:
        """Nothing to report while bash runs."""

    def run(self, op: str, script: str, env: Mapping[str, str], timeout: float) -> ScriptRun:
        full = {**os.environ, **self.pg_env, "BACKUP_DIR": str(self.backup_dir), **env}
        started = time.monotonic()
        try:
            proc = subprocess.run(["bash", "-c", script], env=full, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return ScriptRun(False, "", f"{op}: no result within {timeout:.0f}s", time.monotonic() - started)
        output = proc.stdout + proc.stderr
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            why = _tail(proc.stderr) or "no output"
            return ScriptRun(False, output, f"{op} failed (exit {proc.returncode}): {why}", seconds)
        return ScriptRun(True, output, "", seconds)


class ClusterJobs:
    """Jobs in the PostgreSQL namespace through the kubernetes client (imported on first use)."""

    def __init__(self, kubeconfig: Path, namespace: str = "data", cronjob: str = CRONJOB,
                 poll_seconds: float = 1.0, say: Callable[[str], None] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.cronjob_name = cronjob
        self.poll_seconds = poll_seconds
        self.say = say or (lambda _text: None)
        self._api: Any = None

    def _clients(self) -> tuple[Any, Any]:
        if self._api is None:
            from kubernetes import config

            try:
                self._api = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
            except Exception as exc:  # a missing or malformed kubeconfig
                raise JobError(f"cannot use the kubeconfig {self.kubeconfig}: {exc}") from None
        from kubernetes import client

        return client.BatchV1Api(self._api), client.CoreV1Api(self._api)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API and return the parsed JSON body; failures become a JobError naming ``what``."""
        data = self._raw(what, fn, *args, **kwargs)
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise JobError(f"{what}: the API answered something that is not JSON") from None

    def _raw(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        # raw bodies: no model classes to convert, and a pod log stays text even when it looks like JSON
        try:
            response = fn(*args, _preload_content=False, **kwargs)
        except Exception as exc:  # ApiException, connection errors: one line
            raise JobError(f"{what}: {_api_error(exc)}") from None
        data: bytes = response.data or b""
        return data

    def cronjob(self) -> dict[str, Any]:
        batch, _ = self._clients()
        found: dict[str, Any] = self._call(f"CronJob {self.namespace}/{self.cronjob_name}",
                                           batch.read_namespaced_cron_job, self.cronjob_name, self.namespace)
        return found

    def create(self, job: dict[str, Any]) -> None:
        batch, _ = self._clients()
        self._call(f"create Job {self.namespace}/{job['metadata']['name']}", batch.create_namespaced_job,
                   self.namespace, job)

    def wait(self, name: str, timeout: float) -> tuple[str, str]:
        """("complete" | "failed" | "timeout", reason). Progress is printed when the Job's state changes."""
        batch, _ = self._clients()
        deadline = time.monotonic() + timeout
        shown = ""
        while True:
            job = self._call(f"Job {self.namespace}/{name}", batch.read_namespaced_job_status, name, self.namespace)
            status = job.get("status") or {}
            for cond in status.get("conditions") or []:
                if cond.get("status") == "True" and cond.get("type") == "Complete":
                    return "complete", ""
                if cond.get("status") == "True" and cond.get("type") == "Failed":
                    return "failed", " ".join(p for p in (cond.get("reason"), cond.get("message")) if p)
            state = f"active {status.get('active', 0)}, failed pods {status.get('failed', 0)}"
            if state != shown:
                self.say(f"Job {self.namespace}/{name}: {state}")
                shown = state
            if time.monotonic() >= deadline:
                return "timeout", f"still running after {timeout:g}s ({state})"
            time.sleep(self.poll_seconds)

    def logs(self, name: str) -> str:
        """The log of the Job's newest pod ('' when it has none)."""
        _, core = self._clients()
        pods = self._call(f"pods of Job {name}", core.list_namespaced_pod, self.namespace,
                          label_selector=f"job-name={name}")
        items = sorted(pods.get("items") or [], key=lambda p: (p.get("metadata") or {}).get("creationTimestamp", ""))
        if not items:
            return ""
        pod = items[-1]["metadata"]["name"]
        log = self._raw(f"log of pod {pod}", core.read_namespaced_pod_log, pod, self.namespace)
        return log.decode("utf-8", "replace")

    def delete(self, name: str) -> None:
        batch, _ = self._clients()
        with contextlib.suppress(JobError):  # cleanup only; ttlSecondsAfterFinished removes it anyway
            self._call(f"delete Job {name}", batch.delete_namespaced_job, name, self.namespace,
                       propagation_policy="Background")


class JobError(Exception):
    """The cluster refused or did not answer; one line."""


def _api_error(exc: BaseException) -> str:
    from homelab.kube import describe_error

    return describe_error(exc)


def job_name(op: str) -> str:
    """``postgres-<op>-<UTC time>-<4 hex>``: sortable, unique even for two runs in one second, <= 63 chars."""
    return f"postgres-{op}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{_random.token_hex(2)}"


def job_from_cronjob(cronjob: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The Job ``kubectl create job NAME --from=cronjob/X`` creates: the CronJob's jobTemplate, owned by
    the CronJob (so its history limits clean it up), annotated as a manual instantiation."""
    meta = cronjob.get("metadata") or {}
    template = copy.deepcopy((cronjob.get("spec") or {}).get("jobTemplate") or {})
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": meta.get("name"), "uid": meta.get("uid"),
             "controller": True}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": meta.get("namespace"), "labels": labels,
                     "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                     "ownerReferences": [owner] if owner["uid"] else []},
        "spec": template.get("spec") or {},
    }


def script_job(cronjob: Mapping[str, Any], name: str, op: str, script: str, env: Mapping[str, str],
               deadline_seconds: int) -> dict[str, Any]:
    """A Job running ``script`` in the backup CronJob's pod: its image (same major version as the server),
    its PG* variables (the password stays a secretKeyRef), its volumes with the backup claim read-only,
    its security context. Never retried: a restore must not run twice by itself."""
    meta = cronjob.get("metadata") or {}
    pod = copy.deepcopy(((cronjob.get("spec") or {}).get("jobTemplate") or {}).get("spec", {})
                        .get("template", {}).get("spec") or {})
    source = (pod.get("containers") or [{}])[0]
    claims = {v["name"] for v in pod.get("volumes") or [] if "persistentVolumeClaim" in v}
    for volume in pod.get("volumes") or []:
        if "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["readOnly"] = True
    container: dict[str, Any] = {
        "name": f"postgres-{op}",
        "image": source.get("image"),
        "imagePullPolicy": source.get("imagePullPolicy", "IfNotPresent"),
        "command": ["/bin/bash", "-c"],
        "args": [script],
        "env": [e for e in source.get("env") or [] if e.get("name") in PG_ENV]
        + [{"name": k, "value": v} for k, v in sorted(env.items())],
        "volumeMounts": [{**m, "readOnly": True} if m.get("name") in claims else m
                         for m in source.get("volumeMounts") or []],
    }
    for key in ("securityContext", "resources"):
        if source.get(key):
            container[key] = source[key]
    pod.update(containers=[container], restartPolicy="Never")
    labels = {**OPS_LABELS, "homelab.dev/op": op}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": meta.get("namespace"), "labels": labels},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": deadline_seconds, "ttlSecondsAfterFinished": 86400,
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }


class JobScripts:
    """Runs the scripts as Jobs next to the database (``script_job``); their pod log is the output."""

    def __init__(self, jobs: ClusterJobs) -> None:
        self.jobs = jobs
        self.where = f"a Job in namespace {jobs.namespace}"

    def attach(self, say: Callable[[str], None]) -> None:
        self.jobs.say = say

    def run(self, op: str, script: str, env: Mapping[str, str], timeout: float) -> ScriptRun:
        started = time.monotonic()
        name = job_name(op)
        try:
            cron = self.jobs.cronjob()
            self.jobs.create(script_job(cron, name, op, script, env, int(timeout)))
            self.jobs.say(f"created Job {self.jobs.namespace}/{name}")
            outcome, reason = self.jobs.wait(name, timeout)
            output = self.jobs.logs(name)
        except JobError as exc:
            return ScriptRun(False, "", str(exc), time.monotonic() - started)
        seconds = time.monotonic() - started
        if outcome != "complete":
            detail = _tail(output) or "no log"
            return ScriptRun(False, output, f"Job {self.jobs.namespace}/{name} {outcome}: {reason}; last log lines: "
                             f"{detail} (kubectl -n {self.jobs.namespace} logs job/{name})", seconds)
        self.jobs.delete(name)
        return ScriptRun(True, output, "", seconds)


# ---------------------------------------------------------------------------------------------------------
# the operations


class _Steps:
    """``[ 2.1s] text`` lines, redacted."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out or sys.stdout
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        self.out.write(f"[{self.elapsed:4.1f}s] {redact.redact(text)}\n")
        self.out.flush()

    def done(self, ok: bool, message: str, **details: Any) -> OpResult:
        result = OpResult(ok, redact.redact(message), round(self.elapsed, 2), details)
        self.say(result.line())
        return result


def _verify_report(report: Report, not_before: float | None) -> tuple[DumpCheck, list[str]]:
    """The dump check plus the notes on the volume (retention, a sudden shrink)."""
    notes: list[str] = []
    sample = sample_from_report(report)
    if sample is None:
        return DumpCheck(False, f"no dump {report.missing or 'latest'} in the backup volume"), notes
    check = verify_sample(sample)
    if check.ok and not_before is not None and sample.mtime < not_before - CLOCK_SKEW:
        age = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(sample.mtime))
        check = DumpCheck(False, f"the newest dump {sample.name} ({age}) is older than this backup: the Job wrote "
                                 "no new dump", check.kind)
    if report.files:
        notes.append(f"{len(report.files)} dump(s) on the volume (the CronJob keeps the newest 7)")
        sizes = [size for size, _, _ in report.files]
        if len(sizes) > 1 and sizes[0] < 0.5 * sizes[1]:
            notes.append(f"warning: the newest dump is less than half the size of the previous one "
                         f"({human_size(sizes[0])} vs {human_size(sizes[1])}): was data lost?")
    return check, notes


def pg_backup(jobs: ClusterJobs, checker: ScriptRunner | None = None, *, out: TextIO | None = None,
              timeout: float = 900.0, check_timeout: float = 300.0) -> OpResult:
    """Run the backup CronJob now, wait for it, verify the newest dump."""
    steps = _Steps(out)
    jobs.say = steps.say
    checker = checker or JobScripts(jobs)
    checker.attach(steps.say)
    name = job_name("backup-manual")
    started_wall = time.time()
    try:
        cron = jobs.cronjob()
    except JobError as exc:
        return steps.done(False, f"pg_backup: {exc} (converge the postgres release first)")
    try:
        jobs.create(job_from_cronjob(cron, name))
        steps.say(f"created Job {jobs.namespace}/{name} from cronjob/{jobs.cronjob_name}")
        outcome, reason = jobs.wait(name, timeout)
        if outcome != "complete":
            detail = _tail(jobs.logs(name)) or "no log"
            return steps.done(False, f"pg_backup: Job {jobs.namespace}/{name} {outcome}: {reason}; last log lines: "
                                     f"{detail} (kubectl -n {jobs.namespace} logs job/{name})", job=name)
    except JobError as exc:
        return steps.done(False, f"pg_backup: {exc}", job=name)
    backup_seconds = steps.elapsed
    steps.say(f"backup Job complete in {backup_seconds:.1f}s; verifying the newest dump ({checker.where})")
    run = checker.run("check", CHECK_SCRIPT, {}, check_timeout)
    if not run.ok:
        return steps.done(False, f"pg_backup: the backup ran but the dump could not be checked: {run.message}",
                          job=name)
    check, notes = _verify_report(parse_report(run.output), started_wall)
    for note in notes:
        steps.say(note)
    if not check.ok:
        return steps.done(False, f"pg_backup: {check.message}", job=name, problems=list(check.problems))
    steps.say(check.message)
    return steps.done(True, f"backup verified: {check.message}", job=name, backup_seconds=round(backup_seconds, 2))


def confirm(database: str, dump: str, stdin: TextIO | None, out: TextIO) -> str:
    """Ask on stdin for the database name; '' when confirmed, else why not (no stdin counts as no)."""
    if stdin is None or stdin.closed:
        return "no stdin to ask for confirmation"
    out.write(f"Restoring {dump} replaces database {database!r} (its current contents are dropped).\n"
              f"Type the database name to confirm: ")
    out.flush()
    try:
        answer = stdin.readline()
    except (OSError, ValueError):
        answer = ""
    if not answer:
        return "no confirmation on stdin (end of input)"
    if answer.strip() != database:
        return f"the confirmation {answer.strip()!r} is not the database name"
    return ""


def _rows(counts: Mapping[str, int]) -> str:
    return f"{len(counts)} table(s), {sum(counts.values())} row(s)"


def pg_restore(runner: ScriptRunner, dump: str, database: str, force: bool = False, *,
               stdin: TextIO | None = None, out: TextIO | None = None, timeout: float = 3600.0) -> OpResult:
    """Restore ``database`` from ``dump`` (a file name in the backup volume, or "latest")."""
    steps = _Steps(out)
    dump = dump or "latest"
    if not database or database in SYSTEM_DATABASES:
        return steps.done(False, f"pg_restore: choose an application database, not {database or '(none)'!r} "
                                 "(a whole-cluster restore is in docs/runbooks/postgres-restore.md)")
    if not force:
        refusal = confirm(database, dump, stdin, steps.out)
        if refusal:
            return steps.done(False, f"pg_restore: refusing to replace {database} without confirmation: {refusal}; "
                                     "run it interactively or pass --force")
    runner.attach(steps.say)
    steps.say(f"restoring database {database} from dump {dump} ({runner.where}): into a temporary database first, "
              "swapped in only if that succeeds")
    run = runner.run("restore", RESTORE_SCRIPT, {"DUMP": dump, "DATABASE": database}, timeout)
    report = parse_report(run.output)
    if not run.ok or not report.swapped:
        # exit 6 (the swap itself failed) explains itself; every earlier failure left the database alone
        unchanged = "" if "rename it by hand" in run.message else f"; database {database} is unchanged"
        return steps.done(False, f"pg_restore: {run.message or 'the restore did not finish'}{unchanged}")
    entry = report.databases[0] if report.databases else DrillDatabase(database)
    dump_name = report.dump[2] if report.dump else dump
    steps.say(f"restored {dump_name} into {database}: {_rows(entry.restored)} in {entry.seconds or 0:.1f}s")
    return steps.done(True, f"database {database} restored from {dump_name} ({_rows(entry.restored)}, restore "
                            f"{entry.seconds or 0:.1f}s)", restore_seconds=entry.seconds, rows=entry.restored)


def pg_restore_drill(runner: ScriptRunner, dump: str = "latest", databases: list[str] | None = None, *,
                     out: TextIO | None = None, timeout: float = 3600.0) -> OpResult:
    """Restore the dump's application databases into scratch databases, compare row counts, drop them."""
    steps = _Steps(out)
    runner.attach(steps.say)
    steps.say(f"restore drill of dump {dump or 'latest'} ({runner.where})")
    env = {"DUMP": dump or "latest"}
    if databases:
        env["DATABASES"] = " ".join(databases)
    run = runner.run("drill", DRILL_SCRIPT, env, timeout)
    report = parse_report(run.output)
    if not run.ok:
        return steps.done(False, f"pg_restore_drill: {run.message}")
    dump_name = report.dump[2] if report.dump else dump
    if not report.databases:
        wanted = f" among {', '.join(databases)}" if databases else ""
        return steps.done(False, f"pg_restore_drill: no application database{wanted} in {dump_name}")
    failures: list[str] = []
    for db in report.databases:
        steps.say(f"{db.name}: restored into {db.scratch} in {db.seconds or 0:.2f}s, {_rows(db.restored)}; "
                  f"scratch database dropped")
        if db.source is None:
            steps.say(f"{db.name}: no live database of that name to compare with")
            continue
        diffs = compare_counts(db.restored, db.source)
        if diffs:
            failures.append(f"{db.name}: {len(diffs)} difference(s), first: {diffs[0]}")
            for diff in diffs[:10]:
                steps.say(f"{db.name}: {diff}")
        else:
            steps.say(f"{db.name}: row counts match the live database ({_rows(db.source)})")
    total = sum(db.seconds or 0.0 for db in report.databases)
    steps.say(f"measured restore time: {total:.2f}s for {len(report.databases)} database(s) from {dump_name}")
    timings = {db.name: db.seconds for db in report.databases}
    if failures:
        return steps.done(False, f"pg_restore_drill: {'; '.join(failures)} (rows written since the dump was "
                                 "taken also differ: run `doit pg_backup` first for a quiet database)",
                          restore_seconds=timings)
    return steps.done(True, f"restore drill passed: {dump_name}, {len(report.databases)} database(s), restore "
                            f"{total:.2f}s", restore_seconds=timings)


# ---------------------------------------------------------------------------------------------------------
# engine wiring (doit pg_backup / pg_restore / pg_restore_drill)


def _cluster(project: Project, poll_seconds: float = 1.0) -> ClusterJobs | OpResult:
    from homelab import runstage

    kubeconfig = Path(runstage.kubeconfig_path(project))
    if not kubeconfig.exists():
        return OpResult(False, f"no kubeconfig at {project.layout.rel(kubeconfig)} (converge the k3s stage first or "
                               "set HOMELAB_KUBECONFIG)", 0.0)
    release = project.release(RELEASE)
    cronjobs = [d["metadata"]["name"] for docs in release.manifests.values() for d in docs
                if isinstance(d, dict) and d.get("kind") == "CronJob"]
    return ClusterJobs(kubeconfig, release.namespace, cronjobs[0] if cronjobs else CRONJOB, poll_seconds)


def run_pg_backup(project: Project, out: TextIO | None = None) -> OpResult:
    """``doit pg_backup``."""
    jobs = _cluster(project)
    return jobs if isinstance(jobs, OpResult) else pg_backup(jobs, out=out)


def run_pg_restore(project: Project, dump: str, database: str, force: bool = False,
                   out: TextIO | None = None, stdin: TextIO | None = None) -> OpResult:
    """``doit pg_restore --dump NAME|latest --database NAME [--force]``."""
    jobs = _cluster(project)
    if isinstance(jobs, OpResult):
        return jobs
    return pg_restore(JobScripts(jobs), dump, database, force, stdin=sys.stdin if stdin is None else stdin, out=out)


def run_pg_restore_drill(project: Project, dump: str = "latest", databases: list[str] | None = None,
                         out: TextIO | None = None) -> OpResult:
    """``doit pg_restore_drill [--dump NAME] [--database NAME ...]``."""
    jobs = _cluster(project)
    if isinstance(jobs, OpResult):
        return jobs
    return pg_restore_drill(JobScripts(jobs), dump, databases, out=out)
