"""PostgreSQL backup, restore and drill (homelab.ops.postgres; FR33, FR34, Stories 5.3 and 5.4).

The SQL side is real: a throw-away PostgreSQL cluster on 127.0.0.1 under a temp dir (skipped with a reason
when the server binaries are missing), dumps made by the postgres-backup CronJob's own script from
releases/postgres/manifests/backup.yaml, and the restore/drill scripts run with bash exactly as the Jobs run
them. The in-cluster parts (Job from the CronJob, waiting, failures, the script Jobs' manifests and logs) run
against the FAKE Kubernetes API with the kubernetes client. tests/fixtures/ops/pg_dumpall_sample.sql is
verbatim `pg_dumpall --clean --if-exists` output of PostgreSQL 15.18 (paperless and n8n databases).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.ops import postgres
from homelab.ops.postgres import ClusterJobs, JobScripts, LocalScripts
from tests.fakeapi import FakeApiServer
from tests.fakeapi.server import RequestRecord

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "fixtures" / "ops" / "pg_dumpall_sample.sql"
BACKUP_MANIFEST = REPO / "releases" / "postgres" / "manifests" / "backup.yaml"


# -- a throw-away PostgreSQL ---------------------------------------------------------------------------

def _server_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[dict[str, str]]:
    """PG* variables of a running throw-away cluster (trust auth, 127.0.0.1 only, fsync off)."""
    bindir = _server_bin()
    if bindir is None or not shutil.which("psql") or not shutil.which("pg_dumpall"):
        pytest.skip("PostgreSQL server binaries not installed (initdb/pg_ctl/psql/pg_dumpall): "
                    "apt-get install -y postgresql")
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="homelab-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres (or nobody) user
        user = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
        if user is None or not shutil.which("runuser"):
            pytest.skip("running as root without a postgres/nobody user and runuser to start PostgreSQL")
        shutil.chown(base, user)
        prefix = ["runuser", "-u", user, "--"]
    port = _free_port()
    data = base / "data"
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync",
                    "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                    f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres"}
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def psql(env: dict[str, str], sql: str, db: str = "postgres") -> str:
    proc = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db], input=sql, text=True,
                          capture_output=True, env={**os.environ, **env}, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


SEED = """
DROP DATABASE IF EXISTS paperless WITH (FORCE);
DROP DATABASE IF EXISTS n8n WITH (FORCE);
DROP DATABASE IF EXISTS "app-db" WITH (FORCE);
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paperless_user') THEN CREATE ROLE paperless_user LOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'n8n_user') THEN CREATE ROLE n8n_user LOGIN; END IF;
END $$;
CREATE DATABASE paperless OWNER paperless_user;
REVOKE ALL ON DATABASE paperless FROM PUBLIC;
CREATE DATABASE n8n OWNER n8n_user;
CREATE DATABASE "app-db";
COMMENT ON DATABASE "app-db" IS 'awkward name';
ALTER DATABASE "app-db" SET work_mem TO '8MB';
"""


@pytest.fixture
def lab_db(pg_server: dict[str, str]) -> dict[str, str]:
    """The lab's application databases with data (recreated for every test)."""
    psql(pg_server, SEED)
    psql(pg_server, """SET ROLE paperless_user;
        CREATE TABLE documents_document (id serial PRIMARY KEY, title text NOT NULL, content text);
        INSERT INTO documents_document (title, content)
          SELECT 'doc ' || g, repeat('word ', g % 50) || E'\\nwith a tab\\t and a backslash \\\\'
          FROM generate_series(1, 500) g;
        CREATE TABLE documents_tag (id serial PRIMARY KEY, name text UNIQUE);
        INSERT INTO documents_tag (name) VALUES ('finance'), ('home'), ('-- Database "n8n" dump');
        CREATE SCHEMA audit; CREATE TABLE audit.log (at timestamptz DEFAULT now(), what text);
        INSERT INTO audit.log (what) VALUES ('ALTER DATABASE paperless OWNER TO nobody;'), ('\\connect n8n');
        """, "paperless")
    psql(pg_server, """SET ROLE n8n_user;
        CREATE TABLE workflow_entity (id varchar(36) PRIMARY KEY, name varchar(128), active boolean);
        INSERT INTO workflow_entity SELECT 'wf-' || g, 'workflow ' || g, g % 2 = 0 FROM generate_series(1, 40) g;
        CREATE TABLE execution_entity (id serial PRIMARY KEY, workflow_id varchar(36), data jsonb)
          PARTITION BY HASH (id);
        CREATE TABLE execution_p0 PARTITION OF execution_entity FOR VALUES WITH (MODULUS 2, REMAINDER 0);
        CREATE TABLE execution_p1 PARTITION OF execution_entity FOR VALUES WITH (MODULUS 2, REMAINDER 1);
        INSERT INTO execution_entity (workflow_id, data) SELECT 'wf-1', '{"ok": true}' FROM generate_series(1, 25);
        """, "n8n")
    psql(pg_server, 'CREATE TABLE "Weird Table" (x int); INSERT INTO "Weird Table" VALUES (1), (2);', "app-db")
    return pg_server


