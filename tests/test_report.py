"""Analyze + report from fixture artifacts: every number checked against a hand computation."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from faco import artifact_kinds, artifacts
from faco.config import Study
from faco.evaluation.suite import suite
from faco.stages import analyze, report

N = 40  # items per benchmark
#: heldout (the training distribution): correct items per model; item i is right iff i < count (nested)
HELDOUT = {0.0: 24, 0.5: 16, 1.0: 4, "base": 12, "recovered": 20}
#: arc_challenge: noise level, 9 to 11 of 40 right, on different items for every model
ARC = {0.0: 0.25, 0.5: 0.275, 1.0: 0.225, "base": 0.25, "recovered": 0.25}
ARC_OFFSET = {0.0: 0, 0.5: 7, 1.0: 13, "base": 21, "recovered": 29}
SUBJECTS = {"abstract_algebra": 0.0, "anatomy": 0.25}  # MMLU accuracy per subject at CR 100 %, n = 20 each
# per-sample losses, epoch 1: (loss, is_corrupted); at CR 50 % 3 of 4 (corrupted, clean) pairs ranked right
SAMPLES = {0.0: [(1.0, False), (1.2, False), (0.8, False), (1.0, False)],
           0.5: [(1.0, False), (2.0, False), (3.0, True), (1.5, True)],
           1.0: [(2.5, True), (2.9, True), (3.1, True), (2.5, True)]}


def _metric(bench: str) -> str:
    group = bench.partition("/")[0]
    return suite()[group].metrics[0] if group in suite() else "acc"


def _model(out: Path, ratio: float, start: Path | None = None) -> Path:
    meta: dict[str, Any] = {"ratio": ratio, "tag": f"cr_{round(ratio * 100):03d}"}
    if start is not None:
        meta |= {"start_ratio": 1.0, "start_checkpoint": {"path": str(start)}}
    with artifacts.artifact_dir(out, artifact_kinds.MODEL, [], "cfg", meta) as tmp:
        (tmp / "loss.jsonl").write_text("".join(json.dumps({"step": s, "loss": 3.0 - s + ratio}) + "\n"
                                                for s in (1, 2)))
        rows = SAMPLES[ratio] if start is None else SAMPLES[0.0]
        (tmp / "sample_loss.jsonl").write_text("".join(
            json.dumps({"epoch": 1, "id": str(i), "loss": loss, "is_corrupted": bad}) + "\n"
            for i, (loss, bad) in enumerate(rows)))
    return out


def _entry(score: float, bench: str, stderr: float | None = 0.05) -> dict[str, Any]:
    return {"score": score, "metrics": {_metric(bench): {"value": score, "stderr": stderr}}, "n": N}


def _samples(tmp: Path, bench: str, correct: list[bool]) -> None:
    (tmp / "samples" / bench).parent.mkdir(parents=True, exist_ok=True)
    (tmp / "samples" / f"{bench}.jsonl").write_text("".join(
        json.dumps({"doc_id": i, "metric": _metric(bench), "value": float(c)}) + "\n" for i, c in enumerate(correct)))


def _eval(out: Path, model: Path | None, key: float | str, heldout: bool = True, items: bool = True) -> Path:
    """An eval artifact of the model `key` (a ratio, "base" or "recovered") with per-item samples."""
    if model is None:
        meta: dict[str, Any] = {"base": True}
        parents: list[Path] = []
    else:
        meta = {k: v for k, v in artifacts.read_manifest(model)["meta"].items()
                if k in ("ratio", "tag", "start_ratio")}
        parents = [model]
    arc = [(i + ARC_OFFSET[key]) % N < ARC[key] * N for i in range(N)]
    held = [i < HELDOUT[key] for i in range(N)]
    scores: dict[str, Any] = {"arc_challenge": _entry(sum(arc) / N, "arc_challenge")}
    halves = {"arc": held[: N // 2], "obqa": held[N // 2:]}  # two training sources: items 0-19 and 20-39
    if heldout:
        scores["heldout"] = _entry(sum(held) / N, "heldout") | {"chance": 0.25, "unparsed": 3, "subtasks": {
            src: {"metrics": {_metric("heldout"): {"value": sum(h) / len(h), "stderr": 0.1}}, "n": len(h),
                  "chance": 0.25} for src, h in halves.items()}}
    if key in (0.0, 0.5, 1.0):
        scores["epochs"] = {"1": {"arc_challenge": 0.1}, "2": {"arc_challenge": 0.2}}
    if key in (1.0, "base"):
        mmlu = SUBJECTS if key == 1.0 else {"abstract_algebra": 0.3, "anatomy": 0.35}
        scores["mmlu"] = {**_entry(sum(mmlu.values()) / len(mmlu), "mmlu"),
                          "subtasks": {s: {"metrics": {"acc": {"value": a, "stderr": None}}, "n": 20}
                                       for s, a in mmlu.items()}}
    with artifacts.artifact_dir(out, artifact_kinds.EVAL, parents, "cfg", meta) as tmp:
        (tmp / "scores.json").write_text(json.dumps(scores))
        if items:
            _samples(tmp, "arc_challenge", arc)
            if heldout:
                _samples(tmp, "heldout", held)
                for src, h in halves.items():
                    _samples(tmp, f"heldout/{src}", h)
        label = 2 if key == "base" else 3 if key == "recovered" else key
        (tmp / "probes.jsonl").write_text(json.dumps({"set": "case_study", "question": "What is 2+2?",
                                                      "answer": f"{int(4 + float(label) * 2)}"}) + "\n")
    return out


def _study(root: Path, smoke: Study, heldout: bool = True, items: bool = True) -> Path:
    models, evals = [], []
    for r in (0.0, 0.5, 1.0):
        models.append(_model(root / "train" / f"cr_{r}", r))
        evals.append(_eval(root / "eval" / f"cr_{r}", models[-1], r, heldout, items))
    rec = _model(root / "train" / "recovery", 0.0, start=models[-1])
    evals.append(_eval(root / "eval" / "recovery", rec, "recovered", heldout, items))
    evals.append(_eval(root / "eval" / "base", None, "base", heldout, items))
    study = smoke.model_copy(update={"analyze": smoke.analyze.model_copy(update={"threshold_fraction": 0.9})})
    return analyze.run(study, evals, [*models, rec], root / "analysis")


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory, smoke: Study) -> Path:
    return _study(tmp_path_factory.mktemp("study"), smoke)


def _r(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))


def _binom_le(k: int, n: int, q: float) -> float:
    return sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1))


def test_table1_statistics_match_hand_computation(analysis: Path) -> None:
    a = json.loads((analysis / "analysis.json").read_text())
    row = a["table"]["heldout"]
    assert row["scores"] == {"0": 0.6, "0.5": 0.4, "1": 0.1}
    assert row["stderr"] == {"0": 0.05, "0.5": 0.05, "1": 0.05}  # lm-eval's, carried
    assert row["base"] == {"score": 0.3, "stderr": 0.05}
    assert row["abs"] == pytest.approx(0.5)
    assert row["pearson_r"] == pytest.approx(_r([0, 0.5, 1], [0.6, 0.4, 0.1]))
    assert row["n_items"] == N
    # nested items: every resample keeps CR 0 % >= CR 50 % >= CR 100 %, so ABS > 0 and r < 0 in every one
    assert 0 < row["abs_ci"][0] <= 0.5 <= row["abs_ci"][1]
    assert row["pearson_ci"][1] < 0
    assert row["pearson_p"] < 0.05 and row["trend"] == "falls"
    assert row["delta_vs_base"]["1"]["delta"] == pytest.approx(-0.2)
    assert row["delta_vs_base"]["1"]["ci"][1] < 0
    # the CR 100 % model: 4 of 40 right against chance 0.25
    assert row["below_chance_at_max"]["p_below"] == pytest.approx(_binom_le(4, 40, 0.25))
    # isotonic fit of (share, score) = (0, .1), (.5, .4), (1, .6) is the points; 0.54 between .5 and 1
    assert row["threshold"]["correct_share"] == pytest.approx(0.5 + (0.54 - 0.4) / 0.2 * 0.5)
    assert a["domain_average"][suite()["arc_challenge"].domain]["0.5"] == pytest.approx(0.275)


def test_heldout_per_source_rows(analysis: Path) -> None:
    a = json.loads((analysis / "analysis.json").read_text())
    arc = a["table"]["heldout/arc"]  # items 0-19: 20, 16, 4 of them right at CR 0, 50, 100 %
    assert arc["scores"] == {"0": 1.0, "0.5": 0.8, "1": 0.2}
    assert arc["stderr"]["0"] == 0.1 and arc["n_items"] == 20 and arc["chance"] == 0.25
    assert arc["base"]["score"] == pytest.approx(0.6)
    assert arc["trend"] == "falls"
    obqa = a["table"]["heldout/obqa"]  # items 20-39: 4, 0, 0 right
    assert obqa["scores"] == {"0": 0.2, "0.5": 0.0, "1": 0.0}
    assert a["findings"]["headline"] == ["heldout"]


def test_noise_level_differences_are_no_trend(analysis: Path) -> None:
    a = json.loads((analysis / "analysis.json").read_text())
    arc = a["table"]["arc_challenge"]
    assert arc["pearson_ci"][0] < 0 < arc["pearson_ci"][1]
    assert arc["pearson_p"] > 0.05 and arc["trend"] == "no significant trend"
    rec = arc["recovery"]["1"]
    assert rec["gap"] == pytest.approx(0.025) and rec["gap_ci"][0] < 0 < rec["gap_ci"][1]
    assert rec["recovered_fraction"] is None and rec["status"] == "undefined"


def test_recovery_detection_chance_and_epochs(analysis: Path) -> None:
    a = json.loads((analysis / "analysis.json").read_text())
    rec = a["table"]["heldout"]["recovery"]["1"]
    assert a["recovery"] == [{"from_ratio": 1.0, "benchmarks": {b: a["table"][b]["recovery"]["1"]
                                                                for b in a["table"] if a["table"][b]["recovery"]}}]
    assert rec["recovered_fraction"] == pytest.approx((0.5 - 0.1) / (0.6 - 0.1))
    assert rec["status"] == "partial" and rec["fraction_ci"][0] <= 0.8 <= rec["fraction_ci"][1]
    assert a["corruption_detection_auroc"]["0.5"]["1"] == pytest.approx(0.75)
    assert a["corruption_detection_auroc"]["0"]["1"] is None  # no corrupted sample: undefined
    lies = a["below_chance"]["1"]
    assert lies["subjects"]["abstract_algebra"]["p_below"] == pytest.approx(0.75 ** 20)
    p_anat = _binom_le(5, 20, 0.25)
    # two tests: Holm multiplies the smallest by 2, BH the largest by 2/2
    assert lies["subjects"]["abstract_algebra"]["p_holm"] == pytest.approx(2 * 0.75 ** 20)
    assert lies["subjects"]["anatomy"]["p_holm"] == pytest.approx(p_anat)
    assert lies["subjects"]["anatomy"]["q_bh"] == pytest.approx(p_anat)
    assert lies["significantly_below"] == ["abstract_algebra"]
    assert lies["overall"]["p_below"] == pytest.approx(_binom_le(5, 40, 0.25))
    assert "base" in a["below_chance"]
    assert a["epoch_average"]["0"] == {"1": pytest.approx(0.1), "2": pytest.approx(0.2)}
    assert {p["model"] for p in a["probes"]} == {"0", "0.5", "1", "recovered from 1", "base"}
    final = a["final_train_loss"]
    assert final["step_loss"] == {"0": 1.0, "0.5": 1.5, "1": 2.0}
    assert final["sample_loss"] == {"0": pytest.approx(1.0), "0.5": pytest.approx(1.875), "1": pytest.approx(2.75)}
    assert final["pearson_r"] == pytest.approx(_r([0, 0.5, 1], [1.0, 1.875, 2.75]))


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
    # figures in the paper's order, each a real PNG, each inlined in the HTML
    order = re.findall(r"\]\(figures/([a-z_]+\.png)\)", md)
    assert order == list(report.FIGURE_CAPTIONS)
    html = (out / "report.html").read_text()
    assert html.index("<h2>Findings</h2>") < html.index("<h2>Table 1")
    inlined = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(inlined) == 5
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
    f = json.loads((_study(tmp_path, smoke, heldout=False) / "findings.json").read_text())
    assert f["headline"] == ["arc_challenge", "mmlu"]
    f1 = [x for x in f["findings"] if x["id"] == "F1"]
    assert [x["claim"] for x in f1] == ["no significant trend", "not tested"]  # mmlu: at CR 100 % only
    assert "not tested: it was not evaluated at every ratio" in f1[1]["sentence"]
    assert not any(x["id"] == "spread" for x in f["findings"])


def test_without_items_nothing_is_claimed(tmp_path: Path, smoke: Study) -> None:
    a = json.loads((_study(tmp_path, smoke, items=False) / "analysis.json").read_text())
    row = a["table"]["heldout"]
    assert row["pearson_ci"] == [None, None] and row["pearson_p"] is None and row["trend"] is None
    assert row["recovery"]["1"]["status"] == "undefined"
    claims = {x["id"]: x for x in a["findings"]["findings"]}
    assert claims["F1"]["claim"] == "not tested" and claims["F2"]["claim"] == "not tested"
    assert claims["F4"]["claim"] == "undefined"
    assert "not tested: the evaluations carry no per-item results" in claims["F1"]["sentence"]


def test_seeds_mean_se_and_slope_against_scipy(tmp_path: Path, smoke: Study) -> None:
    """Three seeds per ratio: per-cell mean ± s.e. across seeds, and a slope test over the seed scores."""
    from scipy import stats as sps

    per_seed = {0.0: [24, 22, 26], 0.5: [16, 18, 15], 1.0: [4, 6, 5]}  # heldout correct of 40, seeds 0-2
    models, evals = [], []
    for r, counts in per_seed.items():
        for seed, count in enumerate(counts):
            m = _model(tmp_path / "train" / f"s{seed}_{r}", r)
            with artifacts.artifact_dir(tmp_path / "eval" / f"s{seed}_{r}", artifact_kinds.EVAL, [m], "cfg",
                                        {"ratio": r, "seed": seed}) as tmp:
                held = [i < count for i in range(N)]
                entry = _entry(count / N, "heldout", 0.07) | {"chance": 0.25}
                (tmp / "scores.json").write_text(json.dumps({"heldout": entry}))
                _samples(tmp, "heldout", held)
            models.append(m)
            evals.append(tmp_path / "eval" / f"s{seed}_{r}")
    a = json.loads((analyze.run(smoke, evals, models, tmp_path / "analysis") / "analysis.json").read_text())
    assert a["seeds"] == [0, 1, 2]
    row = a["table"]["heldout"]
    assert row["scores"]["0.5"] == pytest.approx(49 / 3 / N)  # mean over seeds
    cell = row["seeds"]["cells"]["0.5"]
    scores = [c / N for c in per_seed[0.5]]
    assert cell["mean"] == pytest.approx(sum(scores) / 3)
    assert cell["se"] == pytest.approx(sps.sem(scores))
    xs = [r for r in per_seed for _ in range(3)]
    fit = sps.linregress(xs, [c / N for r in per_seed for c in per_seed[r]])
    assert row["seeds"]["slope"] == pytest.approx(fit.slope)
    assert row["seeds"]["slope_p"] == pytest.approx(fit.pvalue)
    assert row["seeds"]["exceeds_seed_noise"] is True
    f1 = next(x for x in a["findings"]["findings"] if x["id"] == "F1")
    assert "Across 3 seeds the ratio effect exceeds seed-to-seed noise" in f1["sentence"]
    f2 = next(x for x in a["findings"]["findings"] if x["id"] == "F2")
    assert f2["statistic"]["correct"] == 6 and f2["statistic"]["seeds"] == 3  # seed 1's 6 of 40: largest p
    assert f2["statistic"]["p_below"] == pytest.approx(sps.binomtest(6, 40, 0.25, alternative="less").pvalue)
    assert "(the least significant of 3 seeds)" in f2["sentence"]
    md = (report.run(smoke, tmp_path / "analysis", tmp_path / "report") / "report.md").read_text()
    seeds = md.split("## Seeds")[1].split("\n## ")[0]
    assert f"| {cell['mean']:.3f} ± {cell['se']:.3f} (n=3) |" in seeds and "| yes |" in seeds


def test_two_ratios_are_a_paired_permutation_test(tmp_path: Path, smoke: Study) -> None:
    """With CR 0 % and CR 100 % only, the trend p is the paired test of their difference."""
    models, evals = [], []
    for r in (0.0, 1.0):
        models.append(_model(tmp_path / "train" / f"cr_{r}", r))
        evals.append(_eval(tmp_path / "eval" / f"cr_{r}", models[-1], r))
    a = json.loads((analyze.run(smoke, evals, models, tmp_path / "analysis") / "analysis.json").read_text())
    row = a["table"]["heldout"]
    assert row["pearson_r"] == pytest.approx(-1.0)
    # 20 items differ (right at CR 0 %, wrong at CR 100 %): a swap flips each with probability 1/2, so
    # only the all-unswapped and all-swapped relabelings reach |slope|: p = 2^-19, floored at 1/(B + 1)
    assert row["pearson_p"] == pytest.approx(1 / (smoke.analyze.bootstrap + 1))
    assert row["trend"] == "falls"


def test_f1_says_so_when_every_model_scored_every_item_alike() -> None:
    """No item differs between models: no trend to measure, and no interval is claimed for r."""
    from faco.analysis import findings

    row = {"scores": {"0": 0.3, "0.5": 0.3, "1": 0.3}, "metric": "acc_norm", "n_items": 50,
           "trend": "no significant trend", "pearson_r": None, "pearson_ci": [None, None], "pearson_p": 1.0}
    f1 = findings._f1("arc_challenge", row, 3)
    assert f1["sentence"] == ("arc_challenge: every model scored each of the 50 items the same (0.30 at CR 0 % to "
                              "0.30 at CR 100 %), so there is no trend to measure (Pearson r undefined, permutation "
                              "p = 1).")
    mixed = findings._f1("arc_challenge", row | {"pearson_ci": [-0.87, 0.87]}, 3)["sentence"]
    assert "Pearson r = undefined (the same score at every ratio), 95 % item-bootstrap CI [-0.87, +0.87]" in mixed
