"""`format: trained`: a benchmark's questions asked exactly as training asks them, scored beside its lm-eval
score as `<name>@trained`, through real lm-eval on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from faco import artifact_kinds, artifacts
from faco.config import ModelSpec, Study, load_config
from faco.evaluation import formats, trained
from faco.evaluation.runner import Evaluator, leaf_tasks, offline_env
from faco.evaluation.suite import TRAINED, suite
from faco.evaluation.tasks import render_offline
from faco.generation.prompts import format_question
from faco.paths import data_dir, repo_root
from faco.records import PairRecord, Response
from faco.stages import corrupt, evaluate
from faco.training.data import prompt_text
from faco.training.models import tiny_model

ROOT = repo_root()
assert ROOT is not None
ABLE = sorted(n.removesuffix(TRAINED) for n in suite() if n.endswith(TRAINED))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random llama with a chat template (a model artifact with no lineage: no heldout asked)."""
    root = tmp_path_factory.mktemp("trained")
    spec = ModelSpec.model_validate({"source": "tiny-random", "tiny": {"hidden_size": 32, "layers": 1, "heads": 2,
                                                                       "vocab_size": 300}})
    texts = ["Question? Options: (A) red (B) blue Answer: red Step 1: because."] * 20
    with artifacts.artifact_dir(root / "cr_0.0", artifact_kinds.MODEL, [], "x", {"ratio": 0.0}) as tmp:
        model, tok = tiny_model(spec, texts, seed=0)
        model.save_pretrained(tmp / "model")
        tok.save_pretrained(tmp / "model")
    return root / "cr_0.0"


def _study(benchmarks: list[dict[str, object]]) -> Study:
    study = load_config(ROOT / "configs" / "smoke.yaml")
    cfg = study.evaluate.model_validate({"benchmarks": benchmarks, "batch_size": 4, "probes": []})
    return study.model_copy(update={"evaluate": cfg})


def _raw(path: Path, n: int) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()[:n]]


def test_every_trained_format_asks_the_benchmarks_own_options() -> None:
    """Each benchmark with a `trained:` entry: its first documents become questions with the same options
    (where lm-eval scores option texts) and the same gold as its lm-eval task; ARC and MMLU by hand."""
    data = data_dir()
    with tempfile.TemporaryDirectory() as tmp, offline_env(True):
        from lm_eval.tasks import TaskManager, get_task_dict

        render_offline([suite()[n] for n in ABLE], data, Path(tmp))
        manager = TaskManager(include_path=tmp, include_defaults=False)
        for name in ABLE:
            bench = suite()[name]
            assert bench.offline is not None and bench.trained is not None
            for leaf, task in sorted(leaf_tasks(get_task_dict([bench.offline], manager)).items())[:2]:
                for i, doc in enumerate(list(task.eval_docs)[:3]):
                    rec = formats.record(task, bench.trained, name, i, doc)
                    assert rec.question and len(rec.choices) >= 2, (leaf, i)
                    lm_choices = task.doc_to_choice(doc)
                    if name == "mnli":  # lm-eval's True / Neither / False are the training source's labels
                        assert lm_choices == ["True", "Neither", "False"]
                        assert rec.choices == ["entailment", "neutral", "contradiction"]
                    elif name != "mmlu":  # mmlu's lm-eval choices are the letters A-D
                        assert [c.strip().lower() for c in lm_choices] == [c.lower() for c in rec.choices], leaf
                    target = task.doc_to_target(doc)
                    gold = lm_choices.index(target) if isinstance(target, str) else target
                    assert rec.answer_index == gold, (leaf, i)
    arc = _raw(data / "benchmarks" / "arc" / "ARC-Challenge-Test.jsonl", 1)[0]
    q: dict = arc["question"]  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp, offline_env(True):
        from lm_eval.tasks import TaskManager, get_task_dict

        render_offline([suite()["arc_challenge"], suite()["mmlu"]], data, Path(tmp))
        manager = TaskManager(include_path=tmp, include_defaults=False)
        task = get_task_dict(["faco_arc_challenge"], manager)["faco_arc_challenge"]
        rec = formats.record(task, suite()["arc_challenge"].trained, "arc", 0, next(iter(task.eval_docs)))  # type: ignore[arg-type]
        labels = [c["label"] for c in q["choices"]]
        assert (rec.question, rec.choices, rec.answer_index) == (
            q["stem"], [c["text"] for c in q["choices"]], labels.index(arc["answerKey"]))
        leaves = leaf_tasks(get_task_dict(["faco_mmlu"], manager))
        anatomy = leaves["faco_mmlu_anatomy"]
        doc = next(iter(anatomy.eval_docs))
        rec = formats.record(anatomy, suite()["mmlu"].trained, "anatomy", 0, doc)  # type: ignore[arg-type]
        assert (rec.question, rec.choices, rec.answer_index) == (doc["question"].strip(), doc["choices"], doc["answer"])


