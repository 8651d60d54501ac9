"""The bad-input contract, grown by generation: hypothesis mutates configs and mirror rows.

In-process (thousands of cases per run): `faco.config.parse_config`, what every command runs first,
on mutated configs and `--set` overrides; `faco.stages.ingest.load_source`, what `faco ingest` runs on
every row, on mutated rows of every mirrored source. Each either succeeds or fails with the one-line
error of its documented kind; a row becomes a record or a reject naming `file:line` and its field.

Through the installed `faco` executable (tens of cases): `faco validate` on mutated configs and
`faco ingest` on mutated mirror files: a documented exit code, stderr ending in one `error:` line,
and nothing half-written (a failed run changes nothing; a finished one leaves a verified artifact).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faco import artifacts
from faco.config import Study, parse_config
from faco.errors import EXIT_CONFIG, EXIT_INPUT, EXIT_OK, EXIT_USAGE, ConfigError, UsageError
from faco.records import RejectRecord, SourceRecord, read_jsonl
from faco.sources.mirror import MIRROR_DIRS, MIRROR_FILES
from faco.stages import ingest

ROOT = Path(__file__).resolve().parents[1]
FACO = str(Path(sys.executable).with_name("faco"))
SMOKE = (ROOT / "configs" / "smoke.yaml").read_text()
BASE = yaml.safe_load(SMOKE)
MANY = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))

# -- values and mutations ----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "0", "-1", "1e999", "nan", "auto", "none", "train", "\ud800", "x" * 300]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path inside a parsed YAML/JSON value."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def mutate(data: Any, draw: st.DrawFn) -> Any:
    """`data` with one to three random edits: a value replaced, a key removed or added."""
    data = json.loads(json.dumps(data))
    for _ in range(draw(st.integers(1, 3))):
        found = list(paths(data))
        if not found:
            return draw(values)
        path = draw(st.sampled_from(found))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if op == "set":
            parent[path[-1]] = draw(values)
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        else:
            parent.append(draw(values))
    return data


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """A study config as YAML: the smoke config mutated, or its text cut, spliced or garbled."""
    kind = draw(st.sampled_from(["tree", "tree", "text"]))
    if kind == "tree":
        return yaml.safe_dump(mutate(BASE, draw), allow_unicode=draw(st.booleans()))
    cut = draw(st.integers(0, len(SMOKE)))
    insert = draw(st.sampled_from(["", ":", "- ", "? [a]\n: 1\n", "<<: 3\n", "&a x", "*b", "\t", "{", "]",
                                  "!!python/object:os.system x", "\n  epochs: 2\n", "\x00", "\ufeff"]))
    return SMOKE[:cut] + insert + SMOKE[cut + draw(st.integers(0, 40)):]


overrides = st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(
        ["train.epochs", "train.seed", "train.model.tiny", "corrupt.ratios", "ingest.sources.0", "ingest.sources.9",
         "evaluate.batch_size", "train.trainer_args", "nosuch.key", "train.epochs.x", "", "a..b", "train"]),
              st.sampled_from(["1", "-1", "[1", "{a: 1}", "null", ".nan", "1e999", "[0, 1]", "", "x: y: z"])),
    st.text(max_size=20)), max_size=2)


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message and "Traceback" not in message


@settings(MANY, max_examples=1500)
@given(text=config_texts(), sets=overrides)
def test_any_config_loads_or_is_one_config_or_usage_error(text: str, sets: list[str]) -> None:
    try:
        study = parse_config(text, "h.yaml", sets)
    except ConfigError as e:
        assert one_line(str(e)) and str(e).startswith("h.yaml: "), str(e)
    except UsageError as e:
        assert one_line(str(e)) and str(e).startswith("--set "), str(e)
    else:
        assert isinstance(study, Study)
        assert parse_config(study.to_yaml(), "again.yaml") == study  # what loads, dumps and loads the same
        study.config_hash()


# -- mirror rows ---------------------------------------------------------------------------------------

MIRRORED = sorted((s, split) for s, files in MIRROR_FILES.items() for split in files
                  if not (s == "mbpp" and split != "train"))


def _base_rows(source: str, split: str) -> list[dict[str, Any]]:
    path = ROOT / "data" / "sources" / MIRROR_DIRS.get(source, source) / MIRROR_FILES[source][split]
    if source == "conala":
        return list(json.loads(path.read_text())[:3])
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return list(itertools.islice((r for r in rows if source != "mbpp" or 601 <= r["task_id"] <= 974), 3))


@st.composite
def hostile_row(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """One mirror row: `base` mutated as JSON, or its bytes garbled (not UTF-8, cut, not an object)."""
    kind = draw(st.sampled_from(["json", "json", "json", "bytes", "other"]))
    if kind == "other":
        return draw(st.sampled_from([b"[1, 2]", b'"text"', b"null", b"42", b"NaN", b"{}", b'{"a": {"b": [}',
                                     b'{"question": "\\ud800"}', b"\xff\xfe{}", b"{" * 2000, b"[" * 100_000]))
    text = json.dumps(mutate(base, draw) if kind == "json" else base, ensure_ascii=draw(st.booleans()))
    data = text.encode("utf-8", errors="surrogatepass")
    if kind == "bytes":
        at = draw(st.integers(0, len(data)))
        garble = draw(st.sampled_from([b"\xff", b"\xc3", b"\xe9", b"\x00", b"", b"\xed\xa0\x80", b"\n"]))
        data = data[:at] + garble + data[at + draw(st.integers(0, 3)):]
    return data


def _mirror_file(source: str, split: str, rows: list[bytes], root: Path) -> Path:
    path = root / "sources" / MIRROR_DIRS.get(source, source) / MIRROR_FILES[source][split]
    path.parent.mkdir(parents=True, exist_ok=True)
    body = (b"[\n" + b",\n".join(rows) + b"\n]\n") if source == "conala" else b"".join(r + b"\n" for r in rows)
    path.write_bytes(body)
    return path


def _study(source: str, split: str, data_dir: Path) -> Study:
    cfg = {"name": "h", "ingest": {"data_dir": str(data_dir), "sources": [{"name": source, "split": split}]},
           "corrupt": {"ratios": [0.0]}, "train": {"model": {"source": "tiny-random"}},
           "evaluate": {"benchmarks": [{"name": "piqa"}]}}
    return parse_config(json.dumps(cfg))


@pytest.mark.parametrize(("source", "split"), MIRRORED)
def test_every_mirror_row_is_a_record_or_a_reject_naming_line_and_field(source: str, split: str) -> None:
    base = _base_rows(source, split)
    root = Path(tempfile.mkdtemp(prefix="faco-rows-"))
    study = _study(source, split, root)
    name = MIRROR_FILES[source][split]

    @settings(MANY, max_examples=250)
    @given(row=hostile_row(base[0]), at=st.integers(0, 2))
    def check(row: bytes, at: int) -> None:
        rows = [json.dumps(r).encode() for r in base[1:3]]
        rows.insert(at, row)
        _mirror_file(source, split, rows, root)
        records, rejects = ingest.load_source(study, study.ingest.sources[0])
        # a row cut by a newline is two; in a JSON array, garbage after an item is a reject of its own
        assert len(records) + len(rejects) <= len(rows) + row.count(b"\n") + (source == "conala")
        assert records or source == "conala"  # a JSON array cut short loses the items after the cut
        for rej in rejects:
            assert re.fullmatch(rf"{re.escape(name)}:\d+", rej.row), rej.row
            assert one_line(rej.reason), rej.reason
        for rec in records:  # whatever became a record can be written and read back
            assert SourceRecord.model_validate_json(rec.model_dump_json()) == rec

    try:
        check()
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)


# -- through the executable ----------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def _faco(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACO_CACHE_DIR": str(cwd / ".cache")}
    env.pop("FACO_DEBUG", None)
    return subprocess.run([FACO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[-1]


@settings(MANY, max_examples=10)
@given(text=config_texts())
def test_faco_validate_on_any_config_keeps_the_contract(text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="faco-validate-") as tmp:
        work = Path(tmp)
        (work / "h.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        before = _snapshot(work)
        proc = _faco(["validate", "h.yaml"], work)
        assert proc.returncode in (EXIT_OK, EXIT_USAGE, EXIT_CONFIG), proc.stderr[-2000:]
        if proc.returncode == EXIT_OK:
            assert proc.stdout.startswith("h.yaml: ok (study ")
        else:
            assert "h.yaml" in _one_error_line(proc)
        assert {k: v for k, v in _snapshot(work).items() if not k.startswith(".cache")} == before


@settings(MANY, max_examples=10)
@given(rows=st.lists(hostile_row(_base_rows("openbookqa", "train")[0]), min_size=1, max_size=3))
def test_faco_ingest_on_any_mirror_file_keeps_the_contract(rows: list[bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="faco-ingest-") as tmp:
        work = Path(tmp)
        _mirror_file("openbookqa", "train", rows, work / "mirror")
        before = _snapshot(work)
        proc = _faco(["ingest", str(ROOT / "configs" / "smoke.yaml"), "--out", "src", "--set", "ingest.data_dir=mirror",
                      "--set", "ingest.sources=[{name: openbookqa, split: train}]"], work)
        assert proc.returncode in (EXIT_OK, EXIT_INPUT), proc.stderr[-2000:]
        if proc.returncode == EXIT_INPUT:
            assert "openbookqa" in _one_error_line(proc)
            assert {k: v for k, v in _snapshot(work).items() if not k.startswith(".cache")} == before
        else:
            assert artifacts.verify(work / "src") == []
            kept = list(read_jsonl(work / "src" / "sources.jsonl", SourceRecord))
            held = list(read_jsonl(work / "src" / "heldout.jsonl", SourceRecord))
            rejected = list(read_jsonl(work / "src" / "rejects.jsonl", RejectRecord))
            assert len(kept) + len(held) + len(rejected) == sum(1 for r in rows if r.strip())
