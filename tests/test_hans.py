"""HANS offline (paper 002's blind spot): the stratified mirror subset and the twin's six metrics."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from faco.config import ModelSpec, load_config
from faco.evaluation import results
from faco.evaluation.suite import suite
from faco.evaluation.tasks import render_offline, task_name
from faco.tasks.hub.faco_hans_utils import HEURISTICS, process_results, subset_mean
from faco.training.models import tiny_model

ROOT = Path(__file__).resolve().parents[1]
HANS = ROOT / "data/benchmarks/hans/validation.jsonl"
METRICS = ["acc", "acc_entailment", "acc_non_entailment", *(f"acc_non_entailment_{h}" for h in HEURISTICS)]


def _rows() -> list[dict]:
    return [json.loads(line) for line in HANS.open()]


def test_subset_is_stratified_by_subcase_and_every_prefix_too() -> None:
    rows = _rows()
    per_subcase = Counter(r["subcase"] for r in rows)
    assert len(per_subcase) == 30 and set(per_subcase.values()) == {50}
    assert Counter((r["heuristic"], r["label"]) for r in rows) == {
        (h, label): 250 for h in HEURISTICS for label in (0, 1)}
    # a subcase is all entailment or all non-entailment (HANS's design): 5 + 5 per heuristic
    assert all(len({r["label"] for r in rows if r["subcase"] == s}) == 1 for s in per_subcase)
    assert Counter(r["subcase"] for r in rows[:300]) == {s: 10 for s in per_subcase}  # a `limit` prefix
    assert len({r["pairID"] for r in rows}) == 1500


def test_provenance_names_the_file_and_the_regeneration() -> None:
    source = (HANS.parent / "SOURCE.md").read_text()
    assert hashlib.sha256(HANS.read_bytes()).hexdigest()[:16] in source
    assert "Not the released evaluation file" in source and "7299f6f6" in source
    assert "MIT License" in (HANS.parent / "LICENSE.md").read_text()
    shared = Path("/work/shared/data/hans/hans_generated_seed0.jsonl")
    if shared.is_file():  # the rows are the generator's, unchanged but for the label's encoding
        origin = {r["pairID"]: r for r in map(json.loads, shared.open())}
        for r in _rows():
            o = origin[r["pairID"]]
            assert (o["premise"], o["hypothesis"], o["subcase"]) == (r["premise"], r["hypothesis"], r["subcase"])
            assert r["label"] == (0 if o["label"] == "entailment" else 1)


def test_metric_functions_against_hand_computation() -> None:
    # four docs; log-likelihoods of (True, Neither, False): argmax 0 says entailment
    docs = [({"label": 0, "heuristic": "lexical_overlap"}, [-1.0, -2.0, -3.0]),   # ent, says ent: right
            ({"label": 1, "heuristic": "lexical_overlap"}, [-1.0, -2.0, -3.0]),   # non, says ent: wrong
            ({"label": 1, "heuristic": "subsequence"}, [-3.0, -2.0, -1.0]),       # non, says False: right
            ({"label": 1, "heuristic": "subsequence"}, [-3.0, -1.0, -2.0]),       # non, says Neither: right
            ({"label": 0, "heuristic": "constituent"}, [-2.0, -1.0, -3.0])]       # ent, says Neither: wrong
    per_doc = [process_results(d, [(ll, False) for ll in lls]) for d, lls in docs]
    assert [p["acc"] for p in per_doc] == [1.0, 0.0, 1.0, 1.0, 0.0]
    agg = {m: subset_mean([p[m] for p in per_doc]) for m in METRICS[1:]}
    assert per_doc[0]["acc_non_entailment"] is None and per_doc[2]["acc_non_entailment_lexical_overlap"] is None
    assert agg == {"acc_entailment": 0.5, "acc_non_entailment": 2 / 3, "acc_non_entailment_lexical_overlap": 0.0,
                   "acc_non_entailment_subsequence": 1.0, "acc_non_entailment_constituent": None}


def test_offline_config_accepts_hans(root: Path) -> None:
    study = load_config(root / "configs" / "smoke.yaml", overrides=["evaluate.benchmarks=[{name: mnli}, {name: hans}]"])
    assert study.evaluate.offline and task_name(suite()["hans"], offline=True) == "faco_hans_offline"
    cfg = root / "configs" / "nli-synthetic-cpu.yaml"
    result = subprocess.run([str(Path(sys.executable).parent / "faco"), "validate", str(cfg)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("2 benchmarks)"), result.stderr
    assert [b.name for b in load_config(cfg).evaluate.benchmarks] == ["mnli", "hans"]


def test_twin_runs_through_lm_eval_and_scores_as_by_hand(tmp_path: Path) -> None:
    """The rendered twin on a tiny model, 60 items (2 per subcase): lm-eval's six metrics equal the
    metrics recomputed by hand from its own per-item log-likelihoods."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    spec = ModelSpec.model_validate({"source": "tiny-random", "tiny": {"hidden_size": 32, "layers": 1, "heads": 2,
                                                                       "vocab_size": 300}})
    model, tok = tiny_model(spec, ["The doctor saw the lawyer . True False Neither Question: Answer:"] * 20, seed=0)
    tasks = tmp_path / "tasks"
    render_offline([suite()["hans"]], ROOT / "data", tasks)
    lm = HFLM(pretrained=model, tokenizer=tok, device="cpu", batch_size=16)
    res = lm_eval.simple_evaluate(model=lm, tasks=["faco_hans_offline"], num_fewshot=0, limit=60, log_samples=True,
                                  task_manager=TaskManager(include_path=str(tasks), include_defaults=False))
    assert res is not None
    got = {k.split(",")[0]: v for k, v in res["results"]["faco_hans_offline"].items() if "stderr" not in k}
    samples = res["samples"]["faco_hans_offline"]
    assert len(samples) == 60 and Counter(s["doc"]["subcase"] for s in samples) == {
        s: 2 for s in {r["subcase"] for r in _rows()}}
    right: list[float] = []
    inside: dict[str, list[float]] = {m: [] for m in METRICS[1:]}
    for s in samples:
        lls = [r[0] for r in s["filtered_resps"]]
        says_ent = lls.index(max(lls)) == 0
        ent = s["doc"]["label"] == 0
        ok = float(says_ent == ent)
        right.append(ok)
        for m in inside:
            if (m == "acc_entailment" and ent) or (m == "acc_non_entailment" and not ent) or (
                    not ent and m == f"acc_non_entailment_{s['doc']['heuristic']}"):
                inside[m].append(ok)
    assert got["acc"] == pytest.approx(sum(right) / 60)
    for m, values in inside.items():
        assert len(values) == (30 if m in ("acc_entailment", "acc_non_entailment") else 10)
        assert got[m] == pytest.approx(sum(values) / len(values)), m
    # faco's per-item samples keep each subset's items only (what analysis.nli_gap resamples)
    rows = results.samples(res, "faco_hans_offline", suite()["hans"])[""]
    assert Counter(r["metric"] for r in rows) == {"acc": 60, "acc_entailment": 30, "acc_non_entailment": 30,
                                                  **{f"acc_non_entailment_{h}": 10 for h in HEURISTICS}}
