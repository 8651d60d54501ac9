"""Analyze + report from fixture artifacts: every number checked against a hand computation."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from study_fixture import N, entry, evaluation, model, samples, study

from faco import artifact_kinds, artifacts
from faco.analysis import schema
from faco.analysis.schema import StudyAnalysis
from faco.analysis.tables import at, probe_model
from faco.config import Study
from faco.evaluation.suite import suite
from faco.stages import analyze, report


def _read(analysis: Path) -> StudyAnalysis:
    a = schema.read(analysis)
    assert isinstance(a, StudyAnalysis)
    return a


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory, smoke: Study) -> Path:
    return study(tmp_path_factory.mktemp("study"), smoke)


def _r(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))


def _binom_le(k: int, n: int, q: float) -> float:
    return sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1))


def test_table1_statistics_match_hand_computation(analysis: Path) -> None:
    a = _read(analysis)
    row = a.table["heldout"]
    assert row.scores() == {0.0: 0.6, 0.5: 0.4, 1.0: 0.1}
    assert {c.ratio: c.stderr for c in row.cells} == {0.0: 0.05, 0.5: 0.05, 1.0: 0.05}  # lm-eval's, carried
    assert (row.base.score, row.base.stderr) == (0.3, 0.05)
    assert row.abs == pytest.approx(0.5)
    assert row.pearson_r == pytest.approx(_r([0, 0.5, 1], [0.6, 0.4, 0.1]))
    assert row.n_items == N
    # nested items: every resample keeps CR 0 % >= CR 50 % >= CR 100 %, so ABS > 0 and r < 0 in every one
    assert 0 < row.abs_ci[0] <= 0.5 <= row.abs_ci[1]  # type: ignore[operator]
    assert row.pearson_ci[1] < 0  # type: ignore[operator]
    assert row.pearson_p < 0.05 and row.trend == "falls"  # type: ignore[operator]
    top = row.cell(1.0)
    assert top is not None and top.delta_vs_base == pytest.approx(-0.2)
    assert top.delta_ci[1] < 0  # type: ignore[operator]
    # the CR 100 % model: 4 of 40 right against chance 0.25
    assert row.below_chance_at_max.p_below == pytest.approx(_binom_le(4, 40, 0.25))
    # isotonic fit of (share, score) = (0, .1), (.5, .4), (1, .6) is the points; 0.54 between .5 and 1
    assert row.threshold.correct_share == pytest.approx(0.5 + (0.54 - 0.4) / 0.2 * 0.5)
    assert at(a.domain_average[suite()["arc_challenge"].domain], 0.5) == pytest.approx(0.275)


def test_heldout_per_source_rows(analysis: Path) -> None:
    a = _read(analysis)
    arc = a.table["heldout/arc"]  # items 0-19: 20, 16, 4 of them right at CR 0, 50, 100 %
    assert arc.scores() == {0.0: 1.0, 0.5: 0.8, 1.0: 0.2}
    assert arc.cells[0].stderr == 0.1 and arc.n_items == 20 and arc.chance == 0.25
    assert arc.base.score == pytest.approx(0.6)
    assert arc.trend == "falls"
    obqa = a.table["heldout/obqa"]  # items 20-39: 4, 0, 0 right
    assert obqa.scores() == {0.0: 0.2, 0.5: 0.0, 1.0: 0.0}
    assert a.findings.headline == ["heldout"]


def test_noise_level_differences_are_no_trend(analysis: Path) -> None:
    arc = _read(analysis).table["arc_challenge"]
    assert arc.pearson_ci[0] < 0 < arc.pearson_ci[1]  # type: ignore[operator]
    assert arc.pearson_p > 0.05 and arc.trend == "no significant trend"  # type: ignore[operator]
    rec = arc.recovery_from(1.0)
    assert rec is not None
    assert rec.gap == pytest.approx(0.025) and rec.gap_ci[0] < 0 < rec.gap_ci[1]  # type: ignore[operator]
    assert rec.recovered_fraction is None and rec.status == "undefined"


def test_recovery_detection_chance_and_epochs(analysis: Path) -> None:
    a = _read(analysis)
    rec = a.table["heldout"].recovery_from(1.0)
    assert rec is not None
    assert [(s.from_ratio, s.benchmarks) for s in a.recovery] == [
        (1.0, {b: r for b, row in a.table.items() if (r := row.recovery_from(1.0)) is not None})]
    assert rec.recovered_fraction == pytest.approx((0.5 - 0.1) / (0.6 - 0.1))
    assert rec.status == "partial" and rec.fraction_ci[0] <= 0.8 <= rec.fraction_ci[1]  # type: ignore[operator]
    # the grid models' per-sample loss as a detector: losses 3.0 (corrupted), 2.0, 1.5 (corrupted), 1.0 at
    # CR 50 %; CR 0 % and 100 % have one class only, so no row
    found = {(d.ratio, d.epoch): d for d in a.detection if d.detector == "grid_loss"}
    assert set(found) == {(0.5, 1)}
    d = found[(0.5, 1)]
    assert (d.n, d.corrupted) == (4, 2)
    assert d.auroc.value == pytest.approx(3 / 4)  # 3 of 4 (corrupted, clean) pairs ranked right
    assert d.average_precision.value == pytest.approx(1 / 2 * 1 + 1 / 2 * 2 / 3)  # recall steps at ranks 1 and 3
    assert d.precision_at_k.value == pytest.approx(1 / 2)  # top 2: 3.0 (corrupted), 2.0 (clean)
    for m in (d.auroc, d.average_precision, d.precision_at_k):
        assert m.ci[0] is not None and m.ci[1] is not None and m.ci[0] <= m.value <= m.ci[1]  # type: ignore[operator]
    lies = next(m for m in a.below_chance if m.model.ratio == 1.0)
    assert lies.subjects["abstract_algebra"].p_below == pytest.approx(0.75 ** 20)
    p_anat = _binom_le(5, 20, 0.25)
    # two tests: Holm multiplies the smallest by 2, BH the largest by 2/2
    assert lies.subjects["abstract_algebra"].p_holm == pytest.approx(2 * 0.75 ** 20)
    assert lies.subjects["anatomy"].p_holm == pytest.approx(p_anat)
    assert lies.subjects["anatomy"].q_bh == pytest.approx(p_anat)
    assert lies.significantly_below == ["abstract_algebra"]
    assert lies.overall.p_below == pytest.approx(_binom_le(5, 40, 0.25))
    assert "base" in {m.model.role for m in a.below_chance}
    assert {e.epoch: e.value for e in a.epoch_average[0].epochs} == {1: pytest.approx(0.1), 2: pytest.approx(0.2)}
    assert a.epoch_average[0].ratio == 0.0
    assert {probe_model(p) for p in a.probes} == {"0", "0.5", "1", "recovered from 1", "base"}
    final = a.final_train_loss
    assert {v.ratio: v.value for v in final.step_loss} == {0.0: 1.0, 0.5: 1.5, 1.0: 2.0}
    assert {v.ratio: v.value for v in final.sample_loss} == {
        0.0: pytest.approx(1.0), 0.5: pytest.approx(1.875), 1.0: pytest.approx(2.75)}
    assert final.pearson_r == pytest.approx(_r([0, 0.5, 1], [1.0, 1.875, 2.75]))


def test_findings_and_metrics_files(analysis: Path) -> None:
    f = json.loads((analysis / "findings.json").read_text())
    assert f["headline"] == ["heldout"]
    by_id = {x["id"]: x for x in f["findings"]}
    assert by_id["F1"]["claim"] == "falls" and "heldout:" in by_id["F1"]["sentence"]
    assert "falls with the corruption ratio (0.60 at CR 0 % to 0.10 at CR 100 %; base model 0.30)" in (
        by_id["F1"]["sentence"])
    assert by_id["F2"]["claim"] == "below chance"
    assert f"p = {_binom_le(4, 40, 0.25):.2g}" in by_id["F2"]["sentence"]
    assert "4 of 40 correct" in by_id["F2"]["sentence"]
    assert "3 unparseable replies counted wrong" in by_id["F2"]["sentence"]
    assert by_id["F3"]["claim"] in ("rises", "no significant trend")  # 4 training samples: a test, not a given
    assert "rises" in by_id["F3"]["sentence"] or "no significant trend" in by_id["F3"]["sentence"]
    assert by_id["F4"]["claim"] == "partial" and "closes 0.80 of the clean-vs-corrupted gap" in by_id["F4"]["sentence"]
    assert by_id["spread"]["claim"]["no significant trend"] == 1
    assert "arc_challenge" in by_id["spread"]["sentence"]
    assert by_id["detection"]["claim"] == "grid_loss" and by_id["detection"]["sentence"].startswith(
        "At CR 50 %, the best detector of the 2 corrupted of 4 samples is grid_loss: AUROC 0.75 (95 % CI [")
    metrics = json.loads((analysis / "metrics.json").read_text())
    assert metrics["heldout"]["abs"] == pytest.approx(0.5)
    assert metrics["heldout"]["recovery"] == pytest.approx(0.8)
    assert metrics["arc_challenge"]["recovery"] is None
    assert set(metrics["arc_challenge"]) == {"r", "p", "abs", "recovery"}
    assert set(metrics) == {"arc_challenge", "heldout", "mmlu"}  # no heldout/<source> rows


def test_report_opens_with_findings_tables_figures_and_lineage(analysis: Path, smoke: Study, tmp_path: Path) -> None:
    out = report.run(smoke, analysis, tmp_path / "report")
    assert artifacts.verify(out) == []
    md = (out / "report.md").read_text()
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    assert sections[0] == "Findings" and sections[1].startswith("Table 1")
    findings = md.split("## Findings")[1].split("\n## ")[0]
    assert "**F1.** heldout: acc" in findings or "**F1.** heldout:" in findings
    assert "undefined" not in findings  # heldout's recovery is defined
    assert "[-1.00, 1.00]" not in md
    assert "| 0.600 ± 0.050 | 0.400 ± 0.050 | 0.100 ± 0.050 | 0.500 [" in md  # Table 1 heldout row
    assert "| base (untrained) |" in md  # the base row
    assert "| heldout | 0.600 ± 0.050 | 0.100 ± 0.050 | 0.500 ± 0.050 | 0.500 [" in md  # recovery table
    assert "undefined: clean ≈ corrupted within noise" in md  # arc recovery
    assert "| abstract_algebra | 0.000 | 20 |" in md and "| anatomy |" not in md
    assert "| 1 | case_study | What is 2+2? | 6 |" in md
    assert "| CR 50% | grid_loss | 1 | 0.75 [" in md  # the detector table
    assert "- **Detectors.** At CR 50 %, the best detector" in findings
    # figures in the paper's order, each a real PNG, each inlined in the HTML
    order = re.findall(r"\]\(figures/([a-z_]+\.png)\)", md)
    assert order == [f for f in report.FIGURE_CAPTIONS if f != "cleaning.png"]  # no train.clean in this study
    html = (out / "report.html").read_text()
    assert html.index("<h2>Findings</h2>") < html.index("<h2>Table 1")
    inlined = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(inlined) == 6
    for name, data in zip(order, inlined, strict=True):
        assert base64.b64decode(data) == (out / "figures" / name).read_bytes()
        assert matplotlib.image.imread(out / "figures" / name).shape[0] > 200
    # the lineage table names every evaluation and model the analysis read, by manifest hash
    parents = artifacts.read_manifest(analysis)["parents"]
    assert len(parents) == 9
    for p in parents:
        assert f"| {p['kind']} | {p['path']} | {p['manifest_sha256'][:16]} |" in md


def test_faco_report_prints_the_findings(analysis: Path, root: Path, tmp_path: Path) -> None:
    """The installed `faco report` says what was found on stdout, the report's own sentences."""
    out = tmp_path / "report"
    faco = str(Path(sys.executable).with_name("faco"))
    proc = subprocess.run([faco, "report", str(root / "configs" / "smoke.yaml"), "--analysis", str(analysis),
                           "--out", str(out)], capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()  # that and nothing else
    assert lines[0] == "Findings:", proc.stdout[:2000]
    assert lines[-1] == f"report: {out / 'report.md'}"
    said = lines[1:-1]
    md = (out / "report.md").read_text().split("## Findings")[1].split("\n## ")[0]
    assert said == [line.replace("**", "") for line in md.splitlines() if line.startswith("- **")]
    assert said[0].startswith("- F1. heldout:") and "**" not in proc.stdout


def test_without_heldout_every_benchmark_is_a_headline(tmp_path: Path, smoke: Study) -> None:
    f = json.loads((study(tmp_path, smoke, heldout=False) / "findings.json").read_text())
    assert f["headline"] == ["arc_challenge", "mmlu"]
    f1 = [x for x in f["findings"] if x["id"] == "F1"]
    assert [x["claim"] for x in f1] == ["no significant trend", "not tested"]  # mmlu: at CR 100 % only
    assert "not tested: it was not evaluated at every ratio" in f1[1]["sentence"]
    assert not any(x["id"] == "spread" for x in f["findings"])


def test_without_items_nothing_is_claimed(tmp_path: Path, smoke: Study) -> None:
    a = _read(study(tmp_path, smoke, items=False))
    row = a.table["heldout"]
    assert row.pearson_ci == (None, None) and row.pearson_p is None and row.trend is None
    assert row.recovery[0].from_ratio == 1.0 and row.recovery[0].status == "undefined"
    claims = {x.id: x for x in a.findings.findings}
    assert claims["F1"].claim == "not tested" and claims["F2"].claim == "not tested"
    assert claims["F4"].claim == "undefined"
    assert "not tested: the evaluations carry no per-item results" in claims["F1"].sentence


def test_seeds_mean_se_and_slope_against_scipy(tmp_path: Path, smoke: Study) -> None:
    """Three seeds per ratio: per-cell mean ± s.e. across seeds, and a slope test over the seed scores."""
    from scipy import stats as sps

    per_seed = {0.0: [24, 22, 26], 0.5: [16, 18, 15], 1.0: [4, 6, 5]}  # heldout correct of 40, seeds 0-2
    models, evals = [], []
    for r, counts in per_seed.items():
        for seed, count in enumerate(counts):
            m = model(tmp_path / "train" / f"s{seed}_{r}", r)
            with artifacts.artifact_dir(tmp_path / "eval" / f"s{seed}_{r}", artifact_kinds.EVAL, [m], "cfg",
                                        {"ratio": r, "seed": seed}) as tmp:
                held = [i < count for i in range(N)]
                scored = entry(count / N, "heldout", 0.07) | {"chance": 0.25}
                (tmp / "scores.json").write_text(json.dumps({"heldout": scored}))
                samples(tmp, "heldout", held)
            models.append(m)
            evals.append(tmp_path / "eval" / f"s{seed}_{r}")
    a = _read(analyze.run(smoke, evals, models, tmp_path / "analysis"))
    assert a.seeds == [0, 1, 2]
    row = a.table["heldout"]
    assert row.score(0.5) == pytest.approx(49 / 3 / N)  # mean over seeds
    assert row.seeds is not None
    cell = next(c for c in row.seeds.cells if c.ratio == 0.5)
    scores = [c / N for c in per_seed[0.5]]
    assert cell.mean == pytest.approx(sum(scores) / 3)
    assert cell.se == pytest.approx(sps.sem(scores))
    xs = [r for r in per_seed for _ in range(3)]
    fit = sps.linregress(xs, [c / N for r in per_seed for c in per_seed[r]])
    assert row.seeds.slope == pytest.approx(fit.slope)
    assert row.seeds.slope_p == pytest.approx(fit.pvalue)
    assert row.seeds.exceeds_seed_noise is True
    f1 = next(x for x in a.findings.findings if x.id == "F1")
    assert "Across 3 seeds the ratio effect exceeds seed-to-seed noise" in f1.sentence
    f2 = next(x for x in a.findings.findings if x.id == "F2")
    assert f2.statistic["correct"] == 6 and f2.statistic["seeds"] == 3  # seed 1's 6 of 40: largest p
    assert f2.statistic["p_below"] == pytest.approx(sps.binomtest(6, 40, 0.25, alternative="less").pvalue)
    assert "(the least significant of 3 seeds)" in f2.sentence
    md = (report.run(smoke, tmp_path / "analysis", tmp_path / "report") / "report.md").read_text()
    seeds = md.split("## Seeds")[1].split("\n## ")[0]
    assert f"| {cell.mean:.3f} ± {cell.se:.3f} (n=3) |" in seeds and "| yes |" in seeds


def test_two_ratios_are_a_paired_permutation_test(tmp_path: Path, smoke: Study) -> None:
    """With CR 0 % and CR 100 % only, the trend p is the paired test of their difference."""
    models, evals = [], []
    for r in (0.0, 1.0):
        models.append(model(tmp_path / "train" / f"cr_{r}", r))
        evals.append(evaluation(tmp_path / "eval" / f"cr_{r}", models[-1], r))
    row = _read(analyze.run(smoke, evals, models, tmp_path / "analysis")).table["heldout"]
    assert row.pearson_r == pytest.approx(-1.0)
    # 20 items differ (right at CR 0 %, wrong at CR 100 %): a swap flips each with probability 1/2, so
    # only the all-unswapped and all-swapped relabelings reach |slope|: p = 2^-19, floored at 1/(B + 1)
    assert row.pearson_p == pytest.approx(1 / (smoke.analyze.bootstrap + 1))
    assert row.trend == "falls"


def test_f1_says_so_when_every_model_scored_every_item_alike() -> None:
    """No item differs between models: no trend to measure, and no interval is claimed for r."""
    from faco.analysis import findings
    from faco.analysis.schema import BaseScore, BenchmarkRow, Cell

    row = BenchmarkRow.model_construct(
        cells=[Cell(ratio=r, score=0.3, stderr=None, score_ci=None, delta_vs_base=None) for r in (0.0, 0.5, 1.0)],
        base=BaseScore(), metric="acc_norm", n_items=50, trend="no significant trend", pearson_r=None,
        pearson_ci=(None, None), pearson_p=1.0, seeds=None)
    f1 = findings._f1("arc_challenge", row, 3)
    assert f1.sentence == ("arc_challenge: every model scored each of the 50 items the same (0.30 at CR 0 % to "
                              "0.30 at CR 100 %), so there is no trend to measure (Pearson r undefined, permutation "
                              "p = 1).")
    mixed = findings._f1("arc_challenge", row.model_copy(update={"pearson_ci": (-0.87, 0.87)}), 3).sentence
    assert "Pearson r = undefined (the same score at every ratio), 95 % item-bootstrap CI [-0.87, +0.87]" in mixed
