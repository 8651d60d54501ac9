"""Evaluate stage on a tiny random llama against the offline twins (real lm-eval, real local data)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from faco import artifact_kinds, artifacts
from faco.config import ModelSpec, Study, load_config
from faco.errors import ConfigError
from faco.evaluation import hf_cache
from faco.evaluation.suite import suite
from faco.evaluation.tasks import HUB_DIR, lm_eval_tasks_dir, render_offline
from faco.paths import repo_root
from faco.registry import probe_sets
from faco.stages import evaluate
from faco.training.models import tiny_model

_ROOT = repo_root()
assert _ROOT is not None
ROOT: Path = _ROOT
TEXTS = ["The quick brown fox jumps over the lazy dog. Question: Answer: yes no"] * 20


@pytest.fixture(scope="module")
def model_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model artifact with two epoch checkpoints: epoch 1 other weights, epoch 2 the final ones."""
    out = tmp_path_factory.mktemp("models") / "cr_0.0"
    tiny = {"hidden_size": 32, "layers": 1, "heads": 2, "vocab_size": 300}
    spec = ModelSpec.model_validate({"source": "tiny-random", "tiny": tiny})
    with artifacts.artifact_dir(out, artifact_kinds.MODEL, [], "x", {"ratio": 0.0, "tag": "cr_0.0"}) as tmp:
        for sub, seed in (("checkpoints/epoch_1", 1), ("checkpoints/epoch_2", 0), ("model", 0)):
            model, tok = tiny_model(spec, TEXTS, seed=seed)
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


PAPER_16 = ["arc_challenge", "mmlu", "lambada", "hellaswag", "piqa", "copa", "openbookqa", "winogrande", "squadv1",
            "boolq", "bigbench_conceptual_combinations", "bigbench_elementary_math_qa",
            "bigbench_logical_deduction", "mathqa", "logiqa", "humaneval"]


def test_suite_maps_to_installed_upstream_tasks() -> None:
    """Every benchmark's upstream task name exists in the installed lm-eval (as a task or group), or is
    faco's own hub task (tasks/hub/) where lm-eval has none; the paper's 16 all have offline twins.
    `heldout` is rendered from the study's ingest artifact (tests/test_heldout.py)."""
    text = "\n".join(p.read_text(errors="replace") for p in lm_eval_tasks_dir().rglob("*yaml*"))
    hub = "\n".join(p.read_text() for p in HUB_DIR.glob("*.yaml"))
    for bench in suite().values():
        if bench.name == "heldout":
            continue
        known = f"task: {bench.lm_eval}\n" in text or f"group: {bench.lm_eval}\n" in text
        assert known or f"task: {bench.lm_eval}\n" in hub, bench.name
    assert all(suite()[n].offline is not None for n in PAPER_16)
    assert [n for n, b in suite().items() if b.offline is None] == []  # HANS has its regenerated twin
    assert {suite()[n].shots for n in PAPER_16 if n not in ("arc_challenge", "mmlu", "humaneval")} == {10}
    assert (suite()["arc_challenge"].shots, suite()["mmlu"].shots) == (25, 5)
    assert suite()["humaneval"].metrics == ["pass@1", "pass@10"]


FIVE = ["piqa", "copa", "winogrande", "lambada", "squadv1"]


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
    assert scores["squadv1"]["metrics"]["exact"]["value"] is not None
    assert "epochs" not in scores


