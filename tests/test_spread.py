"""The spread finding's statistics (`faco.analysis.spread`) against hand computation and scipy."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps
from study_fixture import N, entry, model, samples

from faco import artifact_kinds, artifacts
from faco.analysis import bootstrap, schema, spread
from faco.analysis.schema import StudyAnalysis
from faco.analysis.spread import Answered
from faco.config import Study
from faco.stages import analyze, report

RATIOS = [0.0, 0.5, 1.0]


def _binom_cdf(k: int, n: int, q: float) -> float:
    return sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1))


def test_below_chance_counts_answered_items_by_hand() -> None:
    b = spread.below_chance(1.0, [Answered(correct=3, parsed=40, unparsed=10)], 0.25)
    assert (b.correct, b.parsed, b.unparsed, b.acc) == (3, 40, 10, 3 / 40)
    assert b.p == pytest.approx(_binom_cdf(3, 40, 0.25))
    # Clopper-Pearson: the beta quantiles that define the exact interval
    assert b.ci == pytest.approx((sps.beta.ppf(0.025, 3, 38), sps.beta.ppf(0.975, 4, 37)))
    # several seeds: the least significant is kept, and none answered is not tested
    two = spread.below_chance(1.0, [Answered(correct=3, parsed=40, unparsed=0),
                                    Answered(correct=8, parsed=40, unparsed=0)], 0.25)
    assert (two.correct, two.seeds) == (8, 2) and two.p == pytest.approx(_binom_cdf(8, 40, 0.25))
    none = spread.below_chance(1.0, [Answered(correct=0, parsed=0, unparsed=12)], 0.25)
    assert none.p is None and none.acc is None and none.unparsed == 12


def _items(means: list[float], n: int, seed: int) -> np.ndarray:
    """n items x models of 0/1 values whose column means are close to `means`."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, len(means))) < np.array(means)).astype(float)


def test_row_is_the_item_trend_and_the_most_corrupted_model() -> None:
    values = _items([0.6, 0.4, 0.1], 120, 0)
    r = spread.row("arc_challenge@trained", RATIOS, values, [Answered(correct=5, parsed=90, unparsed=30)], 0.25,
                   n_boot=200, seed=3)
    tr = bootstrap.trend(RATIOS, values, 200, 3)
    assert (r.r, *r.r_ci, r.p) == pytest.approx((tr.r, tr.ci.low, tr.ci.high, tr.p))
    assert r.r == pytest.approx(float(sps.pearsonr(RATIOS, values.mean(axis=0)).statistic))
    assert [c.ratio for c in r.scores] == RATIOS
    assert [c.score for c in r.scores] == pytest.approx(list(values.mean(axis=0)))
    assert (r.n_items, r.at_max.ratio, r.at_max.correct) == (120, 1.0, 5)


def test_pool_stacks_items_and_sums_answers() -> None:
    a, b = _items([0.5, 0.4, 0.2], 50, 1), _items([0.3, 0.3, 0.3], 30, 2)
    pool = spread.pooled(RATIOS, [a, b], [[Answered(correct=4, parsed=40, unparsed=10)],
                                         [Answered(correct=6, parsed=20, unparsed=10)]], [0.25, 0.5], 100, 0)
    assert pool.n_items == 80 and pool.scores[0].score == pytest.approx(np.vstack([a, b])[:, 0].mean())
    assert (pool.at_max.correct, pool.at_max.parsed, pool.at_max.unparsed) == (10, 60, 20)
    assert pool.at_max.chance == pytest.approx((40 * 0.25 + 20 * 0.5) / 60)


def test_family_is_holm_and_bh_corrected() -> None:
    rows = [spread.row(f"b{i}", RATIOS, _items([0.5, 0.5, 0.5], 10, i), [Answered(correct=1, parsed=10, unparsed=0)],
                       0.25, 50, i) for i in range(3)]
    rows = [r.model_copy(update={"p": p, "r": -0.9, "at_max": r.at_max.model_copy(update={"p": q})})
            for r, p, q in zip(rows, [0.01, 0.04, 0.03], [0.001, 0.2, 0.02], strict=True)]
    out = spread.correct(rows, alpha=0.05)
    # Holm: sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    assert [r.p_holm for r in out] == pytest.approx([0.03, 0.06, 0.06])
    assert [r.q_bh for r in out] == pytest.approx(list(sps.false_discovery_control([0.01, 0.04, 0.03])))
    assert [r.trend for r in out] == ["falls", "no significant trend", "no significant trend"]
    assert [r.at_max.p_holm for r in out] == pytest.approx([0.003, 0.2, 0.04])
    assert [r.at_max.below for r in out] == [True, False, True]


