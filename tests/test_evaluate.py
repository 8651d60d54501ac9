"""Evaluate stage on a tiny random llama against the offline twins (real lm-eval, real local data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from faco import artifacts
from faco.config import ModelSpec, Study, load_config
from faco.errors import ConfigError
from faco.evaluation.suite import suite
from faco.evaluation.tasks import lm_eval_tasks_dir
from faco.paths import repo_root
from faco.stages import evaluate, train
from faco.training.models import tiny_model

_ROOT = repo_root()
assert _ROOT is not None
ROOT: Path = _ROOT
TEXTS = ["The quick brown fox jumps over the lazy dog. Question: Answer: yes no"] * 20


@pytest.fixture(scope="module")
def model_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model artifact with two epoch checkpoints (copies of the final weights)."""
    out = tmp_path_factory.mktemp("models") / "cr_000"
    tiny = {"hidden_size": 32, "layers": 1, "heads": 2, "vocab_size": 300}
    spec = ModelSpec.model_validate({"source": "tiny-random", "tiny": tiny})
    model, tok = tiny_model(spec, TEXTS, seed=0)
    with artifacts.artifact_dir(out, train.KIND, [], "x", {"ratio": 0.0, "tag": "cr_000"}) as tmp:
        for sub in ("model", "checkpoints/epoch_1", "checkpoints/epoch_2"):
            model.save_pretrained(tmp / sub)
            tok.save_pretrained(tmp / sub)
    return out


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACO_CACHE_DIR", str(tmp_path / "cache"))


def _study(benchmarks: list[dict[str, Any]], **evaluate_cfg: Any) -> Study:
    study = load_config(ROOT / "configs" / "smoke.yaml")
    cfg = study.evaluate.model_validate({"benchmarks": benchmarks, "batch_size": 4, "probe_max_new_tokens": 4,
                                         **evaluate_cfg})
    return study.model_copy(update={"evaluate": cfg})


def test_suite_maps_to_installed_upstream_tasks() -> None:
    """Every benchmark's upstream task name exists in the installed lm-eval (as a task or group)."""
    text = "\n".join(p.read_text(errors="replace") for p in lm_eval_tasks_dir().rglob("*yaml*"))
    for bench in suite().values():
        assert f"task: {bench.lm_eval}\n" in text or f"group: {bench.lm_eval}\n" in text, bench.name
        assert bench.offline is not None, bench.name
    assert {b.shots for b in suite().values() if b.name not in ("arc_challenge", "mmlu", "humaneval")} == {10}
    assert (suite()["arc_challenge"].shots, suite()["mmlu"].shots) == (25, 5)
    assert suite()["humaneval"].metrics == ["pass@1", "pass@10"]


FIVE = ["piqa", "copa", "winogrande", "lambada", "squad"]


def test_offline_benchmarks(model_artifact: Path, tmp_path: Path) -> None:
    study = _study([{"name": n, "shots": 1, "limit": 4, "max_gen_toks": 8} for n in FIVE], probes=[])
    out = evaluate.run(study, model_artifact, tmp_path / "eval")
    assert artifacts.verify(out) == []
    scores = json.loads((out / "scores.json").read_text())
    for name in FIVE:
        entry = scores[name]
        assert entry["n"] == 4 and entry["limit"] == 4 and entry["shots"] == 1
        assert entry["task"] == suite()[name].offline
        assert 0.0 <= entry["score"] <= 1.0
    assert scores["squad"]["metrics"]["exact"]["value"] is not None
    assert "epochs" not in scores


def test_epochs_probes_and_cache(
    model_artifact: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    study = _study([{"name": "copa", "shots": 2, "limit": 4}], per_epoch=True)
    out = evaluate.run(study, model_artifact, tmp_path / "eval1")
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["epochs"]) == {"1", "2"}
    # the epoch checkpoints hold the final weights: identical scores
    assert scores["epochs"]["2"] == {"copa": scores["copa"]["score"]}
    probes = [json.loads(line) for line in (out / "probes.jsonl").read_text().splitlines()]
    assert [p["question"] for p in probes] == evaluate.default_probes()
    assert all(isinstance(p["answer"], str) and p["max_new_tokens"] == 4 for p in probes)
    assert capfd.readouterr().err.count("loading model") == 3  # final + two epochs

    again = evaluate.run(study, model_artifact, tmp_path / "eval2")
    assert "loading model" not in capfd.readouterr().err
    assert (again / "scores.json").read_text() == (out / "scores.json").read_text()
    assert (again / "probes.jsonl").read_text() == (out / "probes.jsonl").read_text()

    # another limit is another setting: the model is loaded again
    other = _study([{"name": "copa", "shots": 2, "limit": 3}], probes=[])
    evaluate.run(other, model_artifact, tmp_path / "eval3")
    assert capfd.readouterr().err.count("loading model") == 1


@pytest.mark.slow
def test_more_twins(model_artifact: Path, tmp_path: Path) -> None:
    names = ["arc_challenge", "openbookqa", "hellaswag", "mathqa", "logiqa", "boolq",
             "bigbench_logical_deduction",
             "bigbench_conceptual_combinations", "bigbench_elementary_math_qa"]
    study = _study([{"name": n, "shots": 2, "limit": 4} for n in names], probes=["Why?"])
    scores = json.loads((evaluate.run(study, model_artifact, tmp_path / "e") / "scores.json").read_text())
    assert all(scores[n]["n"] == 4 and scores[n]["score"] is not None for n in names)


@pytest.mark.slow
def test_mmlu_per_subject(model_artifact: Path, tmp_path: Path) -> None:
    study = _study([{"name": "mmlu", "limit": 2}], probes=[])
    out = evaluate.run(study, model_artifact, tmp_path / "e")
    entry = json.loads((out / "scores.json").read_text())["mmlu"]
    subjects = sorted(p.stem for p in (ROOT / "data/benchmarks/mmlu/test").glob("*.jsonl"))
    assert len(subjects) == 57 and sorted(entry["subtasks"]) == subjects
    assert entry["n"] == 2 * 57
    accs = [s["metrics"]["acc"]["value"] for s in entry["subtasks"].values()]
    assert entry["score"] == pytest.approx(sum(accs) / len(accs))


def test_humaneval_refused_without_opt_in(model_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="allow_code_execution"):
        evaluate.run(_study([{"name": "humaneval", "limit": 1}]), model_artifact, tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_humaneval_sandboxed(model_artifact: Path, tmp_path: Path) -> None:
    study = _study([{"name": "humaneval", "limit": 2, "repeats": 2, "max_gen_toks": 16}],
                   allow_code_execution=True, probes=[])
    out = evaluate.run(study, model_artifact, tmp_path / "e")
    entry = json.loads((out / "scores.json").read_text())["humaneval"]
    # a random model's code fails its tests; pass@10 needs >= 10 samples
    assert entry["n"] == 2 and entry["metrics"]["pass@1"]["value"] == 0.0
    assert entry["metrics"]["pass@10"]["value"] is None
