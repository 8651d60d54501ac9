"""Analyze: all evaluations and training logs -> Table 1, statistics and figures."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from faco import artifacts
from faco.analysis import figures, stats
from faco.config import Study
from faco.errors import ArtifactError
from faco.evaluation.suite import suite
from faco.progress import log
from faco.records import write_json
from faco.stages import evaluate, train

KIND = "analysis"


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _benchmarks(scores: dict[str, Any]) -> dict[str, Any]:
    """The per-benchmark entries of a scores.json (without the `epochs` block)."""
    return {k: v for k, v in scores.items() if k != "epochs"}


def score_table(evals: list[Path]) -> tuple[dict[str, dict[float, float]], list[dict[str, Any]]]:
    """benchmark -> ratio -> score for the corruption grid, and the recovery evaluations apart."""
    table: dict[str, dict[float, float]] = defaultdict(dict)
    recovered = []
    for path in evals:
        manifest = artifacts.require(path, evaluate.KIND)
        scores = _benchmarks(json.loads((path / "scores.json").read_text()))
        meta = manifest["meta"]
        if "start_ratio" in meta:
            recovered.append({"from_ratio": meta["start_ratio"], "scores": scores, "path": str(path)})
            continue
        for bench, entry in scores.items():
            if entry["score"] is not None:
                table[bench][float(meta["ratio"])] = float(entry["score"])
    return dict(table), recovered


def grid_evals(evals: list[Path]) -> dict[float, dict[str, Any]]:
    """ratio -> the full scores.json of the corruption-grid evaluations (recovery excluded)."""
    out = {}
    for path in evals:
        meta = artifacts.read_manifest(path)["meta"]
        if "start_ratio" not in meta:
            out[float(meta["ratio"])] = json.loads((path / "scores.json").read_text())
    return dict(sorted(out.items()))


def below_chance(grid: dict[float, dict[str, Any]], choices: int) -> dict[str, Any]:
    """Binomial test against 1/k per MMLU subject and overall, per ratio ("learned to lie", Fig. 4)."""
    result: dict[str, Any] = {}
    for ratio, scores in grid.items():
        subjects = (scores.get("mmlu") or {}).get("subtasks") or {}
        per: dict[str, Any] = {}
        total_correct = total_n = 0
        for subject, entry in sorted(subjects.items()):
            acc, n = entry["metrics"].get("acc", {}).get("value"), entry.get("n")
            if acc is None or not n:
                continue
            correct = round(acc * n)
            total_correct, total_n = total_correct + correct, total_n + n
            t = stats.below_chance(correct, n, choices)
            per[subject] = {"acc": acc, "n": n, "p_below": t.p_below}
        if per:
            t = stats.below_chance(total_correct, total_n, choices)
            result[f"{ratio:g}"] = {"overall": {"acc": t.acc, "n": total_n, "p_below": t.p_below},
                                    "subjects": per,
                                    "significantly_below": sorted(k for k, v in per.items() if v["p_below"] < 0.05)}
    return result


def epoch_average(grid: dict[float, dict[str, Any]]) -> dict[float, dict[int, float]]:
    """ratio -> epoch -> mean benchmark score (Fig. 5), where per-epoch scores exist."""
    out: dict[float, dict[int, float]] = {}
    for ratio, scores in grid.items():
        for epoch, per in (scores.get("epochs") or {}).items():
            vals = [v for v in per.values() if v is not None]
            if vals:
                out.setdefault(ratio, {})[int(epoch)] = sum(vals) / len(vals)
    return out


def probes(evals: list[Path]) -> list[dict[str, Any]]:
    """Every model's greedy answers to the probe questions (Table 2 case study)."""
    rows = []
    for path in evals:
        meta = artifacts.read_manifest(path)["meta"]
        label = (f"recovered from {meta['start_ratio']:g}" if "start_ratio" in meta else f"{meta['ratio']:g}")
        for rec in _read_jsonl(path / "probes.jsonl"):
            rows.append({"model": label, "set": rec.get("set", "custom"), "question": rec["question"],
                         "answer": rec["answer"]})
    return rows


def loss_logs(models: list[Path]) -> dict[str, Any]:
    """Step losses, per-sample clean/corrupted means and corruption-detection AUROC per ratio."""
    steps: dict[float, list[tuple[int, float]]] = {}
    samples: dict[float, dict[int, tuple[float, float]]] = {}
    detect: dict[str, dict[str, float | None]] = {}
    for path in models:
        meta = artifacts.require(path, train.KIND)["meta"]
        if "start_checkpoint" in meta:
            continue
        r = float(meta["ratio"])
        steps[r] = [(e["step"], e["loss"]) for e in _read_jsonl(path / "loss.jsonl")]
        by_epoch: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for e in _read_jsonl(path / "sample_loss.jsonl"):
            by_epoch[e["epoch"]].append(e)
        samples[r] = {}
        for epoch, rows in sorted(by_epoch.items()):
            clean = [x["loss"] for x in rows if not x["is_corrupted"]]
            bad = [x["loss"] for x in rows if x["is_corrupted"]]
            mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
            samples[r][epoch] = (mean(clean), mean(bad))
            auc = stats.auroc([x["loss"] for x in rows], [bool(x["is_corrupted"]) for x in rows])
            detect.setdefault(f"{r:g}", {})[str(epoch)] = _finite(auc)
    return {"steps": steps, "samples": samples, "auroc": detect}