def test_the_sentence_says_what_the_numbers_say() -> None:
    falls = _items([0.7, 0.4, 0.05], 200, 5)
    flat = _items([0.3, 0.3, 0.3], 200, 6)
    rows = [spread.row("arc_challenge@trained", RATIOS, falls, [Answered(correct=8, parsed=150, unparsed=50)], 0.25,
                       300, 0),
            spread.row("mmlu@trained", RATIOS, flat, [Answered(correct=45, parsed=180, unparsed=20)], 0.25, 300, 1)]
    pool = spread.pooled(RATIOS, [falls, flat], [[Answered(correct=8, parsed=150, unparsed=50)],
                                                 [Answered(correct=45, parsed=180, unparsed=20)]], [0.25, 0.25], 300, 2)
    s = spread.build(rows, pool, {"arc_challenge": "no significant trend", "mmlu": "no significant trend"}, 0.05)
    assert s.rows[0].trend == "falls" and s.rows[0].at_max.below
    assert s.rows[1].trend == "no significant trend" and not s.rows[1].at_max.below
    text = s.sentence
    assert text.startswith("Beyond the training distribution, asked in the training format (2 benchmarks, 400 items")
    assert "arc_challenge@trained (200 items): acc_gen falls with the ratio" in text
    assert "the CR 100 % model is below chance: it names the correct option in 8 of the 150 items it answered" in text
    assert "mmlu@trained (200 items): acc_gen shows no significant trend" in text
    assert "is not significantly below chance: it names the correct option in 45 of the 180" in text
    assert "50 unparseable replies left out" in text
    assert text.endswith("Scored the lm-eval way (cloze log-likelihood), the same benchmarks: arc_challenge no "
                         "significant trend; mmlu no significant trend.")
    assert spread.build([], None, {}, 0.05).sentence.startswith("No out-of-distribution benchmark")


def test_from_items_reads_item_maps() -> None:
    """Item maps (doc_id -> value) per ratio and the top model's unparsed flags become rows and a pool; the counts
    are of the items whose reply named an option."""
    rng = np.random.default_rng(9)
    acc = {b: [{f"{i}": float(rng.random() < m) for i in range(60)} for m in means]
           for b, means in (("arc_challenge@trained", [0.6, 0.4, 0.1]), ("mmlu@trained", [0.3, 0.3, 0.3]))}
    unparsed = {b: {f"{i}": float(i % 4 == 0) for i in range(60)} for b in acc}
    top = {b: [(acc[b][2], unparsed[b])] for b in acc}
    s = spread.from_items(RATIOS, acc, top, {b: 0.25 for b in acc}, {"arc_challenge": "falls"}, 100, 0, 0.05)
    assert [r.benchmark for r in s.rows] == ["arc_challenge@trained", "mmlu@trained"] and s.pool is not None
    named = [k for k in acc["mmlu@trained"][2] if unparsed["mmlu@trained"][k] == 0.0]
    at = s.rows[1].at_max
    assert (at.parsed, at.unparsed, at.correct) == (45, 15, round(sum(acc["mmlu@trained"][2][k] for k in named)))
    assert s.pool.n_items == 120 and s.pool.at_max.parsed == 90
    for row in s.rows:  # every benchmark's trend draws with the seed Table 1 uses (`bootstrap.trend`, cfg.seed)
        tr = bootstrap.trend(RATIOS, bootstrap.align(acc[row.benchmark])[1], 100, 0)
        assert (row.p, tuple(row.r_ci)) == (tr.p, (tr.ci.low, tr.ci.high)), row.benchmark
    assert spread.answered({"a": 1.0, "b": 0.0, "c": 0.0}, {"c": 1.0}) == Answered(correct=1, parsed=2, unparsed=1)


