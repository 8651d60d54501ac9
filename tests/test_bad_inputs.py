"""A corpus of bad inputs, each run through the installed `faco` executable in a subprocess.

Every case asserts the documented exit code, that stderr ends in one line naming the file, row or
key (no traceback), and that the folder it ran in is byte-for-byte as before: no half artifact,
no temporary folder, no lock, and every pre-existing file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from faco import artifacts
from faco.config import Study
from faco.stages import corrupt

FACO = str(Path(sys.executable).with_name("faco"))  # the console script installed in this venv
ROOT = Path(__file__).resolve().parents[1]
SMOKE = (ROOT / "configs" / "smoke.yaml").read_text()

Setup = Callable[[Path, dict[str, Path]], None]


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    where: str  # must appear in stderr's last line (the file, row or key)
    setup: Setup | None = None
    env: dict[str, str] = field(default_factory=dict)


def config(old: str, new: str, name: str = "bad.yaml") -> Setup:
    """Write the smoke config with `old` replaced by `new` (first occurrence)."""
    def setup(work: Path, _: dict[str, Path]) -> None:
        assert old in SMOKE, old
        (work / name).write_text(SMOKE.replace(old, new, 1), encoding="utf-8")
    return setup


def write(name: str, data: bytes | str) -> Setup:
    def setup(work: Path, _: dict[str, Path]) -> None:
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def user_folder(name: str) -> Setup:
    """A folder of the user's own files where an --out points."""
    def setup(work: Path, _: dict[str, Path]) -> None:
        (work / name / "notes").mkdir(parents=True)
        (work / name / "thesis.tex").write_text("my only copy")
        (work / name / "notes" / "a.txt").write_text("a")
    return setup


def copied(kind: str, edit: Callable[[Path], object]) -> Setup:
    """A copy of a real artifact under work/<kind>, then edited by hand."""
    def setup(work: Path, arts: dict[str, Path]) -> None:
        shutil.copytree(arts[kind], work / kind)
        edit(work / kind)
    return setup


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def edit_manifest(**fields: object) -> Callable[[Path], None]:
    """Set top-level fields of an artifact's manifest.json to values of the wrong type."""
    def edit(artifact: Path) -> None:
        data = json.loads((artifact / "manifest.json").read_text())
        (artifact / "manifest.json").write_text(json.dumps({**data, **fields}))
    return edit


def pairs_with_row(line: bytes, at: int = 2) -> Setup:
    """A well-formed pairs artifact (valid manifest) whose pairs.jsonl has `line` as row `at`."""
    def setup(work: Path, arts: dict[str, Path]) -> None:
        rows = (arts["pairs"] / "pairs.jsonl").read_bytes().splitlines(keepends=True)[:3]
        rows.insert(at - 1, line + b"\n")
        with artifacts.artifact_dir(work / "pairs", "pairs", [arts["ingest"]], "hand-made") as tmp:
            (tmp / "pairs.jsonl").write_bytes(b"".join(rows))
    return setup


def empty_splits(work: Path, _: dict[str, Path]) -> None:
    """A well-formed splits artifact whose one split has no rows."""
    with artifacts.artifact_dir(work / "splits", "splits", [], "hand-made", {"ratios": [0.0]}) as tmp:
        (tmp / "cr_0.0.jsonl").write_text("")


def _pair(**drop_or_set: object) -> bytes:
    row = json.loads(PAIR_ROW)
    for key, value in drop_or_set.items():
        if value is None:
            row.pop(key)
        else:
            row[key] = value
    return json.dumps(row).encode()


PAIR_ROW = json.dumps({
    "id": "x:1", "source": "openbookqa", "domain": "commonsense", "kind": "mc", "question": "Q?",
    "choices": ["a", "b"], "answer": "a", "answer_index": 0,
    "true": {"reasoning": "r", "answer": "a", "answer_index": 0},
    "false": {"reasoning": "r", "answer": "b", "answer_index": 1},
})

OBQA_TWO = "".join(
    json.dumps({"id": f"q{i}", "answerKey": "A", "question": {"stem": f"Question {i}?", "choices": [
        {"label": "A", "text": "yes"}, {"label": "B", "text": "no"}]}}) + "\n" for i in range(2)
)
OBQA_NO_KEY = "".join(
    json.dumps({"id": f"q{i}", "question": {"stem": f"Question {i}?", "choices": [
        {"label": "A", "text": "yes"}, {"label": "B", "text": "no"}]}}) + "\n" for i in range(3)
)
ONE_SOURCE = ["--set", "ingest.data_dir=mirror", "--set", "ingest.sources=[{name: openbookqa, split: train}]"]