def backup_script() -> str:
    """The CronJob's own backup script, writing to $BACKUP_DIR instead of the claim mounted at /backups."""
    docs = list(yaml.safe_load_all(BACKUP_MANIFEST.read_text()))
    cron = next(d for d in docs if d and d.get("kind") == "CronJob")
    script: str = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "cd /backups" in script
    return script.replace("cd /backups", 'cd "$BACKUP_DIR"')


def run_backup(env: dict[str, str], backup_dir: Path, stamp: str, bindir: Path) -> subprocess.CompletedProcess[str]:
    """Run the CronJob script; ``date`` answers ``stamp`` so retention can be tested without waiting."""
    return subprocess.run(["bash", "-c", backup_script()], capture_output=True, text=True, check=False,
                          env={**os.environ, **env, "BACKUP_DIR": str(backup_dir), "KEEP": "7", "FAKE_STAMP": stamp,
                               "PATH": f"{bindir}:{os.environ['PATH']}"})


@pytest.fixture
def fake_date(tmp_path: Path) -> Path:
    bindir = tmp_path / "shim-bin"
    bindir.mkdir()
    (bindir / "date").write_text('#!/bin/sh\n'
                                 'if [ -n "$FAKE_STAMP" ]; then echo "$FAKE_STAMP"; else exec /bin/date "$@"; fi\n')
    (bindir / "date").chmod(0o755)
    return bindir


@pytest.fixture
def dumped(lab_db: dict[str, str], tmp_path: Path, fake_date: Path) -> Path:
    """A backup volume with one dump of the lab databases, made by the CronJob's script."""
    backups = tmp_path / "backups"
    backups.mkdir()
    proc = run_backup(lab_db, backups, "20250101T030000Z", fake_date)
    assert proc.returncode == 0, proc.stderr
    return backups


def scripts(env: dict[str, str], backups: Path) -> LocalScripts:
    return LocalScripts(backups, env)


def databases(env: dict[str, str]) -> list[str]:
    return psql(env, "SELECT datname FROM pg_database ORDER BY 1").splitlines()


# -- the backup CronJob's script (Story 5.3) -----------------------------------------------------------