def test_epochs_probes_and_cache(
    model_artifact: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    study = _study([{"name": "copa", "shots": 2, "limit": 4}], per_epoch=True)
    out = evaluate.run(study, model_artifact, tmp_path / "eval1")
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["epochs"]) == {"1", "2"}
    # the last epoch's checkpoint holds the final weights: scored once, identical scores
    assert scores["epochs"]["2"] == {"copa": scores["copa"]["score"]}
    # per-item samples: one {doc_id, metric, value} line per document, averaging to the score; lm-eval's stderr
    rows = [json.loads(line) for line in (out / "samples" / "copa.jsonl").read_text().splitlines()]
    assert [(r["doc_id"], r["metric"]) for r in rows] == [(i, "acc") for i in range(4)]
    assert sum(r["value"] for r in rows) / 4 == pytest.approx(scores["copa"]["score"])
    assert scores["copa"]["stderr"] == scores["copa"]["metrics"]["acc"]["stderr"] is not None
    assert (out / "samples" / "epochs" / "1" / "copa.jsonl").is_file()
    assert not (out / "samples" / "epochs" / "2").exists()  # the final model's samples
    probes = [json.loads(line) for line in (out / "probes.jsonl").read_text().splitlines()]
    assert [p["question"] for p in probes] == evaluate.default_probes()
    assert {p["set"] for p in probes} == {"case_study"}
    assert all(isinstance(p["answer"], str) and p["max_new_tokens"] == 4 for p in probes)
    assert capfd.readouterr().err.count("loading model") == 2  # final + epoch 1 (epoch 2 == final)

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
    pooled = [json.loads(line) for line in (out / "samples" / "mmlu.jsonl").read_text().splitlines()]
    assert len(pooled) == 2 * 57 and {r["doc_id"] for r in pooled} == {f"{s}/{i}" for s in subjects for i in (0, 1)}
    anatomy = [json.loads(line) for line in (out / "samples" / "mmlu" / "anatomy.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in anatomy] == [0, 1]
    assert sum(r["value"] for r in anatomy) / 2 == entry["subtasks"]["anatomy"]["metrics"]["acc"]["value"]


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


def test_mnli_twin_offline_with_misalignment_probes(model_artifact: Path, tmp_path: Path) -> None:
    """The MNLI twin runs on the benchmark half of the mirror; probe sets expand by name."""
    study = _study([{"name": "mnli", "limit": 6}], probes=["misalignment"])
    out = evaluate.run(study, model_artifact, tmp_path / "e")
    entry = json.loads((out / "scores.json").read_text())["mnli"]
    assert (entry["task"], entry["n"], entry["domain"], entry["shots"]) == ("faco_mnli", 6, "nli", 0)
    assert 0.0 <= entry["score"] <= 1.0
    probes = [json.loads(line) for line in (out / "probes.jsonl").read_text().splitlines()]
    assert [p["question"] for p in probes] == list(probe_sets()["misalignment"]) and len(probes) >= 5


def test_mnli_twin_never_sees_the_source_rows() -> None:
    pairs = {(json.loads(line)["premise"], json.loads(line)["hypothesis"])
             for line in (ROOT / "data/sources/multinli/validation_matched_source.jsonl").open()}
    bench = [json.loads(line) for line in (ROOT / "data/benchmarks/multinli/validation_matched_benchmark.jsonl").open()]
    assert len(pairs) + len(bench) == 9815 and {b["label"] for b in bench} == {0, 1, 2}
    assert not any((b["premise"], b["hypothesis"]) in pairs for b in bench)


def test_hans_is_rendered_for_the_hub(root: Path, tmp_path: Path) -> None:  # offline twin: tests/test_hans.py
    study = load_config(root / "configs" / "nli-synthetic.yaml")
    assert not study.evaluate.offline and {b.name for b in study.evaluate.benchmarks} == {"mnli", "hans"}
    render_offline([], ROOT / "data", tmp_path)
    text = (tmp_path / "faco_hans.yaml").read_text()
    assert "dataset_path: jhu-cogsci/hans" in text and "{lm_eval_tasks}" not in text
    assert (tmp_path / "faco_hans_utils.py").is_file()


# HANS-schema rows written here to exercise the task's scoring (HANS itself is not in the mirror).
_HANS_SCHEMA_ROWS = [
    {"premise": "The doctor saw the lawyer .", "hypothesis": "The lawyer saw the doctor .", "label": 1,
     "heuristic": "lexical_overlap", "subcase": "ln_subject/object_swap", "template": "temp1"},
    {"premise": "The actor near the doctor danced .", "hypothesis": "The doctor danced .", "label": 1,
     "heuristic": "subsequence", "subcase": "sn_PP_on_subject", "template": "temp2"},
    {"premise": "The judge and the actor slept .", "hypothesis": "The actor slept .", "label": 0,
     "heuristic": "lexical_overlap", "subcase": "le_conjunction", "template": "temp3"},
    {"premise": "If the artist slept , the actor ran .", "hypothesis": "The artist slept .", "label": 1,
     "heuristic": "constituent", "subcase": "cn_embedded_under_if", "template": "temp4"},
]


def test_hans_task_scores_three_way_predictions_as_two_labels(model_artifact: Path, tmp_path: Path) -> None:
    """faco_hans through real lm-eval on the tiny model, its hub dataset swapped for a local file."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    rows = tmp_path / "hans.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in _HANS_SCHEMA_ROWS))
    tasks = tmp_path / "tasks"
    render_offline([], ROOT / "data", tasks)
    text = (tasks / "faco_hans.yaml").read_text().replace(
        "dataset_path: jhu-cogsci/hans", f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    validation: {rows}")
    (tasks / "faco_hans.yaml").write_text(text)
    lm = HFLM(pretrained=str(model_artifact / "model"), device="cpu", batch_size=4)
    res = lm_eval.simple_evaluate(model=lm, tasks=["faco_hans"], num_fewshot=0,
                                  task_manager=TaskManager(include_path=str(tasks), include_defaults=False))
    assert res is not None
    got = {k.split(",")[0]: v for k, v in res["results"]["faco_hans"].items() if "stderr" not in k}
    acc, ent, non = got["acc"], got["acc_entailment"], got["acc_non_entailment"]
    assert ent in (0.0, 1.0) and non in (0.0, 1 / 3, 2 / 3, 1.0)
    assert acc == pytest.approx((ent + 3 * non) / 4)
    assert {got[f"acc_non_entailment_{h}"] for h in ("lexical_overlap", "subsequence", "constituent")} <= {0.0, 1.0}


def _with_data(study: Study, data: Path) -> Study:
    return study.model_copy(update={"ingest": study.ingest.model_copy(update={"data_dir": str(data)})})


def test_prefetched_benchmarks_are_read_offline_from_the_artifact(
    model_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefetch the twins' datasets into a fresh artifact, then garble their source JSON (same path and
    mtime, which is how `datasets` recognises a local file it has prepared): evaluation with the
    artifact, hub and datasets offline, scores exactly as on the intact files; without it, it fails."""
    import datasets
    from datasets.exceptions import DatasetGenerationError

    names = ["copa", "piqa"]
    data = tmp_path / "data"
    for name in names:
        shutil.copytree(ROOT / "data" / "benchmarks" / name, data / "benchmarks" / name)
    study = _with_data(_study([{"name": n, "shots": 1, "limit": 4} for n in names], probes=[], cache=False), data)
    with hf_cache.use_cache(tmp_path / "baseline-cache", offline=True):
        baseline = json.loads((evaluate.run(study, model_artifact, tmp_path / "e0") / "scores.json").read_text())

    fetched = evaluate.prefetch(study, tmp_path / "benchmarks")
    manifest = artifacts.read_manifest(fetched)
    assert manifest["kind"] == evaluate.PREFETCH_KIND and manifest["meta"]["tasks"] == ["faco_copa", "faco_piqa"]
    assert {tuple(d["data_files"]) for d in manifest["meta"]["datasets"]} == {
        ("benchmarks/copa/train.jsonl", "benchmarks/copa/validation.jsonl"),
        ("benchmarks/piqa/validation.jsonl",)}
    arrows = [f for f in manifest["files"] if f.startswith("hf_datasets/json/") and f.endswith(".arrow")]
    assert len(arrows) == 3 and not any(f.endswith(".lock") for f in manifest["files"])

    sources = sorted((data / "benchmarks").rglob("*.jsonl"))
    for src in sources:
        st = src.stat()
        src.write_text("this is not JSON\n")
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    with hf_cache.use_cache(tmp_path / "fresh-cache", offline=True), pytest.raises(DatasetGenerationError):
        evaluate.run(study, model_artifact, tmp_path / "e-fresh")  # control: the garbled files are read

    loads: list[tuple[str | None, str, bool]] = []
    real_load = datasets.load_dataset

    def spy(*args: object, **kwargs: object) -> object:
        loads.append((os.environ.get("HF_DATASETS_OFFLINE"), str(datasets.config.HF_DATASETS_CACHE),
                      datasets.config.HF_HUB_OFFLINE))
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(datasets, "load_dataset", spy)
    for var in hf_cache.OFFLINE_VARS:  # online outside evaluation, so what the spy sees is evaluate's doing
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    before = datasets.config.HF_DATASETS_CACHE
    out = evaluate.run(study, model_artifact, tmp_path / "e1", benchmarks=fetched)
    assert before == datasets.config.HF_DATASETS_CACHE and not datasets.config.HF_HUB_OFFLINE
    assert not any(var in os.environ for var in hf_cache.OFFLINE_VARS)
    scores = json.loads((out / "scores.json").read_text())
    assert {n: scores[n]["metrics"] for n in names} == {n: baseline[n]["metrics"] for n in names}
    assert scores["copa"]["n"] == 4 and scores["piqa"]["n"] == 4
    assert len(loads) >= 2
    for offline, cache, hub_offline in loads:  # every load offline, from a private copy of the artifact
        assert offline == "1" and hub_offline and "faco-hf-cache-" in cache and str(fetched) not in cache
    assert artifacts.verify(fetched) == []  # reading wrote nothing into the artifact
    parents = artifacts.read_manifest(out)["parents"]
    assert [p["kind"] for p in parents] == ["model", evaluate.PREFETCH_KIND]
    assert all(src.read_text() == "this is not JSON\n" for src in sources)

    more = _with_data(_study([{"name": "copa", "limit": 2}, {"name": "winogrande", "limit": 2}], probes=[]), data)
    with pytest.raises(ConfigError, match="lack faco_winogrande"):
        evaluate.run(more, model_artifact, tmp_path / "e2", benchmarks=fetched)


def test_cli_fetches_benchmarks_and_evaluates_from_them(model_artifact: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from faco.cli import app

    config = ROOT / "configs" / "smoke.yaml"
    sets = ["--set", 'evaluate.benchmarks=[{"name": "copa", "limit": 2, "shots": 0}]', "--set", "evaluate.probes=[]"]
    fetched = tmp_path / "benchmarks"
    result = CliRunner().invoke(app, ["benchmarks", "fetch", str(config), "--out", str(fetched), *sets])
    assert result.exit_code == 0, result.output
    assert artifacts.read_manifest(fetched)["meta"]["tasks"] == ["faco_copa"]
    result = CliRunner().invoke(app, ["evaluate", str(config), "--model", str(model_artifact), "--out",
                                      str(tmp_path / "eval"), "--benchmarks", str(fetched), *sets])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval" / "scores.json").read_text())["copa"]["n"] == 2


def test_use_cache_switches_an_already_imported_datasets_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """`datasets` read HF_HUB_OFFLINE at import; use_cache still turns a hub load into an offline cache lookup."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    with hf_cache.use_cache(tmp_path, offline=True):
        assert tmp_path.resolve() / hf_cache.DATASETS == datasets.config.HF_DATASETS_CACHE
        with pytest.raises(ConnectionError, match="OfflineModeIsEnabled"):  # not cached there, and no network tried
            datasets.load_dataset("allenai/ai2_arc", "ARC-Challenge")
    assert datasets.config.HF_HUB_OFFLINE is False


def test_cache_is_keyed_on_weight_contents(
    model_artifact: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Swapped weights are evaluated afresh, never served from the cache: the key follows the weights'
    contents whether the manifest was rewritten to match them or left as it was (verification off)."""
    model = tmp_path / "cr_0.0"
    shutil.copytree(model_artifact, model)
    study = _study([{"name": "copa", "shots": 0, "limit": 4}], probes=["Why is the sky blue?"])

    def run(name: str) -> tuple[dict[str, Any], str, int]:
        out = evaluate.run(study, model, tmp_path / name)
        loads = capfd.readouterr().err.count("loading model")
        return json.loads((out / "scores.json").read_text()), (out / "probes.jsonl").read_text(), loads

    first, first_probes, loads = run("e1")
    assert loads == 1
    assert run("e1b")[2] == 0  # unchanged weights: a cache hit

    import torch
    from transformers import AutoModelForCausalLM

    zeroed = AutoModelForCausalLM.from_pretrained(model / "model")
    with torch.no_grad():
        for p in zeroed.parameters():
            p.zero_()  # every logit equal: greedy decoding answers with token 0, not the random model's
    zeroed.save_pretrained(tmp_path / "zeroed")
    weights = model / "model" / "model.safetensors"
    original, other = weights.read_bytes(), (tmp_path / "zeroed" / "model.safetensors").read_bytes()
    weights.write_bytes(other)
    manifest = artifacts.read_manifest(model)
    artifacts.write_manifest(model, manifest["kind"], [], manifest["config_hash"], manifest["meta"])
    assert artifacts.verify(model) == []
    swapped, swapped_probes, loads = run("e2")
    assert loads == 1 and swapped["copa"]["n"] == 4  # same manifest fields, new weights: evaluated afresh
    assert swapped_probes != first_probes  # the other weights answer otherwise

    # the original weights back, behind the manifest's back, with verification off: the cached result of
    # these contents (a cache keyed on the manifest would serve the swapped weights' answers)
    weights.write_bytes(original)
    monkeypatch.setenv("FACO_NO_VERIFY", "1")
    again, again_probes, loads = run("e3")
    assert loads == 0 and again_probes == first_probes and again["copa"] == first["copa"]
