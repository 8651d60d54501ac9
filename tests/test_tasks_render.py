"""`faco tasks render DIR`: every offline twin for stock lm-eval (`--include_path`), SQuAD v1.1 by one name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faco.config import ModelSpec
from faco.evaluation.suite import suite
from faco.evaluation.tasks import HUB_DIR, OFFLINE_DIR, mmlu_subjects, render_offline
from faco.training.models import tiny_model

BIN = Path(sys.executable).parent
TEXTS = ["Title: Background: Question: Answer: the quick brown fox jumps over the lazy dog"] * 20


def _render(out: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "faco"), "tasks", "render", str(out)], capture_output=True, text=True, cwd=cwd)


def test_stock_task_manager_indexes_every_rendered_twin(tmp_path: Path, root: Path) -> None:
    from lm_eval.tasks import TaskManager

    out = tmp_path / "tasks"
    result = _render(out, root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        f"{out}: 77 tasks and groups (lm_eval --include_path {out} --tasks <name>)"]
    # heldout: from ingest; <name>@trained: from its benchmark's documents
    twins = {b.offline for b in suite().values() if b.offline and b.name != "heldout" and b.of is None}
    subjects = {f"faco_mmlu_{s}" for s in mmlu_subjects(root / "data")}
    hub = {p.stem for p in HUB_DIR.glob("*.yaml")}
    assert len(subjects) == 57 and "faco_squadv1_hub" in hub
    indexed = set(TaskManager(include_path=str(out), include_defaults=False).all_tasks)
    assert twins | subjects | hub <= indexed
    for path in out.glob("*.yaml"):
        assert "{data}" not in path.read_text() and "{lm_eval_tasks}" not in path.read_text(), path.name
    # templates are extension-less (upstream's `_..._template_yaml`): every .yaml in the repo is a task or group
    assert (out / "_faco_mmlu_template_yaml").is_file()
    assert sorted(p.name for p in OFFLINE_DIR.iterdir() if p.name.startswith("_")) == ["_faco_mmlu_template_yaml"]


def test_render_refuses_a_folder_that_is_not_the_mirror(tmp_path: Path) -> None:
    result = subprocess.run([str(BIN / "faco"), "tasks", "render", str(tmp_path / "t"), "--data", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path}: no benchmarks/ folder (not the offline mirror; pass --data or set FACO_DATA_DIR)"]
    assert not (tmp_path / "t").exists()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    spec = ModelSpec.model_validate({"source": "tiny-random", "tiny": {"hidden_size": 32, "layers": 1, "heads": 2,
                                                                       "vocab_size": 300}})
    model, tok = tiny_model(spec, TEXTS, seed=0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_stock_lm_eval_cli_runs_the_squad_v1_twin(tmp_path: Path, root: Path, tiny: Path) -> None:
    tasks = tmp_path / "tasks"
    assert _render(tasks, root).returncode == 0
    result = subprocess.run(
        [str(BIN / "lm_eval"), "--model", "hf", "--model_args", f"pretrained={tiny}", "--device", "cpu",
         "--tasks", "faco_squadv1", "--include_path", str(tasks), "--limit", "3", "--batch_size", "3",
         "--gen_kwargs", "max_gen_toks=4", "--output_path", str(tmp_path / "res")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [path] = (tmp_path / "res").rglob("results_*.json")
    got = json.loads(path.read_text())["results"]["faco_squadv1"]
    assert 0.0 <= got["exact,none"] <= got["f1,none"] <= 1.0  # fractions, as the online task


def test_hub_squad_is_the_same_v1_task_on_the_hub_copy(tmp_path: Path, root: Path, tiny: Path) -> None:
    """faco_squadv1_hub through real lm-eval, its hub dataset swapped for local rows in the hub's schema."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    rows = [json.loads(line) for line in (root / "data" / "benchmarks" / "squad" / "validation.jsonl")
            .read_text().splitlines()[:3]]
    hub_rows = [{**r, "answers": {"text": r["answers"], "answer_start": [0] * len(r["answers"])}} for r in rows]
    local = tmp_path / "squad.jsonl"
    local.write_text("".join(json.dumps(r) + "\n" for r in hub_rows))
    tasks = tmp_path / "tasks"
    render_offline([suite()["squadv1"]], root / "data", tasks)
    text = (tasks / "faco_squadv1_hub.yaml").read_text()
    assert "dataset_path: rajpurkar/squad" in text and "include: faco_squadv1.yaml" in text
    (tasks / "faco_squadv1_hub.yaml").write_text(text.replace(
        "dataset_path: rajpurkar/squad\ndataset_kwargs: null",
        f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    validation: {local}"))
    lm = HFLM(pretrained=str(tiny), device="cpu", batch_size=3, max_length=512)
    manager = TaskManager(include_path=str(tasks), include_defaults=False)
    kwargs = {"model": lm, "num_fewshot": 0, "limit": 3, "task_manager": manager, "gen_kwargs": "max_gen_toks=4"}
    hub = lm_eval.simple_evaluate(tasks=["faco_squadv1_hub"], **kwargs)
    twin = lm_eval.simple_evaluate(tasks=["faco_squadv1"], **kwargs)
    assert hub is not None and twin is not None
    # the same three questions, prompts and answers: the same scores as the mirror twin
    assert hub["results"]["faco_squadv1_hub"]["f1,none"] == twin["results"]["faco_squadv1"]["f1,none"]
    assert hub["configs"]["faco_squadv1_hub"]["doc_to_text"] == twin["configs"]["faco_squadv1"]["doc_to_text"]


def test_old_squad_name_fails_naming_the_new_one(tmp_path: Path, root: Path) -> None:
    config = tmp_path / "study.yaml"
    text = (root / "configs" / "smoke.yaml").read_text()
    config.write_text(text.replace("{name: openbookqa, shots: 0, limit: 12}", "{name: squad, shots: 0}"))
    result = subprocess.run([str(BIN / "faco"), "validate", str(config)], capture_output=True, text=True)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        f"error: {config}: evaluate.benchmarks.1.name: benchmark 'squad' is now 'squadv1'"]