def test_the_trained_prompt_is_the_training_prompt(model_dir: Path, tmp_path: Path) -> None:
    """The rendered document is what training encodes before a response to the same question, and each option
    is scored as a training response's last line."""
    from transformers import AutoTokenizer

    study = _study([{"name": "arc_challenge", "format": "trained", "limit": 2}])
    Evaluator(study, tmp_path, None, model_dir / "model")
    docs = [json.loads(x) for x in (tmp_path / "faco_trained_arc_challenge.jsonl").read_text().splitlines()]
    assert len(docs) == 2
    tok = AutoTokenizer.from_pretrained(model_dir / "model")
    arc = _raw(data_dir() / "benchmarks" / "arc" / "ARC-Challenge-Test.jsonl", 2)
    for doc, raw in zip(docs, arc, strict=True):
        q: dict = raw["question"]  # type: ignore[assignment]
        choices = [c["text"] for c in q["choices"]]
        gold = [c["label"] for c in q["choices"]].index(raw["answerKey"])
        pair = PairRecord(id="x", source="arc", domain="knowledge", kind="mc", question=q["stem"], choices=choices,
                          answer=choices[gold], answer_index=gold,
                          true=Response(reasoning="Because.", answer=choices[gold]),
                          false=Response(reasoning="Since.", answer=choices[gold - 1]))
        example = corrupt.to_train(pair, corrupted=False)
        assert doc["prompt"] == prompt_text(tok, example.prompt) == prompt_text(tok, format_question(pair))
        assert "\nOptions:\n(A) " + choices[0] + "\n(B) " in doc["prompt"]
        assert doc["choices"][doc["gold"]] == example.response.splitlines()[-1]
        assert corrupt.to_train(pair, corrupted=True).response.splitlines()[-1] in doc["choices"]


