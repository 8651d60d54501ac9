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
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from faco import artifacts
from faco.config import Study
from faco.stages import corrupt, train

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


def both(*setups: Setup) -> Setup:
    """Every one of `setups`, in order."""
    def setup(work: Path, arts: dict[str, Path]) -> None:
        for one in setups:
            one(work, arts)
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


def truncated_weights(work: Path, arts: dict[str, Path]) -> None:
    """A copy of a real model artifact whose weights file lost its second half."""
    shutil.copytree(arts["model"], work / "model")
    weights = work / "model" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def model_folder(files: dict[str, str | bytes]) -> Setup:
    """A folder given as a local base model, holding `files` (name -> content)."""
    def setup(work: Path, _: dict[str, Path]) -> None:
        (work / "base").mkdir()
        for name, data in files.items():
            (work / "base" / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


_HEADER = b'{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
ONE_TENSOR = struct.pack("<Q", len(_HEADER)) + _HEADER + bytes(4)  # a whole safetensors file


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
OPENAI = ["--set", "generate.backend=openai", "--set", "generate.model=gpt-4o-mini"]
LOCAL_BASE = ["--set", "train.model={source: local, name_or_path: base}"]

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
    Case("seed-negative", ["validate", "{smoke}", "--set", "train.seed=-1"], 3, "smoke.yaml: train.seed"),
    Case("seed-above-32-bits", ["validate", "{smoke}", "--set", "evaluate.seed=4294967296"], 3, "evaluate.seed"),
    Case("eval-batch-zero", ["validate", "{smoke}", "--set", "evaluate.batch_size=0"], 3,
         "evaluate.batch_size: a batch holds at least 1 item"),
    Case("tiny-heads-do-not-divide", ["validate", "{smoke}", "--set", "train.model.tiny.hidden_size=33"], 3,
         "train.model.tiny: hidden_size 33 must be 2 heads x an even head size"),
    Case("source-listed-twice", ["validate", "bad.yaml"], 3,
         "bad.yaml: ingest.sources: item 5 (openbookqa split 'train') repeats item 1",
         config("    - {name: mbpp, split: train}",
                "    - {name: mbpp, split: train}\n    - {name: openbookqa, split: train}")),
    Case("yaml-list-as-key", ["validate", "bad.yaml"], 3, "bad.yaml: line 2: a key must be a plain value, not a list",
         write("bad.yaml", "name: x\n? [a, b]\n: 1\n")),
    Case("yaml-mapping-as-key", ["validate", "bad.yaml"], 3, "bad.yaml: line 1: a key must be a plain value",
         write("bad.yaml", "{[1]: 2}\n")),
    Case("yaml-merge-of-a-scalar", ["validate", "bad.yaml"], 3, "bad.yaml: not valid YAML: line 1: expected a mapping",
         write("bad.yaml", "<<: 3\n")),
    # --- values that validate as YAML but training could not use: exit 3 before any work, naming the key ---
    Case("tracker-not-installed", ["validate", "{smoke}", "--set", "train.report_to=wandb"], 3,
         "train.report_to: 'wandb' is not installed here"),
    Case("tracker-unknown", ["validate", "{smoke}", "--set", "train.report_to=[nosuch]"], 3,
         "train.report_to: 'nosuch' is not a tracker transformers knows"),
    Case("optimizer-unknown", ["validate", "{smoke}", "--set", "train.optim=adam_typo"], 3,
         "train.optim: 'adam_typo' is not one transformers knows"),
    Case("optimizer-not-installed", ["validate", "{smoke}", "--set", "train.optim=adamw_bnb_8bit"], 3,
         "train.optim: 'adamw_bnb_8bit' cannot be built here"),
    Case("scheduler-unknown", ["validate", "{smoke}", "--set", "train.lr_scheduler_type=cosine_typo"], 3,
         "train.lr_scheduler_type: 'cosine_typo' is not one transformers knows"),
    Case("scheduler-needs-kwargs", ["validate", "{smoke}", "--set", "train.lr_scheduler_type=cosine_with_min_lr"], 3,
         "train.lr_scheduler_type: 'cosine_with_min_lr' cannot be built"),
    Case("trainer-args-need-eval", ["validate", "{smoke}", "--set", "train.trainer_args={eval_strategy: steps}"], 3,
         "train.trainer_args: the Trainer refuses them with faco's settings"),
    Case("lora-target-missing", ["validate", "{smoke}", "--set", "train.lora={target_modules: [qkv_proj]}"], 3,
         "train.lora.target_modules: NoMatchingPeftModuleError"),
    Case("model-folder-without-model", ["validate", "{smoke}", *LOCAL_BASE], 3,
         "train.model.name_or_path: base: holds no model (no config.json)", model_folder({"README": "notes"})),
    Case("model-folder-config-not-json", ["validate", "{smoke}", *LOCAL_BASE], 3,
         "train.model.name_or_path: base: its config does not load",
         model_folder({"config.json": "{", "model.safetensors": ONE_TENSOR, "tokenizer.json": "{}"})),
    Case("model-weights-not-safetensors", ["validate", "{smoke}", *LOCAL_BASE], 3,
         "train.model.name_or_path: base: model.safetensors: not a safetensors file",
         model_folder({"config.json": "{}", "model.safetensors": "these are no weights at all",
                       "tokenizer.json": "{}"})),
    Case("train-refuses-before-work", ["train", "{smoke}", "--splits", "{splits}", "--ratio", "0.0", "--out", "m",
                                       "--set", "train.report_to=wandb"], 3, "train.report_to: 'wandb'"),
    Case("study-refuses-before-work", ["study", "{smoke}", "--out", "st", "--set", "train.optim=adam_typo"], 3,
         "train.optim: 'adam_typo'"),
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
    Case("conala-not-an-array", ["ingest", "{smoke}", "--out", "src", "--set", "ingest.data_dir=mirror",
                                 "--set", "ingest.sources=[{name: conala, split: train}]"], 4,
         "conala-train.json: not a JSON array of rows", write("mirror/sources/conala/conala-train.json", '{"a": 1}')),
    Case("cache-not-sqlite", ["generate", "{smoke}", "--sources", "{ingest}", "--dry-run", *OPENAI,
                              "--set", "generate.cache_path=notes.txt"], 4,
         "notes.txt: generation cache: file is not a database", write("notes.txt", "my notes on caching\n" * 50)),
    Case("cache-is-a-folder", ["generate", "{smoke}", "--sources", "{ingest}", "--dry-run", *OPENAI,
                               "--set", "generate.cache_path=chains"], 4,
         "chains: is a folder, not a generation cache file", write("chains/keep.txt", "x")),
    Case("weights-truncated-unverified", ["evaluate", "{smoke}", "--model", "model", "--out", "e"], 4,
         "--model model: model/model: model.safetensors: truncated", truncated_weights, {"FACO_NO_VERIFY": "1"}),
    Case("start-weights-truncated-unverified", ["train", "{smoke}", "--splits", "{splits}", "--ratio", "0.0",
                                                "--start", "model", "--out", "m"], 4,
         "--start model: model/model: model.safetensors: truncated", truncated_weights, {"FACO_NO_VERIFY": "1"}),
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
    Case("verify-stray-dvc-lock-not-yaml", ["lineage", "verify", "pairs"], 5, "dvc.lock: not a DVC lock file",
         both(copied("pairs", lambda a: None), write("dvc.lock", "stages: [\n"))),
    Case("verify-stray-dvc-lock-wrong-shape", ["lineage", "verify", "pairs"], 5,
         "dvc.lock: not a DVC lock file (stage 'train': 'outs' is not a list of outputs)",
         both(copied("pairs", lambda a: None), write("dvc.lock", "stages:\n  train:\n    outs: 3\n"))),
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
    base = tmp_path_factory.mktemp("bad-inputs")
    splits = corrupt.run(smoke, smoke_pairs, base / "splits")
    data = smoke.model_dump(mode="json")
    data["train"].update(epochs=1, save_every_epoch=False)
    model = train.run(Study.model_validate(data), splits, 0.0, base / "model")
    return {"ingest": smoke_pairs.parent / "ingest", "pairs": smoke_pairs, "splits": splits, "model": model}


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
