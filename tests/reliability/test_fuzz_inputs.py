"""Property-based fuzzing of the operator's input files: whatever is in hosts/sandbox.yaml and a release's
files, ``Project.load`` reports problems as ``file: field: message`` lines and never raises, and doit with
such input refuses to act (exit 1, no traceback, no host contacted, no stamp written).

(a) random mutations of the valid inventory and a valid release (dropped keys, unknown keys, swapped types,
random strings/ints/None/lists, duplicated hosts, bad IPs, odd unicode, binary bytes, truncated text) and
(b) arbitrary YAML and text. Runs in-process on one tmp tree; bounded by ``max_examples``.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from homelab import paths, redact
from homelab import plan as plan_mod
from homelab.project import Project
from tests.helpers import FIXTURES, REPO, Tree, make_tree

LINE = re.compile(r"(warning: )?[^:\n]+: [^:\n]+: .+")

INVENTORY = "hosts/sandbox.yaml"
RELEASE = "releases/database/release.yaml"
VALUES = "releases/database/values.yaml"
MANIFEST = "releases/webapp/manifests/ingressroute.yaml"
TARGETS = (INVENTORY, RELEASE, VALUES, MANIFEST)

BASE_TEXT = {INVENTORY: (REPO / INVENTORY).read_text(encoding="utf-8")}
BASE_TEXT.update({rel: (FIXTURES / "base" / rel).read_text(encoding="utf-8") for rel in TARGETS[1:]})

# strings that have broken (or nearly broken) parsers and validators before
NASTY = [
    "", " ", "\t", "\n", "a\n", "10.77.0.10\n", "sbx-master\n", "999.1.1.1", "10.77.0", "10.77.0.10/24", "::1",
    "10.77.0.256", "0.0.0.0", "255.255.255.255", "10.77.0.0/33", "10.77.0.1/24", "-1", "1e400", "0x1F", "NaN",
    "~", "null", "yes", "no", "on", "2024-01-01", "12:30:00", "a: b", "- x", "x:y", "[0]", "a.b", "{}", "[]",
    "${secret:}", "${secret:k3s.token}", "${secret:brand.new}", "${ref:database.host}", "${ref:nope.x}",
    "${ref:database}", "${inv:}", "${inv:nfs.server}", "${inv:no.such.key}", "${bogus:x}", "${secret:a}${ref:b.c}",
    "latest", "repo/image", "repo/image:latest", "é", "\u202e\u2066evil", "\ufeffbom", "\u0000", "\x7f", "\U0001f600",
    "ａｂｃ", "\u00a0", "sbx-worker-01", "server", "agent", "gpu", "gaming", "storage", "database", "k3s", "nfs",
    "charts/missing", "oci://x/y", "https://", "1.2", "v1.2.3", "1.2.*", ">=1.0.0", "x" * 300,
]
text = st.text(max_size=20)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), text, st.sampled_from(NASTY))
keys = st.one_of(text, st.sampled_from(NASTY), st.integers(-3, 3), st.booleans(), st.none(),
                 st.sampled_from(["name", "address", "roles", "gpu", "image", "tag", "repository", "metadata",
                                  "namespace", "hosts", "needs", "exports", "values", "chart", "version"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                      max_leaves=6)
# YAML fragments a serializer never writes but an operator might: tags, anchors, dates, odd indentation
RAW_LINES = ["when: 2024-01-01", "bin: !!binary aGVsbG8=", "s: !!set {a, b}", "o: !!omap [{a: 1}]",
             "p: !!python/object:os.system x", "ref: *nope", "a: &x [1]\nb: *x", "? [a, b]\n: c", "? {a: 1}\n: c",
             "1: int key", "true: bool key", "~: null key", "1.5: float key", "2024-01-01: date key",
             "  bad: indent", "\tx: tab", "key: 'unterminated", "- list item", "dup: 1\ndup: 2", "%YAML 1.1",
             "---", "...", "!!str", "x: !!int nope", "x: !!float nope", "x: !!bool nope", "x: !!null nope",
             "x: !!timestamp 2024-13-45", "<<: {a: 1}", "<<: *nope", "x: |\n  block", "x: >-\n folded"]


# -- mutations of a parsed document ----------------------------------------------------------------------

def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_document(draw: st.DrawFn, base: Any) -> Any:
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        all_paths = list(_paths(doc))
        op = draw(st.sampled_from(["drop", "add", "replace", "replace", "duplicate", "bad-ip", "nasty"]))
        # bad IPs and nasty strings go where strings are (addresses, names, versions) most of the time
        strings = [p for p in all_paths if p and isinstance(_get(doc, p), str)]
        ips = [p for p in strings if re.match(r"\d+\.\d+\.", _get(doc, p))]
        pool = {"bad-ip": ips, "nasty": strings}.get(op) or all_paths
        path = draw(st.sampled_from(pool if draw(st.booleans()) or op not in ("bad-ip", "nasty") else all_paths))
        if not path:
            if op in ("replace", "nasty"):
                doc = draw(values)
            elif isinstance(doc, dict):
                doc[draw(keys)] = draw(values)
            continue
        parent, last = _get(doc, path[:-1]), path[-1]
        if op == "drop":
            del parent[last]
        elif op == "add":
            target = _get(doc, path)
            if isinstance(target, dict):
                target[draw(keys)] = draw(values)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(values))
            else:
                parent[last] = draw(values)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))  # e.g. a second copy of a host
        elif op == "bad-ip":
            parent[last] = draw(st.sampled_from(["999.1.1.1", "10.77.0", "::1", "10.77.0.10/24", "10.77.0.10\n",
                                                 "10.77.0.1", "10.77.0.200", "1.2.3.4", "", "10.77.0.256"]))
        elif op == "nasty":
            parent[last] = draw(st.sampled_from(NASTY))
        else:
            parent[last] = draw(values)
    return doc


@st.composite
def damaged_text(draw: st.DrawFn, text_in: str) -> bytes:
    """Text-level damage a serializer never produces: truncation, inserted lines, bytes, a BOM."""
    data = text_in.encode("utf-8")
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["truncate", "raw-line", "bytes", "bom", "crlf", "tab"]))
        lines = data.split(b"\n")
        at = draw(st.integers(0, len(lines)))
        if op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif op == "raw-line":
            indent = draw(st.sampled_from([b"", b"  ", b"    "]))
            lines.insert(at, indent + draw(st.sampled_from(RAW_LINES)).encode())
            data = b"\n".join(lines)
        elif op == "bytes":
            pos = draw(st.integers(0, len(data)))
            data = data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]
        elif op == "bom":
            data = b"\xef\xbb\xbf" + data
        elif op == "crlf":
            data = data.replace(b"\n", b"\r\n")
        else:
            data = data.replace(b"  ", b"\t", 1)
    return data


def _dump(doc: Any, manifest: bool) -> str:
    try:
        if manifest and isinstance(doc, list):
            return yaml.safe_dump_all(doc, allow_unicode=True, sort_keys=False)
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError, TypeError):
        return repr(doc)  # the serializer refused: the repr is arbitrary text, which is fine input too


@st.composite
def mutated_file(draw: st.DrawFn, targets: tuple[str, ...] = TARGETS) -> tuple[str, bytes]:
    rel = draw(st.sampled_from(targets))
    base = BASE_TEXT[rel]
    if rel == MANIFEST:
        doc = draw(mutated_document([yaml.safe_load(base)]))
    else:
        doc = draw(mutated_document(yaml.safe_load(base)))
    return rel, draw(damaged_text(_dump(doc, rel == MANIFEST)))


@st.composite
def arbitrary_file(draw: st.DrawFn) -> tuple[str, bytes]:
    rel = draw(st.sampled_from(TARGETS))
    kind = draw(st.sampled_from(["text", "binary", "yaml", "raw-yaml"]))
    if kind == "text":
        data = draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    elif kind == "binary":
        data = draw(st.binary(max_size=200))
    elif kind == "yaml":
        data = _dump(draw(values), False).encode("utf-8", "surrogatepass")
    else:
        data = "\n".join(draw(st.lists(st.sampled_from(RAW_LINES), min_size=1, max_size=5))).encode()
    return rel, data


# -- the tree the examples are written into --------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    tree = make_tree(tmp_path_factory.mktemp("fuzz"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in tree.env().items():
            if key.startswith("HOMELAB_"):
                mp.setenv(key, value)
        mp.delenv("HOMELAB_BUILD_DIR", raising=False)
        redact.clear()
        project = Project.load(paths.layout("sandbox", tree.root))  # generates the identity and secrets
        assert project.ok, [p.line() for p in project.problems]
        yield tree
    redact.clear()


@contextmanager
def _laid_over(tree: Tree, files: dict[str, bytes]) -> Iterator[Project]:
    """Project.load with ``files`` laid over the valid tree; the tree is restored afterwards."""
    secrets_file = tree.root / "secrets" / "sandbox.age"
    saved_secrets = secrets_file.read_bytes()
    try:
        for rel, data in files.items():
            (tree.root / rel).write_bytes(data)
        shutil.rmtree(tree.root / "build", ignore_errors=True)  # never the cached fast path
        yield Project.load(paths.layout("sandbox", tree.root))
    finally:
        for rel in files:
            (tree.root / rel).write_text(BASE_TEXT[rel], encoding="utf-8")
        secrets_file.write_bytes(saved_secrets)


def _load_with(tree: Tree, files: dict[str, bytes]) -> Project:
    with _laid_over(tree, files) as project:
        return project


def _assert_problem_lines(project: Project) -> None:
    event("valid" if project.ok else "schema/YAML problem" if project.inventory is None or any(
        "malformed YAML" in p.message or "expected" in p.message for p in project.problems) else "rule problem")
    for problem in project.problems:
        line = problem.line()
        assert LINE.fullmatch(line), f"not a `file: field: message` line: {line!r}"


FUZZ = settings(max_examples=int(os.environ.get("HOMELAB_FUZZ_EXAMPLES", "250")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(change=mutated_file())
def test_mutated_inputs_load_as_problem_lines(fuzz_tree: Tree, change: tuple[str, bytes]) -> None:
    with _laid_over(fuzz_tree, dict([change])) as project:
        _assert_problem_lines(project)
        if project.ok:
            # input that passes every check must also get through the graph, the digests and the plan
            lines = plan_mod.plan_lines(project)
            assert lines[-1].startswith("plan: ")


@FUZZ
@given(change=arbitrary_file())
def test_arbitrary_files_load_as_problem_lines(fuzz_tree: Tree, change: tuple[str, bytes]) -> None:
    project = _load_with(fuzz_tree, dict([change]))
    _assert_problem_lines(project)
    if change[0] in (INVENTORY, RELEASE):
        assert not project.ok  # noise never forms a valid inventory or release.yaml: the checks looked at it


@settings(FUZZ, max_examples=40)
@given(inventory=mutated_file((INVENTORY,)), release=mutated_file(TARGETS[1:]))
def test_several_broken_files_at_once(fuzz_tree: Tree, inventory: tuple[str, bytes],
                                      release: tuple[str, bytes]) -> None:
    project = _load_with(fuzz_tree, dict([inventory, release]))
    _assert_problem_lines(project)


# -- doit with generated bad input: refuses, contacts nothing, writes no stamp ---------------------------------

@settings(FUZZ, max_examples=int(os.environ.get("HOMELAB_FUZZ_DOIT_EXAMPLES", "6")))
@given(change=st.one_of(mutated_file(), arbitrary_file()))
def test_doit_refuses_generated_bad_input(fuzz_tree: Tree, change: tuple[str, bytes]) -> None:
    project = _load_with(fuzz_tree, dict([change]))
    assume(not project.ok)
    rel, data = change
    with tempfile.TemporaryDirectory(prefix="homelab-fuzz-doit-") as tmp:
        tree = make_tree(Path(tmp))
        (tree.root / rel).write_bytes(data)
        log = Path(tmp) / "hostrun.log"
        for args in (("check",), ()):
            run = tree.doit(*args, FAKE_HOSTRUN_LOG=str(log))
            output = run.stdout + run.stderr
            assert run.returncode == 1, (args, output[-3000:])
            assert "Traceback" not in output, output[-3000:]
            assert "problem(s)" in output
            for line in run.stderr.splitlines():  # what the operator reads: problem lines, nothing else
                assert LINE.fullmatch(line), (args, line)
        assert not log.exists(), log.read_text()
        stamps = tree.build / "stamps"
        assert not stamps.exists() or not any(stamps.iterdir())
        event(f"doit refused: {rel}")