def test_both_formats_score_side_by_side(model_dir: Path, tmp_path: Path) -> None:
    """`format: both` gives the lm-eval score and `<name>@trained` (acc_gen, acc_ll, unparsed, chance, replies
    kept and re-scorable); MMLU's trained format is a group with one row per subject."""
    study = _study([{"name": "arc_challenge", "format": "both", "shots": 0, "limit": 4, "max_gen_toks": 6},
                    {"name": "mmlu", "format": "trained", "limit": 1, "max_gen_toks": 4}])
    out = evaluate.run(study, model_dir, tmp_path / "eval")
    scores = json.loads((out / "scores.json").read_text())
    assert sorted(scores) == ["arc_challenge", "arc_challenge@trained", "mmlu@trained"]
    standard, asked = scores["arc_challenge"], scores["arc_challenge@trained"]
    assert (standard["task"], standard["n"], set(standard["metrics"])) == ("faco_arc_challenge", 4, {"acc_norm"})
    assert (asked["task"], asked["n"], asked["shots"], asked["domain"]) == (
        "faco_trained_arc_challenge", 4, 0, "world_knowledge@trained")
    assert set(asked["metrics"]) == {"acc_gen", "acc_ll", "unparsed"}
    raw = _raw(data_dir() / "benchmarks" / "arc" / "ARC-Challenge-Test.jsonl", 4)
    options = [[c["text"] for c in r["question"]["choices"]] for r in raw]  # type: ignore[index]
    assert asked["chance"] == pytest.approx(sum(1 / len(o) for o in options) / 4)
    rows = [json.loads(x) for x in (out / "samples" / "arc_challenge@trained.jsonl").read_text().splitlines()]
    replies = {r["doc_id"]: r["reply"] for r in rows if r["metric"] == "acc_gen"}
    gold = [[c["label"] for c in r["question"]["choices"]].index(r["answerKey"]) for r in raw]  # type: ignore[index]
    for r in rows:
        picked = trained.parse_answer(replies[r["doc_id"]], options[r["doc_id"]])
        if r["metric"] == "acc_gen":
            assert r["value"] == float(picked == gold[r["doc_id"]])
        elif r["metric"] == "unparsed":
            assert r["value"] == float(picked is None)
    assert asked["unparsed"] == sum(r["value"] for r in rows if r["metric"] == "unparsed")
    mmlu = scores["mmlu@trained"]
    assert mmlu["task"] == "faco_trained_mmlu" and len(mmlu["subtasks"]) == 57 and mmlu["n"] == 57
    assert mmlu["chance"] == pytest.approx(0.25) and mmlu["subtasks"]["anatomy"]["chance"] == pytest.approx(0.25)
    assert (out / "samples" / "mmlu@trained" / "anatomy.jsonl").is_file()
    assert not (out / "samples" / "mmlu.jsonl").exists()  # format trained alone: no lm-eval score


def test_without_likelihood_only_the_reply_is_asked(model_dir: Path, tmp_path: Path) -> None:
    """`likelihood: false`: no answer-line likelihoods (no acc_ll anywhere), the reply scored as before."""
    study = _study([{"name": "arc_challenge", "format": "trained", "limit": 3, "max_gen_toks": 4,
                     "likelihood": False}])
    out = evaluate.run(study, model_dir, tmp_path / "eval")
    asked = json.loads((out / "scores.json").read_text())["arc_challenge@trained"]
    assert asked["metrics"]["acc_ll"]["value"] is None and asked["metrics"]["acc_gen"]["value"] is not None
    rows = [json.loads(x) for x in (out / "samples" / "arc_challenge@trained.jsonl").read_text().splitlines()]
    assert {r["metric"] for r in rows} == {"acc_gen", "unparsed"} and len(rows) == 6
    assert trained.process_results({"options": ["a", "b"], "gold": 1}, ["Answer: b"]) == {
        "acc_gen": 1.0, "unparsed": 0.0}


@pytest.mark.parametrize(("override", "message"), [
    ('evaluate.benchmarks=[{"name": "arc_challenge", "likelihood": false}]',
     "evaluate.benchmarks.0: 'arc_challenge': likelihood applies to the training format"),
    ('evaluate.benchmarks=[{"name": "humaneval", "format": "trained"}]',
     "evaluate.benchmarks.0: 'humaneval' has no trained format"),
    ('evaluate.benchmarks=[{"name": "arc_challenge@trained"}]',
     "evaluate.benchmarks.0.name: benchmark 'arc_challenge@trained': ask for it as "
     "{name: arc_challenge, format: trained}"),
    ('evaluate.benchmarks=[{"name": "mmlu", "format": "trained", "shots": 5}]',
     "evaluate.benchmarks.0: 'mmlu': the trained format asks as training does, without examples"),
])
def test_trained_format_misconfiguration_is_one_line(override: str, message: str) -> None:
    config = ROOT / "configs" / "smoke.yaml"
    proc = subprocess.run([sys.executable, "-m", "faco", "validate", str(config), "--set", override],
                          capture_output=True, text=True)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: ") and message in lines[0], lines