def _trained_eval(out: Path, model_dir: Path | None, correct: dict[str, list[float]],
                  unparsed: dict[str, list[float]]) -> Path:
    """An eval artifact with `<name>@trained` benchmarks (acc_gen and unparsed per item) and the lm-eval
    arc_challenge at noise."""
    meta: dict[str, Any] = {"base": True} if model_dir is None else {
        k: v for k, v in artifacts.read_manifest(model_dir)["meta"].items() if k in ("ratio", "tag", "start_ratio")}
    scores: dict[str, Any] = {}
    with artifacts.artifact_dir(out, artifact_kinds.EVAL, [model_dir] if model_dir else [], "cfg", meta) as tmp:
        (tmp / "samples").mkdir()
        for bench, acc in correct.items():
            n = len(acc)
            scores[bench] = entry(sum(acc) / n, bench) | {"n": n, "chance": 0.25,
                                                         "unparsed": sum(unparsed[bench])}
            rows = [{"doc_id": i, "metric": m, "value": v} for m, vals in (("acc_gen", acc),
                                                                           ("unparsed", unparsed[bench]))
                    for i, v in enumerate(vals)]
            (tmp / "samples" / f"{bench}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        arc = [float((i + len(out.name)) % 4 == 0) for i in range(N)]  # noise: a quarter right, items shift
        scores["arc_challenge"] = entry(sum(arc) / N, "arc_challenge")
        samples(tmp, "arc_challenge", [bool(v) for v in arc])
        (tmp / "scores.json").write_text(json.dumps(scores))
    return out


def test_analyze_and_report_state_the_spread_from_the_items(tmp_path: Path, smoke: Study) -> None:
    """Through analyze and report: the spread finding rests on the training-format benchmarks (arc falls and its
    CR 100 % model names the right option in 2 of the 30 items it answered; mmlu stays at chance), with the
    family's Holm correction, the lm-eval score of the same benchmark beside it, and a table."""
    right = {0.0: 20, 0.5: 12, 1.0: 2, "base": 0}
    models, evals = [], []
    for key in (0.0, 0.5, 1.0, "base"):
        m = None if key == "base" else model(tmp_path / "train" / f"cr_{key}", float(key))
        arc = [float(i < right[key]) for i in range(N)]
        mmlu = [float(i % 4 == 0) for i in range(N)]  # 10 of 40 at every ratio
        miss = {"arc_challenge@trained": [float(key == 1.0 and i >= 30) for i in range(N)],
                "mmlu@trained": [float(key == 1.0 and i % 4 == 1) for i in range(N)]}
        evals.append(_trained_eval(tmp_path / "eval" / f"{key}", m, {"arc_challenge@trained": arc,
                                                                    "mmlu@trained": mmlu}, miss))
        models += [m] if m else []
    out = analyze.run(smoke, evals, models, tmp_path / "analysis")
    a = schema.read(out)
    assert isinstance(a, StudyAnalysis) and a.spread is not None and a.spread.pool is not None
    arc, mmlu = a.spread.rows
    assert (arc.benchmark, arc.at_max.correct, arc.at_max.parsed, arc.at_max.unparsed) == (
        "arc_challenge@trained", 2, 30, 10)
    assert arc.at_max.p == pytest.approx(sps.binomtest(2, 30, 0.25, alternative="less").pvalue)
    assert (mmlu.at_max.correct, mmlu.at_max.parsed) == (10, 30) and not mmlu.at_max.below
    ps = [arc.at_max.p, mmlu.at_max.p, a.spread.pool.at_max.p]
    ranked = sorted(range(3), key=lambda i: ps[i])  # Holm by hand over the three
    holm = [0.0] * 3
    running = 0.0
    for rank, i in enumerate(ranked):
        running = max(running, min(1.0, (3 - rank) * ps[i]))  # type: ignore[operator]
        holm[i] = running
    assert [arc.at_max.p_holm, mmlu.at_max.p_holm, a.spread.pool.at_max.p_holm] == pytest.approx(holm)
    assert arc.trend == "falls" and arc.at_max.below and mmlu.trend == "no significant trend"
    for row in (arc, mmlu):  # one claim, one number: the spread's trend is Table 1's, to the last digit
        t = a.table[row.benchmark]
        assert (tuple(row.r_ci), row.p) == (tuple(t.pearson_ci), t.pearson_p), row.benchmark
    assert a.spread.standard == {"arc_challenge": a.table["arc_challenge"].trend}
    finding = next(f for f in a.findings.findings if f.id == "spread")
    assert finding.sentence == a.spread.sentence and finding.claim["below chance"] == 1  # type: ignore[index]
    text = (report.run(smoke, out, tmp_path / "report") / "report.md").read_text()
    assert f"- **Spread.** {a.spread.sentence}" in text
    assert "arc_challenge@trained (40 items): acc_gen falls with the ratio" in text
    assert "Spread beyond the training data: out-of-distribution benchmarks asked in the training format" in text
    assert "| arc_challenge@trained | 40 |" in text and "2/30 = 0.067" in text