def run(study: Study, evals: list[Path], models: list[Path], out: Path) -> Path:
    if not evals:
        raise ArtifactError("analyze: no evaluation artifacts given")
    cfg = study.analyze
    table, recovered = score_table(evals)
    benches = suite()
    ratios = sorted({r for row in table.values() for r in row})
    rows: dict[str, dict[str, Any]] = {}
    for bench, by_ratio in sorted(table.items()):
        xs = sorted(by_ratio)
        pr = stats.pearson(xs, [by_ratio[x] for x in xs], n_boot=cfg.bootstrap, seed=cfg.seed)
        has_ends = 0.0 in by_ratio and 1.0 in by_ratio
        clean = by_ratio.get(0.0)
        thr = (stats.threshold([1 - x for x in xs], [by_ratio[x] for x in xs], clean, cfg.threshold_fraction)
               if clean else None)
        rows[bench] = {
            "domain": benches[bench].domain, "scores": {f"{x:g}": by_ratio[x] for x in xs},
            "abs": stats.abs_drop(by_ratio) if has_ends else None,
            "pearson_r": _finite(pr.r), "pearson_p": _finite(pr.p),
            "pearson_ci": [_finite(pr.ci_low), _finite(pr.ci_high)],
            "threshold_correct_share": thr,
        }
    domain_avg: dict[str, dict[str, float]] = {}
    for x in ratios:
        per = {b: table[b][x] for b in table if x in table[b]}
        for dom, val in stats.domain_means(per, {b: benches[b].domain for b in per}).items():
            domain_avg.setdefault(dom, {})[f"{x:g}"] = val
    recovery = []
    for rec in recovered:
        fr = rec["from_ratio"]
        per_bench = {}
        for bench, entry in rec["scores"].items():
            row = table.get(bench, {})
            if entry["score"] is None or 0.0 not in row or fr not in row:
                continue
            per_bench[bench] = {
                "clean": row[0.0], "corrupted": row[fr], "recovered": entry["score"],
                "recovered_fraction": _finite(stats.recovery_fraction(row[0.0], row[fr], entry["score"])),
            }
        recovery.append({"from_ratio": fr, "benchmarks": per_bench})
    losses = loss_logs(models)
    grid = grid_evals(evals)
    mmlu_k = benches["mmlu"].choices or 4
    lies = below_chance(grid, mmlu_k)
    per_epoch = epoch_average(grid)
    meta: dict[str, Any] = {"ratios": ratios, "benchmarks": sorted(table)}
    parents = list(evals) + list(models)
    with artifacts.artifact_dir(out, KIND, parents, study.section_hash("analyze"), meta) as tmp:
        result = {"ratios": ratios, "table": rows, "domain_average": domain_avg, "recovery": recovery,
                  "corruption_detection_auroc": losses["auroc"], "below_chance": lies,
                  "epoch_average": {f"{r:g}": v for r, v in per_epoch.items()}, "probes": probes(evals),
                  "final_train_loss": {f"{r:g}": s[-1][1] for r, s in losses["steps"].items() if s}}
        write_json(tmp / "analysis.json", result)
        with (tmp / "table1.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["benchmark", "domain", *[f"cr_{x:g}" for x in ratios], "abs", "pearson_r", "pearson_p"])
            for bench, entry in rows.items():
                w.writerow([bench, entry["domain"], *[entry["scores"].get(f"{x:g}") for x in ratios],
                            entry["abs"], entry["pearson_r"], entry["pearson_p"]])
        write_json(tmp / "metrics.json", {
            b: {"abs": r["abs"], "pearson_r": r["pearson_r"]} for b, r in rows.items()
        })
        figs = tmp / "figures"
        figs.mkdir()
        chance = {b: (1 / k if (k := benches[b].choices) else None) for b in table}
        figures.score_vs_ratio(table, figs / "score_vs_ratio.png", chance)
        if losses["steps"]:
            figures.loss_curves(losses["steps"], losses["samples"], figs / "train_loss.png")
        if lies:
            subject_acc = {float(r): {s: v["acc"] for s, v in x["subjects"].items()} for r, x in lies.items()}
            figures.per_subject_vs_chance(subject_acc, 1 / mmlu_k, figs / "mmlu_subjects.png")
        if per_epoch:
            figures.score_vs_epoch(per_epoch, figs / "score_vs_epoch.png")
        if recovery and recovery[0]["benchmarks"]:
            rb = recovery[0]["benchmarks"]
            figures.recovery_bars({k: v["clean"] for k, v in rb.items()}, {k: v["corrupted"] for k, v in rb.items()},
                                  {k: v["recovered"] for k, v in rb.items()}, figs / "recovery.png",
                                  from_ratio=recovery[0]["from_ratio"])
    log(f"analyze: {len(rows)} benchmarks over {len(ratios)} ratios")
    return out


def export(analysis_dir: Path, out: Path) -> None:
    """DVC-facing copies of an analysis: `metrics.json` (flat) and `scores.csv` (long form, for plots)."""
    a = json.loads((analysis_dir / "analysis.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", json.loads((analysis_dir / "metrics.json").read_text()))
    with (out / "scores.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["benchmark", "corruption_ratio", "score"])
        for bench, row in a["table"].items():
            for ratio, score in row["scores"].items():
                w.writerow([bench, ratio, score])
