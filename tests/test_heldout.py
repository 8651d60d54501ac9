"""Benchmark `heldout`: the ingest artifact's held-out questions in the training format, through real lm-eval."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from faco import artifact_kinds, artifacts
from faco.config import ModelSpec, Study, load_config
from faco.errors import ConfigError
from faco.evaluation import heldout, trained
from faco.paths import repo_root
from faco.records import PairRecord, Response, SourceRecord, write_jsonl
from faco.stages import corrupt, evaluate
from faco.training.data import prompt_text
from faco.training.models import tiny_model

ROOT = repo_root()
assert ROOT is not None
OPTIONS = [["red", "green", "blue", "white"], ["yes", "no"], ["north", "south", "east"]]


def _records() -> list[SourceRecord]:
    recs = []
    for s, source in enumerate(["alpha", "beta"]):
        for i in range(3 + s):
            choices = OPTIONS[(i + s) % len(OPTIONS)]
            gold = (i * 7 + s) % len(choices)
            recs.append(SourceRecord(id=f"{source}-{i}", source=source, domain="knowledge", kind="mc",
                                     question=f"Which one is number {i} of {source}?", choices=choices,
                                     answer=choices[gold], answer_index=gold))
    recs.append(SourceRecord(id="code-0", source="alpha", domain="programming", kind="code",
                             question="Write f.", answer="def f(): pass"))
    return recs


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def lineage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(ingest artifact with a heldout.jsonl, model artifact whose parent chain leads to it)."""
    root = tmp_path_factory.mktemp("heldout")
    with artifacts.artifact_dir(root / "ingest", artifact_kinds.SOURCES, [], "x", {}) as tmp:
        write_jsonl(tmp / "sources.jsonl", [])
        write_jsonl(tmp / heldout.FILE, _records())
    with artifacts.artifact_dir(root / "splits", artifact_kinds.SPLITS, [root / "ingest"], "x", {}) as tmp:
        (tmp / "x.txt").write_text("x")
    spec = ModelSpec.model_validate({"source": "tiny-random", "tiny": {"hidden_size": 32, "layers": 1, "heads": 2,
                                                                       "vocab_size": 300}})
    texts = [f"{r.question} Options: Answer: {' '.join(r.choices)}" for r in _records()] * 3
    with artifacts.artifact_dir(root / "cr_0.0", artifact_kinds.MODEL, [root / "splits"], "x", {"ratio": 0.0}) as tmp:
        model, tok = tiny_model(spec, texts, seed=0)
        model.save_pretrained(tmp / "model")
        tok.save_pretrained(tmp / "model")
    return root / "ingest", root / "cr_0.0"


def _study(**spec: object) -> Study:
    study = load_config(ROOT / "configs" / "smoke.yaml")
    cfg = study.evaluate.model_validate({"benchmarks": [{"name": "heldout", "max_gen_toks": 6, **spec}],
                                         "batch_size": 4, "probes": []})
    return study.model_copy(update={"evaluate": cfg})