def test_backup_script_writes_verified_dumps_and_keeps_the_newest_seven(lab_db: dict[str, str], tmp_path: Path,
                                                                        fake_date: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    for day in range(1, 10):
        proc = run_backup(lab_db, backups, f"202501{day:02d}T030000Z", fake_date)
        assert proc.returncode == 0, proc.stderr
        assert f"wrote postgres-202501{day:02d}T030000Z.sql.gz" in proc.stdout
    names = sorted(p.name for p in backups.iterdir())
    assert names == [f"postgres-202501{d:02d}T030000Z.sql.gz" for d in range(3, 10)]  # 7 kept, no .partial
    check = postgres.verify_dump((backups / names[-1]).read_bytes(), names[-1])
    assert check.ok and check.kind == "cluster", check
    text = gzip.decompress((backups / names[-1]).read_bytes()).decode()
    assert 'CREATE DATABASE paperless' in text and "doc 500" in text


# -- verification on real gzip bytes -------------------------------------------------------------------

def _gz(text: bytes) -> bytes:
    return gzip.compress(text, 6)


def test_verify_dump_accepts_real_dumps() -> None:
    sample = SAMPLE.read_bytes()
    check = postgres.verify_dump(_gz(sample), "postgres-x.sql.gz")
    assert check.ok and check.kind == "cluster" and "complete PostgreSQL cluster dump" in check.message
    single = sample[sample.index(b'-- Database "n8n" dump'):]
    single = single[single.index(b"--\n-- PostgreSQL database dump\n"):single.index(b'-- Database "paperless"')]
    assert postgres.verify_dump(_gz(single), "n8n.sql.gz").kind == "database"
    assert postgres.verify_dump(_gz(b"\n\n" + sample)).ok  # leading blank lines are fine


@pytest.mark.parametrize("damage, expected", [
    (lambda b: b"", "is empty (0 bytes)"),
    (lambda b: _gz(b)[: len(_gz(b)) // 2], "not a valid gzip stream"),
    (lambda b: _gz(b)[:-8] + bytes(8), "not a valid gzip stream"),  # CRC and length zeroed
    (lambda b: b, "not a valid gzip stream"),  # plain SQL, never compressed
    (lambda b: _gz(b[: len(b) * 2 // 3]), "footer: the dump was cut short"),  # valid gzip of a cut dump
    (lambda b: _gz(b"CREATE TABLE t (x int);\n"), "does not start with a PostgreSQL dump header"),
    (lambda b: _gz(b""), "decompresses to nothing"),
])
def test_verify_dump_rejects_damage(damage: Any, expected: str) -> None:
    check = postgres.verify_dump(damage(SAMPLE.read_bytes()), "bad.sql.gz")
    assert not check.ok and expected in check.message, check


def test_a_corrupt_byte_in_the_middle_is_caught() -> None:
    data = bytearray(_gz(SAMPLE.read_bytes()))
    data[len(data) // 2] ^= 0xFF
    assert not postgres.verify_dump(bytes(data)).ok


def test_check_script_agrees_with_the_python_verification(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    runner = LocalScripts(backups, {})
    empty = postgres.parse_report(runner.run("check", postgres.CHECK_SCRIPT, {}, 60).output)
    assert empty.dump is None and empty.missing == "latest"
    good = backups / "postgres-20250101T030000Z.sql.gz"
    good.write_bytes(_gz(SAMPLE.read_bytes()))
    os.utime(good, (1_700_000_000, 1_700_000_000))
    report = postgres.parse_report(runner.run("check", postgres.CHECK_SCRIPT, {}, 60).output)
    sample = postgres.sample_from_report(report)
    assert sample is not None and report.complete
    assert (sample.name, sample.size, sample.mtime) == (good.name, good.stat().st_size, 1_700_000_000)
    assert postgres.verify_sample(sample) == postgres.verify_dump(good.read_bytes(), good.name)
    cut = backups / "postgres-20250102T030000Z.sql.gz"  # newer, and truncated
    cut.write_bytes(good.read_bytes()[:2000])
    report = postgres.parse_report(runner.run("check", postgres.CHECK_SCRIPT, {}, 60).output)
    assert report.dump is not None and report.dump[2] == cut.name and report.gzip_ok is False
    assert [f[2] for f in report.files] == [cut.name, good.name]
    named = postgres.parse_report(runner.run("check", postgres.CHECK_SCRIPT, {"DUMP": good.name}, 60).output)
    assert named.dump is not None and named.dump[2] == good.name and named.gzip_ok


def test_compare_counts() -> None:
    assert postgres.compare_counts({"public.a": 1}, {"public.a": 1}) == []
    assert postgres.compare_counts({"public.a": 1, "public.b": 2}, {"public.a": 3, "public.c": 0}) == [
        "public.a: 1 rows restored, 3 in the source",
        "public.b: in the dump (2 rows) but no longer in the source",
        "public.c: in the source (0 rows) but not in the dump",
    ]


# -- restore drill (Story 5.4) -------------------------------------------------------------------------

def test_drill_restores_compares_and_drops_the_scratch_databases(lab_db: dict[str, str], dumped: Path) -> None:
    before = databases(lab_db)
    settings_before = psql(lab_db, "SELECT datname, shobj_description(oid, 'pg_database'), datacl FROM pg_database "
                                   "ORDER BY 1")
    out = io.StringIO()
    result = postgres.pg_restore_drill(scripts(lab_db, dumped), out=out)
    text = out.getvalue()
    assert result.ok, text
    assert set(result.details["restore_seconds"]) == {"app-db", "n8n", "paperless"}
    assert all(s is not None and s > 0 for s in result.details["restore_seconds"].values())
    assert "paperless: row counts match the live database (3 table(s), 505 row(s))" in text
    assert "n8n: row counts match the live database (4 table(s), 90 row(s))" in text  # partitions counted
    assert "app-db: row counts match the live database (1 table(s), 2 row(s))" in text
    assert "measured restore time:" in text and "postgres-20250101T030000Z.sql.gz" in text
    assert databases(lab_db) == before  # every scratch database dropped
    # the live databases' comment, settings and privileges were not touched by the renamed statements
    assert psql(lab_db, "SELECT datname, shobj_description(oid, 'pg_database'), datacl FROM pg_database "
                        "ORDER BY 1") == settings_before


def test_drill_of_one_database_and_drift_since_the_dump(lab_db: dict[str, str], dumped: Path) -> None:
    psql(lab_db, "INSERT INTO workflow_entity VALUES ('wf-new', 'after the dump', true)", "n8n")
    result = postgres.pg_restore_drill(scripts(lab_db, dumped), databases=["n8n"], out=io.StringIO())
    assert not result.ok
    assert "public.workflow_entity: 40 rows restored, 41 in the source" in result.message
    assert "doit pg_backup" in result.message
    assert list(result.details["restore_seconds"]) == ["n8n"]
    assert not [d for d in databases(lab_db) if d.startswith("hl_drill")]


def test_drill_without_a_dump_or_with_a_broken_one(lab_db: dict[str, str], tmp_path: Path) -> None:
    backups = tmp_path / "empty"
    backups.mkdir()
    result = postgres.pg_restore_drill(scripts(lab_db, backups), out=io.StringIO())
    assert not result.ok and "no dump latest in" in result.message
    (backups / "postgres-20250101T030000Z.sql.gz").write_bytes(_gz(SAMPLE.read_bytes())[:500])
    result = postgres.pg_restore_drill(scripts(lab_db, backups), out=io.StringIO())
    assert not result.ok and "is not a valid gzip file" in result.message


def test_drill_that_fails_mid_restore_drops_its_scratch_database(lab_db: dict[str, str], dumped: Path) -> None:
    dump = next(dumped.iterdir())
    text = gzip.decompress(dump.read_bytes()).decode()
    marker = "CREATE TABLE public.workflow_entity ("
    dump.write_bytes(_gz(text.replace(marker, "SELECT no_such_function();\n" + marker).encode()))
    result = postgres.pg_restore_drill(scripts(lab_db, dumped), databases=["n8n"], out=io.StringIO())
    assert not result.ok and "no_such_function" in result.message
    assert not [d for d in databases(lab_db) if d.startswith("hl_drill")]


# -- restore (Story 5.4) ----------------------------------------------------------------------------------

def test_restore_brings_back_a_dropped_database(lab_db: dict[str, str], dumped: Path) -> None:
    psql(lab_db, "DROP DATABASE paperless WITH (FORCE)")  # "I intentionally drop the test database"
    out = io.StringIO()
    result = postgres.pg_restore(scripts(lab_db, dumped), "latest", "paperless", force=True, out=out)
    assert result.ok, out.getvalue()
    assert psql(lab_db, "SELECT count(*) FROM documents_document", "paperless") == "500"
    assert psql(lab_db, "SELECT name FROM documents_tag ORDER BY id", "paperless").splitlines()[-1] \
        == '-- Database "n8n" dump'  # data that looks like a section header is data
    assert psql(lab_db, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'paperless'") \
        == "paperless_user"
    assert "restore " in result.message and result.details["restore_seconds"] > 0
    assert not [d for d in databases(lab_db) if d.startswith("hl_restore")]


def test_restore_replaces_damaged_data_and_keeps_settings(lab_db: dict[str, str], dumped: Path) -> None:
    psql(lab_db, "DELETE FROM \"Weird Table\"; CREATE TABLE junk (x int);", "app-db")
    result = postgres.pg_restore(scripts(lab_db, dumped), "postgres-20250101T030000Z.sql.gz", "app-db", force=True,
                                 out=io.StringIO())
    assert result.ok, result.message
    assert psql(lab_db, 'SELECT count(*) FROM "Weird Table"', "app-db") == "2"
    assert psql(lab_db, "SELECT count(*) FROM pg_tables WHERE tablename = 'junk'", "app-db") == "0"
    assert psql(lab_db, "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'app-db'") \
        == "awkward name"


def test_a_failed_restore_leaves_the_database_as_it_was(lab_db: dict[str, str], dumped: Path) -> None:
    dump = next(dumped.iterdir())
    text = gzip.decompress(dump.read_bytes()).decode()
    marker = "CREATE TABLE public.documents_tag ("
    dump.write_bytes(_gz(text.replace(marker, "SELECT no_such_function();\n" + marker).encode()))
    psql(lab_db, "INSERT INTO documents_tag (name) VALUES ('written after the dump')", "paperless")
    result = postgres.pg_restore(scripts(lab_db, dumped), "latest", "paperless", force=True, out=io.StringIO())
    assert not result.ok and "no_such_function" in result.message
    assert "database paperless is unchanged" in result.message
    assert psql(lab_db, "SELECT count(*) FROM documents_tag", "paperless") == "4"
    assert not [d for d in databases(lab_db) if d.startswith("hl_restore")]


def test_restore_of_a_database_the_dump_does_not_have(lab_db: dict[str, str], dumped: Path) -> None:
    result = postgres.pg_restore(scripts(lab_db, dumped), "latest", "nextcloud", force=True, out=io.StringIO())
    assert not result.ok and "database nextcloud is not in postgres-20250101T030000Z.sql.gz" in result.message
    result = postgres.pg_restore(scripts(lab_db, dumped), "../etc/passwd", "paperless", force=True, out=io.StringIO())
    assert not result.ok and "must be a file name in the backup volume" in result.message


@pytest.mark.parametrize("stdin, reason", [
    (None, "no stdin to ask for confirmation"),
    (io.StringIO(""), "no confirmation on stdin (end of input)"),
    (io.StringIO("yes\n"), "the confirmation 'yes' is not the database name"),
])
def test_restore_asks_first_and_refuses_without_a_yes(stdin: io.StringIO | None, reason: str, tmp_path: Path) -> None:
    class Never:
        where = "nowhere"

        def attach(self, say: Any) -> None:
            pass

        def run(self, *args: Any) -> postgres.ScriptRun:
            raise AssertionError("nothing may run without confirmation")

    out = io.StringIO()
    result = postgres.pg_restore(Never(), "latest", "paperless", stdin=stdin, out=out)
    assert not result.ok
    assert reason in result.message and "pass --force" in result.message
    assert not postgres.pg_restore(Never(), "latest", "postgres", force=True, out=out).ok


def test_restore_after_typing_the_name(lab_db: dict[str, str], dumped: Path) -> None:
    psql(lab_db, "DELETE FROM workflow_entity", "n8n")
    out = io.StringIO()
    result = postgres.pg_restore(scripts(lab_db, dumped), "latest", "n8n", stdin=io.StringIO("n8n\n"), out=out)
    assert result.ok, out.getvalue()
    assert "Type the database name to confirm" in out.getvalue()
    assert psql(lab_db, "SELECT count(*) FROM workflow_entity", "n8n") == "40"


# -- in the cluster: Jobs against the FAKE API -------------------------------------------------------------

def _cronjob() -> dict[str, Any]:
    text = BACKUP_MANIFEST.read_text().replace("${ref:nfs-provisioner.storageclass}", "nfs-client")
    return next(d for d in yaml.safe_load_all(text) if d and d.get("kind") == "CronJob")


@pytest.fixture
def data_ns(fake_api: FakeApiServer) -> FakeApiServer:
    from kubernetes import client

    api = fake_api.api_client()
    client.CoreV1Api(api).create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "data"}})
    client.BatchV1Api(api).create_namespaced_cron_job("data", _cronjob())
    return fake_api


def jobs(kubeconfig: Path) -> ClusterJobs:
    return ClusterJobs(kubeconfig, "data", poll_seconds=0.05)


def serve_logs(api: FakeApiServer, job_prefix: str, output: str) -> None:
    """Answer the pod log requests of Jobs named ``job_prefix*`` with ``output``."""

    def hook(record: RequestRecord) -> tuple[int, Any] | None:
        if record.method == "GET" and record.path.startswith(f"/api/v1/namespaces/data/pods/{job_prefix}") \
                and record.path.endswith("/log"):
            return 200, output
        return None

    api.add_hook(hook)


@pytest.mark.fakeapi
def test_pg_backup_creates_the_job_from_the_cronjob_and_verifies_the_dump(data_ns: FakeApiServer,
                                                                          fake_kubeconfig: Path,
                                                                          tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "postgres-20250101T030000Z.sql.gz").write_bytes(_gz(SAMPLE.read_bytes()))  # written "now"
    out = io.StringIO()
    result = postgres.pg_backup(jobs(fake_kubeconfig), LocalScripts(backups, {}), out=out)
    assert result.ok, out.getvalue()
    job = data_ns.store.find("Job", result.details["job"], "data")
    assert job is not None
    cron = data_ns.store.find("CronJob", "postgres-backup", "data")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["uid"] == cron["metadata"]["uid"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == \
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "backup verified: postgres-20250101T030000Z.sql.gz" in result.message
    assert "1 dump(s) on the volume" in out.getvalue()


@pytest.mark.fakeapi
def test_pg_backup_verification_runs_as_a_job_next_to_the_volume(data_ns: FakeApiServer, fake_kubeconfig: Path,
                                                                 tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "postgres-20250101T030000Z.sql.gz").write_bytes(_gz(SAMPLE.read_bytes()))
    check_output = LocalScripts(backups, {}).run("check", postgres.CHECK_SCRIPT, {}, 60).output
    serve_logs(data_ns, "postgres-check-", check_output)
    created: list[dict[str, Any]] = []
    data_ns.add_hook(lambda r: created.append(r.json) if r.method == "POST" and r.path.endswith("/jobs") else None)
    result = postgres.pg_backup(jobs(fake_kubeconfig), out=io.StringIO())
    assert result.ok, result.message
    check_job = next(j for j in created if j["metadata"]["name"].startswith("postgres-check-"))
    spec = check_job["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert container["image"] == "docker.io/library/postgres:18.6-trixie"  # the server's major version
    assert container["command"] == ["/bin/bash", "-c"] and container["args"] == [postgres.CHECK_SCRIPT]
    password = next(e for e in container["env"] if e["name"] == "PGPASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "postgresql", "key": "postgres-password"}
    assert {"name": "backups", "mountPath": "/backups", "readOnly": True} in container["volumeMounts"]
    claim = next(v for v in pod["volumes"] if v["name"] == "backups")["persistentVolumeClaim"]
    assert claim == {"claimName": "postgres-backups", "readOnly": True}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert data_ns.store.find("Job", check_job["metadata"]["name"], "data") is None  # cleaned up after success


@pytest.mark.fakeapi
def test_pg_backup_job_that_fails(data_ns: FakeApiServer, fake_kubeconfig: Path, tmp_path: Path) -> None:
    data_ns.job_outcome("fail", name="postgres-backup-manual-*")
    result = postgres.pg_backup(jobs(fake_kubeconfig), LocalScripts(tmp_path, {}), out=io.StringIO())
    assert not result.ok
    assert result.message.startswith(f"pg_backup: Job data/{result.details['job']} failed: BackoffLimitExceeded")
    assert "last log lines: fake log of pod data/postgres-backup-manual-" in result.message
    assert f"kubectl -n data logs job/{result.details['job']}" in result.message


@pytest.mark.fakeapi
def test_pg_backup_times_out_and_finds_stale_dumps(data_ns: FakeApiServer, fake_kubeconfig: Path,
                                                   tmp_path: Path) -> None:
    data_ns.job_outcome("run", name="postgres-backup-manual-*")
    slow = postgres.pg_backup(jobs(fake_kubeconfig), LocalScripts(tmp_path, {}), out=io.StringIO(), timeout=0.5)
    assert not slow.ok and "timeout: still running after 0.5s" in slow.message
    data_ns.job_outcome("complete", name="postgres-backup-manual-*")
    old = tmp_path / "postgres-20240101T030000Z.sql.gz"
    old.write_bytes(_gz(SAMPLE.read_bytes()))
    os.utime(old, (1_704_078_000, 1_704_078_000))  # a year old: this backup wrote nothing new
    stale = postgres.pg_backup(jobs(fake_kubeconfig), LocalScripts(tmp_path, {}), out=io.StringIO())
    assert not stale.ok and "is older than this backup: the Job wrote no new dump" in stale.message


@pytest.mark.fakeapi
def test_missing_cronjob_and_failed_script_jobs(fake_api: FakeApiServer, data_ns: FakeApiServer,
                                                fake_kubeconfig: Path) -> None:
    missing = postgres.pg_backup(ClusterJobs(fake_kubeconfig, "elsewhere", poll_seconds=0.05), out=io.StringIO())
    assert not missing.ok and "CronJob elsewhere/postgres-backup" in missing.message
    assert "converge the postgres release first" in missing.message
    data_ns.job_outcome("fail", name="postgres-drill-*")
    serve_logs(data_ns, "postgres-drill-", "HOMELAB dump 10 0 postgres-x.sql.gz\npsql: error: connection refused\n")
    failed = postgres.pg_restore_drill(JobScripts(jobs(fake_kubeconfig)), out=io.StringIO())
    assert not failed.ok and "failed: BackoffLimitExceeded" in failed.message
    assert "psql: error: connection refused" in failed.message and "logs job/postgres-drill-" in failed.message


@pytest.mark.fakeapi
def test_drill_report_read_from_a_job_log(data_ns: FakeApiServer, fake_kubeconfig: Path, lab_db: dict[str, str],
                                          dumped: Path) -> None:
    """The drill's report travels through the pod log: the same parsing as a local run."""
    output = LocalScripts(dumped, lab_db).run("drill", postgres.DRILL_SCRIPT, {"DUMP": "latest"}, 300).output
    serve_logs(data_ns, "postgres-drill-", output)
    out = io.StringIO()
    result = postgres.pg_restore_drill(JobScripts(jobs(fake_kubeconfig)), out=out)
    assert result.ok, out.getvalue()
    assert set(result.details["restore_seconds"]) == {"app-db", "n8n", "paperless"}
    assert "created Job data/postgres-drill-" in out.getvalue()


def test_job_from_cronjob_is_what_kubectl_creates() -> None:
    cron = {**_cronjob(), "metadata": {**_cronjob()["metadata"], "uid": "u-1"}}
    job = postgres.job_from_cronjob(cron, "manual-backup")
    assert job["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob",
                                                   "name": "postgres-backup", "uid": "u-1", "controller": True}]
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"]
    # kubectl copies the jobTemplate's own metadata (none here); the pod template keeps its labels
    assert job["metadata"]["labels"] == (cron["spec"]["jobTemplate"].get("metadata") or {}).get("labels", {})
    assert json.dumps(job)  # serialisable as it is sent
    assert len(postgres.job_name("backup-manual")) <= 63


# -- engine wiring ---------------------------------------------------------------------------------------

@pytest.mark.fakeapi
def test_engine_wiring_on_the_real_releases(data_ns: FakeApiServer, fake_kubeconfig: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from homelab import paths, redact
    from homelab.project import Project
    from tests.helpers import make_tree

    tree = make_tree(tmp_path / "repo-copy", real_releases=True)
    for key, value in tree.env().items():
        if key.startswith("HOMELAB_"):
            monkeypatch.setenv(key, value)
    redact.clear()
    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok, [p.line() for p in project.problems]
    monkeypatch.setenv("HOMELAB_KUBECONFIG", str(tmp_path / "absent"))
    assert "no kubeconfig at" in postgres.run_pg_backup(project, out=io.StringIO()).message
    monkeypatch.setenv("HOMELAB_KUBECONFIG", str(fake_kubeconfig))
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "postgres-20250101T030000Z.sql.gz").write_bytes(_gz(SAMPLE.read_bytes()))
    serve_logs(data_ns, "postgres-check-", LocalScripts(backups, {}).run("check", postgres.CHECK_SCRIPT, {}, 60).output)
    out = io.StringIO()
    result = postgres.run_pg_backup(project, out=out)
    assert result.ok, out.getvalue()
    assert "created Job data/postgres-backup-manual-" in out.getvalue()
    refused = postgres.run_pg_restore(project, "latest", "paperless", out=io.StringIO(), stdin=io.StringIO(""))
    assert not refused.ok and "without confirmation" in refused.message
