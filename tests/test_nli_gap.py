"""Paper 002's gap statistic (faco.analysis.nli_gap) against hand-computed values on a fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from faco import artifact_kinds, artifacts
from faco.analysis import nli_gap
from faco.config import Study
from faco.stages import analyze, report

RATIOS = [0.0, 0.5, 1.0]
# MNLI: 4 items x 3 models (accuracy 3/4, 3/4, 1/2); HANS non-entailment: 4 items (3/4, 1/2, 1/4)
MNLI = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float)
HANS = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0], [0, 0, 0]], dtype=float)


def test_gap_per_ratio_trend_and_change_by_hand() -> None:
    res = nli_gap.subset_gap(RATIOS, MNLI, HANS, n_boot=2000, seed=0)
    assert res["hans"] == [0.75, 0.5, 0.25]
    assert res["gap"] == pytest.approx([0.0, 0.25, 0.25])
    assert res["trend"]["r"] == pytest.approx(sps.pearsonr(RATIOS, [0.0, 0.25, 0.25]).statistic)  # 0.866
    assert res["change"] == {"from": 0.0, "to": 1.0, "value": pytest.approx(0.25), "ci": res["change"]["ci"]}
    assert res["n_items"] == {"mnli": 4, "hans": 4}
    for g, (lo, hi) in zip(res["gap"], res["gap_ci"], strict=True):
        assert lo <= g <= hi and hi - lo > 0.2  # four items each: wide
    assert -1.0 <= res["trend"]["ci"][0] <= res["trend"]["r"] <= res["trend"]["ci"][1] <= 1.0


def test_intervals_resample_each_benchmark_independently() -> None:
    # MNLI without item variance: the gap's spread is HANS's alone, i.e. minus HANS's replicate means
    flat = np.ones((4, 3))
    res = nli_gap.subset_gap(RATIOS, flat, HANS, n_boot=4000, seed=0)
    assert res["gap"] == pytest.approx([0.25, 0.5, 0.75])
    # HANS column 0 (3 of 4 right): bootstrap mean of 4 Bernoulli(0.75) draws; its 2.5/97.5 % points are 0.25 and 1
    assert res["gap_ci"][0] == pytest.approx([0.0, 0.75])
    # no variance anywhere: degenerate intervals at the point values
    const = nli_gap.subset_gap(RATIOS, flat, np.zeros((5, 3)), n_boot=200, seed=0)
    assert const["gap_ci"] == [[1.0, 1.0]] * 3 and const["change"]["ci"] == [0.0, 0.0]
    assert const["trend"]["r"] is None  # a constant gap has no r
    # 16x the items, same proportions: narrower intervals
    big = nli_gap.subset_gap(RATIOS, np.tile(MNLI, (16, 1)), np.tile(HANS, (16, 1)), n_boot=2000, seed=0)
    small = nli_gap.subset_gap(RATIOS, MNLI, HANS, n_boot=2000, seed=0)
    assert big["gap"] == pytest.approx(small["gap"])
    assert all(b[1] - b[0] < s[1] - s[0] for b, s in zip(big["gap_ci"], small["gap_ci"], strict=True))


def test_verdict_and_sentence_follow_the_change_interval() -> None:
    big = nli_gap.from_items(
        RATIOS, [{f"m{i}": v for i, v in enumerate(np.tile(MNLI, (50, 1))[:, j])} for j in range(3)],
        {"non_entailment": [{f"h{i}": v for i, v in enumerate(np.tile(HANS, (50, 1))[:, j])} for j in range(3)],
         "lexical_overlap": [{"h0": 1.0}, {"h0": 0.0}, {"h0": 0.0}]}, n_boot=1000, seed=0)
    ne = big["subsets"]["non_entailment"]
    assert big["mnli"] == pytest.approx([0.75, 0.75, 0.5]) and ne["n_items"] == {"mnli": 200, "hans": 200}
    assert ne["change"]["ci"][0] > 0 and big["verdict"] == "widened"
    assert big["sentence"].startswith("Synthetic data widened the MNLI-HANS gap: the gap (MNLI acc - HANS "
                                      "non-entailment acc) went from 0.000 at 0% synthetic to 0.250 at 100%, a "
                                      "change of +0.250 (95 % item-bootstrap CI +")
    assert big["subsets"]["lexical_overlap"]["gap"] == pytest.approx([-0.25, 0.75, 0.5])
    small = nli_gap.gap_study(RATIOS, MNLI, {"non_entailment": HANS}, n_boot=1000, seed=0)
    assert small["verdict"] == "unchanged"  # four items: the interval contains 0
    two = nli_gap.subset_gap([0.0, 1.0], MNLI[:, :2], HANS[:, :2], n_boot=100, seed=0)
    assert two["trend"] == {"r": None, "ci": [None, None]} and two["change"]["value"] == pytest.approx(0.25)
    assert "did not measurably change" in nli_gap.sentence(small)
    assert nli_gap.verdict({"ci": [-0.3, -0.1]}) == "narrowed" and nli_gap.verdict({"ci": [None, None]}) == "unchanged"


def _maps(columns: list[list[float]], prefix: str) -> list[dict[str, float]]:
    """One item map per model from per-model columns of correctness."""
    return [{f"{prefix}{i}": v for i, v in enumerate(col)} for col in columns]


def test_a_narrowing_by_a_shift_of_the_predicted_label_is_said_so() -> None:
    """HANS non-entailment 20 % -> 100 % while entailment 80 % -> 0 %: the gap narrows, accuracy over both
    labels stays 50 %, and the sentence says the model answers non-entailment more, not that the blind spot closed."""
    n = 100
    mnli = _maps([[1.0] * 40 + [0.0] * 60] * 3, "m")
    non = _maps([[1.0] * (n * k // 10) + [0.0] * (n - n * k // 10) for k in (2, 6, 10)], "n")
    ent = _maps([[1.0] * (n * k // 10) + [0.0] * (n - n * k // 10) for k in (8, 4, 0)], "e")
    both = [dict(a | b) for a, b in zip(non, ent, strict=True)]
    g = nli_gap.from_items(RATIOS, mnli, {"non_entailment": non}, n_boot=1000, seed=0,
                           hans_context={"entailment": ent, "both_labels": both})
    assert g["verdict"] == "narrowed" and g["subsets"]["non_entailment"]["gap"] == pytest.approx([0.2, -0.2, -0.6])
    assert g["context"]["entailment"]["acc"] == pytest.approx([0.8, 0.4, 0.0])
    assert g["context"]["both_labels"]["acc"] == pytest.approx([0.5, 0.5, 0.5])
    ch = g["context"]["entailment"]["change"]
    assert ch["value"] == pytest.approx(-0.8) and ch["ci"][1] < 0
    assert g["context"]["both_labels"]["change"]["value"] == pytest.approx(0.0)
    assert ("HANS entailment accuracy went from 0.800 to 0.000 (change -0.800, CI " in g["sentence"]
            and "HANS both-label accuracy went from 0.500 to 0.500 (change +0.000, CI" in g["sentence"])
    assert g["sentence"].endswith("So the gap narrowed because the model answers non-entailment to more HANS items, "
                                  "a shift of its predicted label, not because the blind spot closed.")
    # the same narrowing with entailment held (both-label accuracy rises): a real improvement, no such clause
    kept = _maps([[1.0] * 80 + [0.0] * 20] * 3, "e")
    real = nli_gap.from_items(RATIOS, mnli, {"non_entailment": non}, n_boot=1000, seed=0,
                              hans_context={"entailment": kept,
                                            "both_labels": [dict(a | b) for a, b in zip(non, kept, strict=True)]})
    assert real["verdict"] == "narrowed" and "shift of its predicted label" not in real["sentence"]
    assert real["context"]["both_labels"]["change"]["value"] == pytest.approx(0.4)


def _eval_artifact(out: Path, ratio: float, mnli_right: int, hans_right: dict[str, int], seed: int | None = None
                   ) -> Path:
    """An eval artifact scoring 40 MNLI items (the first `mnli_right` right) and 40 HANS items: 20 entailment,
    then 20 non-entailment (lexical_overlap 0-9, subsequence 10-19), the first hans_right[h] of each right;
    scores.json holds the same accuracies."""
    model, pairs = out.parent / f"model_{ratio}_{seed}", out.parent / "pairs"
    if not pairs.exists():
        meta = {"backend": "transformers", "model": "smollm2"}
        with artifacts.artifact_dir(pairs, artifact_kinds.PAIRS, [], "cfg", meta):
            pass
    with artifacts.artifact_dir(model, artifact_kinds.MODEL, [pairs], "cfg", {"ratio": ratio}):
        pass
    hans_rows, correct = [], {}
    for i in range(40):
        h = None if i < 20 else "lexical_overlap" if i < 30 else "subsequence"
        ok = float(i < 20 or (i - (20 if h == "lexical_overlap" else 30)) < hans_right[str(h)])
        correct[i] = ok
        hans_rows.append({"doc_id": i, "metric": "acc", "value": ok})
        for m in (["acc_entailment"] if h is None else ["acc_non_entailment", f"acc_non_entailment_{h}"]):
            hans_rows.append({"doc_id": i, "metric": m, "value": ok})
    def entry(metrics: dict[str, float]) -> dict[str, Any]:
        first = next(iter(metrics.values()))
        return {"score": first, "metrics": {m: {"value": v, "stderr": 0.1} for m, v in metrics.items()}, "n": 40}

    non = sum(hans_right.values()) / 20
    scores = {"mnli": entry({"acc": mnli_right / 40}),
              "hans": entry({"acc": (20 + 20 * non) / 40, "acc_entailment": 1.0, "acc_non_entailment": non})}
    meta: dict[str, Any] = {"ratio": ratio} | ({"seed": seed} if seed is not None else {})
    with artifacts.artifact_dir(out, artifact_kinds.EVAL, [model], "cfg", meta) as tmp:
        (tmp / "scores.json").write_text(json.dumps(scores))
        (tmp / "samples").mkdir()
        (tmp / "samples" / "mnli.jsonl").write_text("".join(
            json.dumps({"doc_id": i, "metric": "acc", "value": float(i < mnli_right)}) + "\n" for i in range(40)))
        (tmp / "samples" / "hans.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hans_rows))
    return out


def test_analyze_writes_nli_gap_and_the_report_states_it(tmp_path: Path, smoke: Study) -> None:
    # MNLI 30/40 at every share; HANS non-entailment falls from 16/20 to 4/20: the gap widens by 0.6
    grid = {0.0: (30, {"lexical_overlap": 8, "subsequence": 8}), 0.5: (30, {"lexical_overlap": 5, "subsequence": 5}),
            1.0: (30, {"lexical_overlap": 2, "subsequence": 2})}
    evals = [_eval_artifact(tmp_path / f"eval_{r}", r, m, h) for r, (m, h) in grid.items()]
    out = analyze.run(smoke, evals, [], tmp_path / "analysis")
    g = json.loads((out / "nli_gap.json").read_text())
    ne = g["subsets"]["non_entailment"]
    assert g["mnli"] == [0.75] * 3 and ne["hans"] == [0.8, 0.5, 0.2]
    assert ne["gap"] == pytest.approx([-0.05, 0.25, 0.55]) and ne["change"]["value"] == pytest.approx(0.6)
    assert ne["trend"]["r"] == pytest.approx(1.0) and g["verdict"] == "widened"
    assert g["subsets"]["lexical_overlap"]["hans"] == [0.8, 0.5, 0.2] and set(g["subsets"]) == {
        "non_entailment", "lexical_overlap", "subsequence"}  # no constituent items: no row
    # entailment items 0-19 are right for every model; both labels: (20 + non-entailment right) / 40
    assert g["context"]["entailment"]["acc"] == [1.0] * 3
    assert g["context"]["both_labels"]["acc"] == pytest.approx([0.9, 0.75, 0.6])
    assert g["context"]["both_labels"]["change"]["value"] == pytest.approx(-0.3)
    assert "HANS entailment accuracy went from 1.000 to 1.000 (change +0.000" in g["sentence"]
    assert "shift of its predicted label" not in g["sentence"]
    md = (report.run(smoke, out, tmp_path / "report") / "report.md").read_text()
    labeller = "Synthetic labels and explanations written by the transformers model smollm2 (it labelled"
    assert f"**MNLI vs HANS.** {g['sentence']} {labeller}" in md and "Synthetic data widened the MNLI-HANS gap" in md
    section = md.split("## MNLI vs HANS (paper 002)")[1].split("\n## ")[0]
    assert "| gap (non_entailment) | -0.050 [" in section and "| MNLI acc | 0.750 | 0.750 | 0.750 |" in section
    assert "| HANS entailment acc | 1.000 | 1.000 | 1.000 | 0.000 [" in section
    assert "| HANS acc (both labels) | 0.900 | 0.750 | 0.600 | -0.300 [" in section


def test_gap_trend_against_seed_noise_by_hand() -> None:
    """Three seeds' gaps per share: the OLS slope over the 15 (share, seed) points and its two-sided t-test, by
    hand; the per-seed change from 0 % to 100 % with its t interval."""
    import math

    from faco.analysis import seed_noise

    ratios = [0.0, 0.25, 0.5, 0.75, 1.0]
    per_seed = {0: [0.10, 0.15, 0.22, 0.24, 0.31], 1: [0.05, 0.12, 0.14, 0.26, 0.28],
                2: [0.12, 0.11, 0.20, 0.21, 0.33]}

    def by_ratio(values: dict[int, list[float]]) -> dict[float, dict[int, float]]:
        return {r: {s: v[j] for s, v in values.items()} for j, r in enumerate(ratios)}

    s = seed_noise.seed_noise("MNLI-HANS gap", by_ratio(per_seed), 0.05)
    t = s.test
    xs = np.array(ratios * 3)
    ys = np.array([y for v in per_seed.values() for y in v])
    sxx = float(((xs - xs.mean()) ** 2).sum())
    slope = float(((xs - xs.mean()) * (ys - ys.mean())).sum()) / sxx
    resid = ys - (ys.mean() + slope * (xs - xs.mean()))
    se = math.sqrt(float((resid**2).sum()) / (15 - 2) / sxx)
    p = 2 * float(sps.t.sf(abs(slope / se), 13))
    assert (t.slope, t.slope_stderr, t.slope_p) == pytest.approx((slope, se, p))
    assert t.exceeds_seed_noise is True and t.n_points == 15
    assert [c.mean for c in t.cells] == pytest.approx([sum(v[j] for v in per_seed.values()) / 3 for j in range(5)])
    diffs = [v[4] - v[0] for v in per_seed.values()]
    d_mean, d_sd = sum(diffs) / 3, math.sqrt(sum((d - sum(diffs) / 3) ** 2 for d in diffs) / 2)
    assert s.change is not None and s.change.mean == pytest.approx(d_mean)
    assert s.change.ci == pytest.approx((d_mean - 4.302652729911275 * d_sd / math.sqrt(3),
                                         d_mean + 4.302652729911275 * d_sd / math.sqrt(3)))
    assert s.spread == pytest.approx(0.08)  # 0.22 - 0.14 at 50 %
    assert s.sentence.startswith("Across 3 seeds the trend of the MNLI-HANS gap exceeds seed-to-seed noise: slope")
    # seeds that disagree more than the share moves them: the trend does not exceed their noise
    noisy = seed_noise.seed_noise("MNLI-HANS gap", by_ratio({0: [0.1, 0.5, 0.0, 0.4, 0.2],
                                                             1: [0.5, 0.0, 0.45, 0.1, 0.3],
                                                             2: [0.2, 0.3, 0.1, 0.5, 0.15]}), 0.05)
    assert noisy.test.exceeds_seed_noise is False and "does not exceed seed-to-seed noise" in noisy.sentence
    one = seed_noise.seed_noise("MNLI-HANS gap", by_ratio({0: per_seed[0]}), 0.05)
    assert one.test.slope is None and one.sentence.startswith("Seed-to-seed noise of the MNLI-HANS gap is not")


def test_three_seeds_test_the_gap_trend_against_their_noise(tmp_path: Path, smoke: Study) -> None:
    """Three seeds per share: nli_gap.json carries each seed's gap (MNLI acc - HANS non-entailment acc of that seed's
    model), the slope test against seed noise (scipy's linregress over the 9 points) and the per-seed change; the
    finding and the table state them."""
    hans = {0.0: [(8, 8), (9, 7), (7, 8)], 0.5: [(5, 5), (6, 5), (4, 5)], 1.0: [(2, 2), (3, 2), (1, 2)]}
    evals = [_eval_artifact(tmp_path / f"eval_{r}_{s}", r, 30, {"lexical_overlap": lo, "subsequence": sub}, seed=s)
             for r, per in hans.items() for s, (lo, sub) in enumerate(per)]
    out = analyze.run(smoke, evals, [], tmp_path / "analysis")
    g = json.loads((out / "nli_gap.json").read_text())
    gaps = {r: [0.75 - (lo + sub) / 20 for lo, sub in per] for r, per in hans.items()}
    xs = [r for r in gaps for _ in gaps[r]]
    ys = [v for r in gaps for v in gaps[r]]
    fit = sps.linregress(xs, ys)
    test = g["seeds"]["test"]
    assert (test["slope"], test["slope_p"]) == pytest.approx((fit.slope, fit.pvalue))
    assert test["exceeds_seed_noise"] is True and test["n_points"] == 9
    assert [c["mean"] for c in test["cells"]] == pytest.approx([sum(v) / 3 for v in gaps.values()])
    diffs = [b - a for a, b in zip(gaps[0.0], gaps[1.0], strict=True)]
    assert g["seeds"]["change"]["mean"] == pytest.approx(sum(diffs) / 3)
    assert "Across 3 seeds the trend of the MNLI-HANS gap exceeds seed-to-seed noise" in g["sentence"]
    md = (report.run(smoke, out, tmp_path / "report") / "report.md").read_text()
    assert g["sentence"] in md and "| gap per seed, mean ± s.e. (slope p = " in md