def test_prompt_and_answer_line_are_the_training_ones(lineage: tuple[Path, Path]) -> None:
    """The document's prompt is what training encodes before the response; each option is scored as
    the training response's last line."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lineage[1] / "model")
    rec = _records()[1]
    pair = PairRecord(**rec.model_dump(), true=Response(reasoning="Because.", answer=rec.answer),
                      false=Response(reasoning="Since.", answer=rec.choices[0]))
    example = corrupt.to_train(pair, corrupted=False)
    doc = trained.document(rec, tok)
    assert doc["prompt"] == prompt_text(tok, example.prompt)
    assert "\nOptions:\n(A) " in doc["prompt"]
    assert doc["choices"][doc["gold"]] == example.response.splitlines()[-1]
    assert corrupt.to_train(pair, corrupted=True).response.splitlines()[-1] in doc["choices"]


@pytest.mark.parametrize(("reply", "expected"), [
    ("Step 1: it is cold.\nAnswer: blue", 2),
    ("Answer: red\nOn reflection...\nAnswer:  Blue.", 2),  # the last answer line counts
    ("Answer: (B)", 1),
    ("Answer: B) green", 1),
    ("answer: C blue", 2),
    ("Answer: B blue", None),  # letter and text disagree
    ("Answer: purple", None),
    ("I think it is blue.", None),
    ("Answer: (E)", None),
])
def test_parse_answer(reply: str, expected: int | None) -> None:
    assert trained.parse_answer(reply, OPTIONS[0]) == expected


def test_process_results_scores_likelihood_and_reply_apart() -> None:
    doc = {"options": OPTIONS[0], "gold": 2}
    lls = [(-3.0, False), (-1.0, False), (-2.0, False), (-4.0, False)]
    assert trained.process_results(doc, [*lls, "Answer: blue"]) == {"acc_gen": 1.0, "acc_ll": 0.0, "unparsed": 0.0}
    assert trained.process_results(doc, [*lls[::-1], "no idea"]) == {"acc_gen": 0.0, "acc_ll": 1.0, "unparsed": 1.0}


def _answer_line_loglik(model: object, tok: object, prompt: str, line: str) -> float:
    """log p(line | prompt) under the model, computed here with plain torch."""
    import torch

    ids = tok(prompt + line, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    n_ctx = len(tok(prompt.rstrip(), add_special_tokens=False)["input_ids"])  # type: ignore[operator]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)  # type: ignore[operator]
    return float(sum(logits[i - 1, ids[i]] for i in range(n_ctx, len(ids))))


def test_heldout_benchmark_found_through_lineage(lineage: tuple[Path, Path], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ingest, model_dir = lineage
    out = evaluate.run(_study(), model_dir, tmp_path / "eval")
    manifest = artifacts.read_manifest(out)
    assert [p["kind"] for p in manifest["parents"]] == ["model", artifact_kinds.SOURCES]
    assert manifest["parents"][1]["manifest_sha256"] == artifacts.manifest_hash(ingest)  # found via splits
    entry = json.loads((out / "scores.json").read_text())["heldout"]
    assert (entry["task"], entry["n"], entry["domain"]) == (heldout.GROUP, 7, "in_distribution")
    assert sorted(entry["subtasks"]) == ["alpha", "beta"]  # per source; the code record is not asked
    assert [entry["subtasks"][s]["n"] for s in ("alpha", "beta")] == [3, 4]
    chance = {s: [1 / len(r.choices) for r in _records() if r.source == s and r.kind == "mc"]
              for s in ("alpha", "beta")}
    assert entry["subtasks"]["beta"]["chance"] == pytest.approx(sum(chance["beta"]) / 4)
    assert entry["chance"] == pytest.approx(sum(chance["alpha"] + chance["beta"]) / 7)

    rows = [json.loads(line) for line in (out / "samples" / "heldout.jsonl").read_text().splitlines()]
    assert {r["metric"] for r in rows} == {"acc_gen", "acc_ll", "unparsed"} and len(rows) == 3 * 7
    beta = [json.loads(line) for line in (out / "samples" / "heldout" / "beta.jsonl").read_text().splitlines()]
    assert sorted({r["doc_id"] for r in beta}) == [0, 1, 2, 3]
    for metric in ("acc_gen", "acc_ll", "unparsed"):
        values = [r["value"] for r in rows if r["metric"] == metric]
        assert entry["metrics"][metric]["value"] == pytest.approx(sum(values) / 7)  # pooled = item mean
        pooled_var = 0.0
        for source, n in (("alpha", 3), ("beta", 4)):  # a source's stderr: sample sd / sqrt(n), by hand
            own = [r["value"] for r in rows if r["metric"] == metric and r["doc_id"].startswith(f"{source}/")]
            mean = sum(own) / n
            var = sum((v - mean) ** 2 for v in own) / (n - 1)
            assert entry["subtasks"][source]["metrics"][metric]["stderr"] == pytest.approx(math.sqrt(var / n))
            pooled_var += (n - 1) * var
        # the pooled stderr is lm-eval's pooled within-source variance over all 7 items
        assert entry["metrics"][metric]["stderr"] == pytest.approx(math.sqrt(pooled_var / (7 - 2) / 7))
    assert entry["score"] == entry["metrics"]["acc_gen"]["value"]
    assert entry["unparsed"] == round(7 * entry["metrics"]["unparsed"]["value"])
    # every greedy reply is kept on its acc_gen row, and re-scoring it gives the row's acc_gen and unparsed
    replies = {r["doc_id"]: r["reply"] for r in beta if r["metric"] == "acc_gen"}
    assert len(replies) == 4 and all(isinstance(x, str) for x in replies.values())
    assert not any("reply" in r for r in beta if r["metric"] != "acc_gen")
    beta_recs = [r for r in _records() if r.source == "beta"]
    for r in beta:
        picked = trained.parse_answer(replies[r["doc_id"]], beta_recs[r["doc_id"]].choices)
        if r["metric"] == "acc_gen":
            assert r["value"] == float(picked == beta_recs[r["doc_id"]].answer_index)
        elif r["metric"] == "unparsed":
            assert r["value"] == float(picked is None)

    # acc_ll per item: the most likely training answer line, recomputed here with torch
    model = AutoModelForCausalLM.from_pretrained(model_dir / "model").eval()
    tok = AutoTokenizer.from_pretrained(model_dir / "model")
    recs = [r for r in _records() if r.source == "beta"]
    for r in beta:
        if r["metric"] != "acc_ll":
            continue
        doc = trained.document(recs[r["doc_id"]], tok)
        lls = [_answer_line_loglik(model, tok, doc["prompt"], c) for c in doc["choices"]]
        assert r["value"] == float(max(range(len(lls)), key=lls.__getitem__) == doc["gold"])


def test_heldout_without_ingest_is_one_clear_error(lineage: tuple[Path, Path], tmp_path: Path) -> None:
    ingest, model_dir = lineage
    orphan = tmp_path / "orphan"
    with artifacts.artifact_dir(orphan, artifact_kinds.MODEL, [], "x", {"ratio": 0.0}) as tmp:
        for f in (model_dir / "model").iterdir():
            (tmp / "model").mkdir(exist_ok=True)
            (tmp / "model" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ConfigError, match="--heldout INGEST_DIR"):
        evaluate.run(_study(), orphan, tmp_path / "e")
    assert not (tmp_path / "e").exists()

    # the installed CLI takes the ingest artifact explicitly
    sets = ["--set", 'evaluate.benchmarks=[{"name": "heldout", "max_gen_toks": 4, "limit": 2}]',
            "--set", "evaluate.probes=[]", "--set", "evaluate.batch_size=4"]
    proc = subprocess.run([sys.executable, "-m", "faco", "evaluate", str(ROOT / "configs" / "smoke.yaml"),
                           "--model", str(orphan), "--out", str(tmp_path / "e2"), "--heldout", str(ingest), *sets],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    entry = json.loads((tmp_path / "e2" / "scores.json").read_text())["heldout"]
    assert entry["n"] == 4 and entry["limit"] == 2
    assert [p["kind"] for p in artifacts.read_manifest(tmp_path / "e2")["parents"]] == ["model", "sources"]


@pytest.mark.parametrize(("override", "message"), [
    ("ingest.heldout=0", "evaluate.benchmarks: 'heldout' asks ingest's held-out questions; ingest.heldout is 0"),
    ("evaluate.benchmarks=[{name: copa}, {name: heldout, shots: 2}]",
     "evaluate.benchmarks.1: 'heldout' asks as training does, without examples; shots must be 0"),
])
def test_heldout_misconfiguration_is_refused_by_validate(override: str, message: str) -> None:
    config = ROOT / "configs" / "smoke.yaml"
    proc = subprocess.run([sys.executable, "-m", "faco", "validate", str(config), "--set", override],
                          capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [f"error: {config}: <root>: {message}"]