CASES = [
    # --- config errors: exit 3, the message names file and key ---
    Case("epochs-zero", ["validate", "bad.yaml"], 3, "bad.yaml: train.epochs", config("epochs: 2", "epochs: 0")),
    Case("lr-inf", ["validate", "bad.yaml"], 3, "bad.yaml: train.learning_rate",
         config("learning_rate: 1.0e-3", "learning_rate: .inf")),
    Case("lr-nan", ["validate", "bad.yaml"], 3, "bad.yaml: train.learning_rate",
         config("learning_rate: 1.0e-3", "learning_rate: .nan")),
    Case("ratio-out-of-range", ["validate", "bad.yaml"], 3, "bad.yaml: corrupt.ratios: ratio must be in [0, 1]",
         config("0.75, 1.0]", "0.75, 1.5]")),
    Case("ratio-inf", ["validate", "bad.yaml"], 3, "bad.yaml: corrupt.ratios.0",
         config("ratios: [0.0,", "ratios: [-.inf,")),
    Case("ratios-duplicate", ["validate", "bad.yaml"], 3, "bad.yaml: corrupt.ratios",
         config("0.75, 1.0]", "0.75, 0.75]")),
    Case("unknown-key-in-file", ["validate", "bad.yaml"], 3, "bad.yaml: train.epoch: unknown key",
         config("  epochs: 2", "  epoch: 2")),
    Case("duplicate-key", ["validate", "bad.yaml"], 3, "bad.yaml: line",
         config("  epochs: 2", "  epochs: 2\n  epochs: 3")),
    Case("not-yaml", ["validate", "bad.yaml"], 3, "bad.yaml: not valid YAML", config("name: smoke", "name: [smoke")),
    Case("not-a-mapping", ["validate", "bad.yaml"], 3, "bad.yaml: a study config must be a mapping",
         write("bad.yaml", "- a\n- b\n")),
    Case("empty-file", ["validate", "bad.yaml"], 3, "bad.yaml", write("bad.yaml", "")),
    Case("not-utf8", ["validate", "bad.yaml"], 3, "bad.yaml: not UTF-8",
         write("bad.yaml", SMOKE.replace("Smoke corruption study", "Caf\udce9", 1).encode("utf-8", "surrogateescape"))),
    Case("no-such-config", ["validate", "missing.yaml"], 3, "missing.yaml: no such config file"),
    Case("config-is-a-folder", ["validate", "cfgdir"], 3, "cfgdir: no such config file", write("cfgdir/x", "")),
    Case("missing-section", ["validate", "bad.yaml"], 3, "bad.yaml: train",
         write("bad.yaml", SMOKE.split("\ntrain:")[0] + "\nevaluate: {benchmarks: [{name: arc_challenge}]}\n")),
    Case("unknown-source", ["validate", "bad.yaml"], 3, "bad.yaml: ingest.sources.0.name: unknown source",
         config("name: commonsense_qa", "name: nosuch")),
    Case("split-not-in-mirror", ["validate", "bad.yaml"], 3, "bad.yaml: ingest.sources.1.split: 'test'",
         config("{name: openbookqa, split: train}", "{name: openbookqa, split: test}")),
    Case("source-without-mirror", ["validate", "bad.yaml"], 3, "bad.yaml: ingest.sources.0.name: 'sciq'",
         config("{name: commonsense_qa, split: train}", "{name: sciq, split: train}")),
    Case("unknown-benchmark", ["validate", "bad.yaml"], 3, "bad.yaml: evaluate.benchmarks.0.name",
         config("name: arc_challenge", "name: nosuch")),
    Case("batch-not-multiple", ["validate", "bad.yaml"], 3, "bad.yaml: train: train.global_batch_size",
         config("global_batch_size: 8", "global_batch_size: 12")),
    Case("temperature", ["validate", "bad.yaml"], 3, "bad.yaml: generate.temperature",
         config("backend: template", "backend: template\n  temperature: 5")),
    Case("local-model-no-path", ["validate", "bad.yaml"], 3, "bad.yaml: train.model",
         config("source: tiny-random", "source: local")),
    # --- usage errors: exit 2, one line, no traceback ---
    Case("missing-argument", ["validate"], 2, "faco validate: Missing argument"),
    Case("unknown-option", ["validate", "{smoke}", "--bogus"], 2, "No such option: --bogus"),
    Case("unknown-command", ["nosuch"], 2, "No such command 'nosuch'"),
    Case("set-unknown-section", ["validate", "{smoke}", "--set", "nosuch.key=1"], 2, "--set nosuch.key: unknown key"),
    Case("set-through-a-value", ["validate", "{smoke}", "--set", "train.epochs.x=1"], 2,
         "--set train.epochs.x: train.epochs is a value"),
    Case("set-no-equals", ["validate", "{smoke}", "--set", "train.epochs"], 2, "--set 'train.epochs'"),
    Case("set-not-yaml", ["validate", "{smoke}", "--set", "train.epochs=[1"], 2, "--set 'train.epochs=[1'"),
    Case("set-list-index", ["validate", "{smoke}", "--set", "ingest.sources.7.split=x"], 2,
         "--set ingest.sources.7.split: ingest.sources has no item '7'"),
    Case("ratio-not-a-number", ["train", "{smoke}", "--splits", "{splits}", "--ratio", "half", "--out", "m"], 2,
         "faco train: Invalid value for '--ratio'"),
    Case("study-without-out", ["study", "{smoke}"], 2, "Missing option '--out'"),
    # --- bad inputs and outputs: exit 4, nothing replaced ---
    Case("out-is-a-file", ["ingest", "{smoke}", "--out", "results.csv"], 4, "results.csv: exists and is not a folder",
         write("results.csv", "a,b\n1,2\n")),
    Case("out-is-a-user-folder", ["ingest", "{smoke}", "--out", "mine"], 4, "mine: folder is not empty",
         user_folder("mine")),
    Case("generate-out-is-a-user-folder", ["generate", "{smoke}", "--sources", "{ingest}", "--out", "mine"], 4,
         "mine: folder is not empty", user_folder("mine")),
    Case("study-out-is-a-user-folder", ["study", "{smoke}", "--out", "mine"], 4, "mine: folder is not empty",
         user_folder("mine")),
    Case("study-out-is-a-file", ["study", "{smoke}", "--out", "r.txt"], 4, "r.txt: exists and is not a folder",
         write("r.txt", "x")),
    Case("study-out-is-an-artifact", ["study", "{smoke}", "--out", "pairs"], 4, "pairs: is a faco artifact",
         copied("pairs", lambda a: None)),
    Case("out-is-the-input", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "pairs"], 4,
         "pairs: overlaps the input pairs", copied("pairs", lambda a: None)),
    Case("out-inside-the-input", ["generate", "{smoke}", "--sources", "ingest", "--out", "ingest/pairs"], 4,
         "ingest/pairs: overlaps the input ingest", copied("ingest", lambda a: None)),
    Case("sources-not-an-artifact", ["generate", "{smoke}", "--sources", "nowhere", "--out", "p"], 4,
         "nowhere: not a faco artifact"),
    Case("sources-wrong-kind", ["generate", "{smoke}", "--sources", "{splits}", "--out", "p"], 4,
         "expected a 'sources' artifact, found 'splits'"),
    Case("pairs-row-not-json", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "s"], 4,
         "pairs.jsonl:2: not valid JSON", pairs_with_row(b'{"id": "cut", "question": ')),
    Case("pairs-row-missing-answer", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "s"], 4,
         "pairs.jsonl:2: answer: missing", pairs_with_row(_pair(answer=None))),
    Case("pairs-row-not-utf8", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "s"], 4,
         "pairs.jsonl:3: not UTF-8", pairs_with_row(_pair().replace(b"Q?", b"Q\xe9?"), at=3)),
    Case("pairs-row-unknown-field", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "s"], 4,
         "pairs.jsonl:2: colour: unknown field", pairs_with_row(_pair(colour="red"))),
    Case("pairs-row-wrong-domain", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "s"], 4,
         "pairs.jsonl:2: domain:", pairs_with_row(_pair(domain="astrology"))),
    Case("pairs-row-not-an-object", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "s"], 4,
         "pairs.jsonl:2: <row>:", pairs_with_row(b"[1, 2]")),
    Case("empty-source-split", ["ingest", "{smoke}", "--out", "src", *ONE_SOURCE], 4,
         "'openbookqa' split 'train' has no usable records (0 rows)",
         write("mirror/sources/openbookqa/train.jsonl", "")),
    Case("answer-field-missing", ["ingest", "{smoke}", "--out", "src", *ONE_SOURCE], 4,
         "all rejected: 3 x answer: missing", write("mirror/sources/openbookqa/train.jsonl", OBQA_NO_KEY)),
    Case("heldout-takes-every-record", ["ingest", "{smoke}", "--out", "src", *ONE_SOURCE, "--set", "ingest.heldout=2"],
         4, "ingest.heldout: 2 holds out every usable record",
         write("mirror/sources/openbookqa/train.jsonl", OBQA_TWO)),
    Case("empty-split", ["train", "{smoke}", "--splits", "splits", "--ratio", "0.0", "--out", "m"], 4,
         "splits/cr_0.0.jsonl: the split for ratio 0.0 is empty", empty_splits),
    Case("lr-diverges", ["train", "{smoke}", "--splits", "{splits}", "--ratio", "0.0", "--out", "m",
                         "--set", "train.learning_rate=1e30", "--set", "train.epochs=1"], 3,
         "train.learning_rate: training diverged at 1e+30"),
    Case("mirror-file-missing", ["ingest", "{smoke}", "--out", "src", *ONE_SOURCE], 4,
         "train.jsonl: mirror file missing", write("mirror/sources/README", "")),
    Case("seq-len-above-context", ["train", "{smoke}", "--splits", "{splits}", "--ratio", "0.0", "--out", "m",
                                   "--set", "train.max_seq_len=4096"], 3,
         "train.max_seq_len: 4096 is above the model's context of 2048 tokens"),
    Case("ratio-not-in-splits", ["train", "{smoke}", "--splits", "{splits}", "--ratio", "0.3", "--out", "m"], 4,
         "no split for ratio 0.3"),
    Case("analyze-no-evals", ["analyze", "{smoke}", "--evals", "empty", "--out", "a"], 4,
         "no faco artifacts under empty", write("empty/.keep", "")),
    Case("report-wrong-kind", ["report", "{smoke}", "--analysis", "{pairs}", "--out", "r"], 4,
         "expected a 'analysis' artifact, found 'pairs'"),
    # --- verification: exit 5, naming the file ---
    Case("verify-flipped-byte", ["lineage", "verify", "pairs"], 5, "pairs/pairs.jsonl",
         copied("pairs", lambda a: flip_byte(a / "pairs.jsonl"))),
    Case("verify-extra-file", ["lineage", "verify", "pairs"], 5, "pairs/extra.txt",
         copied("pairs", lambda a: (a / "extra.txt").write_text("x"))),
    Case("verify-deleted-file", ["lineage", "verify", "pairs"], 5, "pairs/stats.json",
         copied("pairs", lambda a: (a / "stats.json").unlink())),
    Case("verify-broken-manifest", ["lineage", "verify", "pairs"], 5, "pairs/manifest.json",
         copied("pairs", lambda a: (a / "manifest.json").write_text('{"kind": "pairs", "files": '))),
    Case("verify-manifest-parents-not-a-list", ["lineage", "verify", "pairs"], 5,
         "pairs/manifest.json: unreadable manifest ('parents' is not a list of objects)",
         copied("pairs", edit_manifest(parents=3))),
    Case("verify-manifest-hash-not-a-string", ["lineage", "verify", "pairs"], 5,
         "pairs/manifest.json: unreadable manifest ('files' is not an object of file hashes)",
         copied("pairs", edit_manifest(files={"pairs.jsonl": 5}))),
    Case("input-manifest-meta-not-an-object", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "s"], 5,
         "pairs/manifest.json: not a faco manifest ('meta' is not an object)", copied("pairs", edit_manifest(meta=[]))),
    Case("verify-missing-folder", ["lineage", "verify", "gone"], 5, "gone: not a faco artifact"),
    Case("input-tampered", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "s"], 5, "pairs/pairs.jsonl",
         copied("pairs", lambda a: flip_byte(a / "pairs.jsonl"))),
    Case("input-manifest-broken", ["corrupt", "{smoke}", "--pairs", "pairs", "--out", "s"], 5, "pairs/manifest.json",
         copied("pairs", lambda a: (a / "manifest.json").write_text("not json"))),
]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its sha256 (folders as 'dir'): what a failed command must not change."""
    return {
        p.relative_to(root).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def arts(smoke: Study, smoke_pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real smoke artifacts (ingest, pairs, splits), made once and only read by the cases."""
    splits = corrupt.run(smoke, smoke_pairs, tmp_path_factory.mktemp("bad-inputs") / "splits")
    return {"ingest": smoke_pairs.parent / "ingest", "pairs": smoke_pairs, "splits": splits}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(case: Case, arts: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    if case.setup:
        case.setup(work, arts)
    before = snapshot(work)
    names = {"smoke": str(ROOT / "configs" / "smoke.yaml"), **{k: str(v) for k, v in arts.items()}}
    argv = [a.format(**names) if a.startswith("{") else a for a in case.args]
    env = {**os.environ, "FACO_CACHE_DIR": str(tmp_path / "cache"), **case.env}
    env.pop("FACO_DEBUG", None)
    proc = subprocess.run([FACO, *argv], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == case.code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert lines and lines[-1].startswith("error: "), proc.stderr[-2000:]
    assert case.where in lines[-1], lines[-1]
    assert snapshot(work) == before
