"""Analyze: all evaluations and training logs -> Table 1, statistics with item-level uncertainty, findings, figures.

Inputs: eval artifacts (grid: meta.ratio; base model: meta.base; recovery: meta.start_ratio; any of
them with meta.seed) with `scores.json` and per-item `samples/<benchmark>.jsonl`, and the model
artifacts' training logs. Writes `analysis.json`, `findings.json`, a flat `metrics.json`,
`table1.csv` and `figures/`. The statistics are documented in docs/analysis.md.

Artifacts of several kinds of false chain (`corrupt.kinds`; the kind is the `kind` of the split
family in an artifact's lineage) are analysed per kind, each kind's family with the artifacts of
no kind (the base and the clean model every kind shares): `analysis.json` then holds `kinds`,
`by_kind` (one single-kind analysis each), `thresholds` (compared across kinds) and one
`misalignment` with a kind per row; `metrics.json` is kind -> the flat metrics, `table1.csv` has a
kind column and the figures a `<kind>-` prefix.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from faco import artifact_kinds, artifacts
from faco.analysis import bootstrap, figures, findings, misalignment, multiple, nli_gap, stats, threshold
from faco.config import AnalyzeConfig, Study
from faco.errors import ArtifactError
from faco.evaluation.suite import Benchmark, suite
from faco.progress import log
from faco.ratios import ratio_tag
from faco.records import write_json

#: significance level of every decision the analysis states in words
ALPHA = 0.05
#: groups whose subtasks get rows of their own (heldout: one per training source)
PER_SUBTASK = ("heldout",)


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _pair(iv: bootstrap.Interval) -> list[float | None]:
    return [_finite(iv.low), _finite(iv.high)]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Evaluated:
    """One eval artifact: which model it scored and its scores."""

    path: Path
    meta: dict[str, Any]
    scores: dict[str, Any]
    _items: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def benchmarks(self) -> dict[str, Any]:
        return {k: v for k, v in self.scores.items() if k != "epochs"}

    @property
    def seed(self) -> int | None:
        s = self.meta.get("seed")
        return None if s is None else int(s)

    def items(self, name: str, metric: str) -> dict[str, float]:
        """doc_id -> per-item value of `metric` from `samples/<name>.jsonl` (empty when absent)."""
        key = (name, metric)
        if key not in self._items:
            self._items[key] = {str(row["doc_id"]): float(row["value"])
                                for row in _read_jsonl(self.path / "samples" / f"{name}.jsonl")
                                if row.get("metric") == metric and row.get("value") is not None}
        return self._items[key]


@dataclass
class Evals:
    """The study's evaluations by role: grid (ratio -> one per seed), base, recovery (from ratio -> seeds)."""

    grid: dict[float, list[Evaluated]]
    base: Evaluated | None
    recovery: dict[float, list[Evaluated]]

    @cached_property
    def ratios(self) -> list[float]:
        return sorted(self.grid)

    @cached_property
    def seeds(self) -> list[int]:
        return sorted({e.seed for es in self.grid.values() for e in es if e.seed is not None})


def load(paths: list[Path]) -> Evals:
    grid: dict[float, list[Evaluated]] = defaultdict(list)
    rec: dict[float, list[Evaluated]] = defaultdict(list)
    base = None
    for path in paths:
        meta = artifacts.require(path, artifact_kinds.EVAL)["meta"]
        ev = Evaluated(path, meta, json.loads((path / "scores.json").read_text()))
        if meta.get("base"):
            base = ev
        elif "start_ratio" in meta:
            rec[float(meta["start_ratio"])].append(ev)
        else:
            grid[float(meta["ratio"])].append(ev)
    return Evals(dict(sorted(grid.items())), base, dict(rec))


def _mean(values: Sequence[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return sum(v) / len(v) if v and len(v) == len(values) else None


def _spec(name: str) -> Benchmark | None:
    """The suite entry of a benchmark, or of the group of a `group/subtask` row."""
    return suite().get(name.partition("/")[0])


def _primary(name: str) -> str:
    spec = _spec(name)
    return spec.metrics[0] if spec else "acc"


def _lookup(e: Evaluated, name: str) -> dict[str, Any]:
    """The scores.json entry of a benchmark, or of a group's subtask (`heldout/arc`) with its score."""
    bench, _, sub = name.partition("/")
    entry = e.benchmarks.get(bench) or {}
    if not sub:
        return dict(entry)
    leaf = (entry.get("subtasks") or {}).get(sub) or {}
    return {**leaf, "score": ((leaf.get("metrics") or {}).get(_primary(name)) or {}).get("value")}


def _score(evs: Sequence[Evaluated], bench: str) -> float | None:
    """Mean over seeds of a benchmark's score (None when a seed lacks it)."""
    return _mean([_lookup(e, bench).get("score") for e in evs])


def _stderr(evs: Sequence[Evaluated], bench: str, metric: str) -> float | None:
    """lm-eval's stderr of the primary metric (mean over seeds)."""
    return _mean([((_lookup(e, bench).get("metrics") or {}).get(metric) or {}).get("stderr") for e in evs])


def _items(evs: Sequence[Evaluated], name: str, metric: str) -> dict[str, float]:
    """Per-item values averaged over seeds, on the items every seed has."""
    per = [e.items(name, metric) for e in evs]
    common = set.intersection(*(set(p) for p in per)) if per else set()
    return {k: sum(p[k] for p in per) / len(per) for k in common}


@dataclass
class Columns:
    """The paired item matrix of one benchmark: grid models first, then base and recovery where they have items."""

    keys: list[str]
    values: np.ndarray
    names: list[str]
    boot: np.ndarray

    def col(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None


def _columns(ev: Evals, name: str, metric: str, cfg: AnalyzeConfig) -> Columns | None:
    """Item matrix and its paired bootstrap replicates, or None when a grid model lacks per-item results."""
    per = {f"{r:g}": _items(ev.grid[r], name, metric) for r in ev.ratios}
    if not per or not all(per.values()):
        return None
    if ev.base is not None and (b := ev.base.items(name, metric)):
        per["base"] = b
    for fr, evs in ev.recovery.items():
        if r := _items(evs, name, metric):
            per[f"recovered from {fr:g}"] = r
    keys, values = bootstrap.align(list(per.values()))
    if not keys:
        return None
    return Columns(keys, values, list(per), bootstrap.replicate_means(values, cfg.bootstrap, cfg.seed))


def _recovery(cols: Columns | None, from_ratio: float, clean: float | None, corrupted: float | None,
              recovered: float | None, level: float = 0.95) -> dict[str, Any]:
    """Recovered fraction (recovered - corrupted) / (clean - corrupted), undefined when the gap is within noise."""
    out: dict[str, Any] = {"clean": clean, "corrupted": corrupted, "recovered": recovered, "gap": None,
                           "gap_ci": [None, None], "recovered_fraction": None, "fraction_ci": [None, None],
                           "status": "undefined", "reason": "no per-item results to judge the noise"}
    if clean is None or corrupted is None or recovered is None:
        out["reason"] = "a score is missing"
        return out
    out["gap"] = clean - corrupted
    names = ("0", f"{from_ratio:g}", f"recovered from {from_ratio:g}")
    idx = [cols.col(n) for n in names] if cols is not None else []
    if cols is None or any(i is None for i in idx) or cols.boot.size == 0:
        return out
    c, k, r = (cols.boot[:, i] for i in idx)  # type: ignore[index]
    gap_ci = bootstrap.percentile(c - k, level)
    out["gap_ci"] = _pair(gap_ci)
    if not (gap_ci.low > 0 or gap_ci.high < 0):
        out["reason"] = "clean ≈ corrupted within noise"
        return out
    frac = stats.recovery_fraction(clean, corrupted, recovered)
    ci = bootstrap.percentile(bootstrap.ratio_of_gaps(r - k, c - k), level)
    out.update(recovered_fraction=frac, fraction_ci=_pair(ci), reason=None,
               status="all" if frac >= 1 else ("none" if ci.high < 0 or frac <= 0 else "partial"))
    return out


def _threshold(ratios: list[float], scores: dict[float, float], cols: Columns | None,
               cfg: AnalyzeConfig) -> dict[str, Any]:
    """Correct-share crossing of threshold_fraction x clean score on the isotonic fit, with a bootstrap interval."""
    clean = scores.get(0.0)
    out: dict[str, Any] = {"fraction": cfg.threshold_fraction, "target": None, "correct_share": None,
                           "reached": False, "ci": [None, None], "reached_share": None}
    if clean is None or len(scores) != len(ratios):
        return out
    shares = [1 - r for r in ratios]
    target = cfg.threshold_fraction * clean
    point = threshold.crossing(shares, [scores[r] for r in ratios], target)
    out.update(target=target, correct_share=point, reached=point is not None)
    if cols is not None and cols.boot.size:
        reps = cols.boot[:, : len(ratios)]
        cross = threshold.crossings(shares, reps, cfg.threshold_fraction * reps[:, ratios.index(0.0)])
        ci = bootstrap.percentile(cross)
        out["ci"] = [_finite(ci.low) if math.isfinite(ci.low) else None,
                     _finite(ci.high) if math.isfinite(ci.high) else None]
        out["reached_share"] = float(np.isfinite(cross).mean())
    return out


def _chance(ev: Evals, bench: str) -> float | None:
    """Chance accuracy: the eval's own `chance` (mean 1/options over items) or 1/choices of the suite."""
    for evs in ev.grid.values():
        c = _lookup(evs[0], bench).get("chance")
        if isinstance(c, (int, float)):
            return float(c)
    k = spec.choices if (spec := _spec(bench)) else None
    return 1 / k if k else None


def _below_chance_items(evs: Sequence[Evaluated], bench: str, metric: str,
                        chance: float | None) -> dict[str, Any] | None:
    """One-sided exact binomial test of a model's correct count on the items against chance.

    With several seeds every seed is tested and the least significant one is kept (below chance
    means below chance in every seed); `seeds` says how many were tested.
    """
    tests = []
    for e in evs:
        items = e.items(bench, metric)
        if not items or chance is None or not all(v in (0.0, 1.0) for v in items.values()):
            return None
        n, correct = len(items), round(sum(items.values()))
        p = float(sps.binomtest(correct, n, chance, alternative="less").pvalue)
        tests.append({"correct": correct, "n": n, "acc": correct / n, "chance": chance, "p_below": p})
    return {**max(tests, key=lambda t: t["p_below"]), "seeds": len(tests)} if tests else None


def _seeds(ev: Evals, bench: str) -> dict[str, Any] | None:
    """Per ratio mean ± s.e. across seeds, and a slope test of the per-seed scores on the ratio."""
    if len(ev.seeds) < 2:
        return None
    cells, xs, ys = {}, [], []
    for r in ev.ratios:
        per = {e.seed: _lookup(e, bench).get("score") for e in ev.grid[r]}
        vals = [v for v in per.values() if v is not None]
        if not vals:
            continue
        mean, se = stats.mean_stderr(vals)
        cells[f"{r:g}"] = {"mean": mean, "se": _finite(se), "n_seeds": len(vals),
                           "per_seed": {str(s): v for s, v in sorted(per.items(), key=lambda kv: str(kv[0]))}}
        xs += [r] * len(vals)
        ys += vals
    if len(set(xs)) < 2 or len(xs) < 3 or len(set(ys)) < 2:
        return {"cells": cells, "slope": None, "slope_p": None, "exceeds_seed_noise": None}
    fit = sps.linregress(xs, ys)
    return {"cells": cells, "slope": float(fit.slope), "slope_stderr": float(fit.stderr),
            "slope_p": float(fit.pvalue), "exceeds_seed_noise": bool(fit.pvalue < ALPHA), "n_points": len(xs)}


def _verdict(r: float | None, p: float | None) -> str | None:
    if p is None:
        return None
    return "no significant trend" if p >= ALPHA or r is None else ("falls" if r < 0 else "rises")


def benchmark_row(ev: Evals, bench: str, cfg: AnalyzeConfig) -> dict[str, Any] | None:
    """Table 1's row of one benchmark (or `group/subtask`) with every statistic and its item-level uncertainty."""
    spec = _spec(bench)
    metric = _primary(bench)
    scores = {r: s for r in ev.ratios if (s := _score(ev.grid[r], bench)) is not None}
    if not scores:
        return None
    ratios = [r for r in ev.ratios if r in scores]
    cols = _columns(ev, bench, metric, cfg) if ratios == ev.ratios else None
    row: dict[str, Any] = {
        "domain": spec.domain if spec else None, "metric": metric,
        "scores": {f"{r:g}": scores[r] for r in ratios},
        "stderr": {f"{r:g}": _stderr(ev.grid[r], bench, metric) for r in ratios},
        "n_items": len(cols.keys) if cols else None, "chance": _chance(ev, bench),
    }
    score_ci = {}
    if cols is not None:
        for name in cols.names:
            score_ci[name] = _pair(bootstrap.percentile(cols.boot[:, cols.col(name)]))  # type: ignore[index]
    row["score_ci"] = score_ci
    base = _score([ev.base], bench) if ev.base is not None else None
    row["base"] = {"score": base, "stderr": _stderr([ev.base], bench, metric) if ev.base else None}
    bcol = cols.col("base") if cols else None
    row["delta_vs_base"] = {
        f"{r:g}": {"delta": None if base is None else scores[r] - base,
                   "ci": (_pair(bootstrap.percentile(cols.boot[:, i] - cols.boot[:, bcol]))
                          if cols is not None and bcol is not None and (i := cols.col(f"{r:g}")) is not None
                          else [None, None])}
        for r in ratios}
    has_ends = 0.0 in scores and 1.0 in scores
    row["abs"] = stats.abs_drop(scores) if has_ends else None
    row["abs_ci"] = (_pair(bootstrap.percentile(cols.boot[:, cols.col("0")] - cols.boot[:, cols.col("1")]))  # type: ignore[index]
                     if cols is not None and has_ends else [None, None])
    if cols is not None and len(ratios) >= 2:
        tr = bootstrap.trend(ratios, cols.values[:, : len(ratios)], cfg.bootstrap, cfg.seed)
        row.update(pearson_r=_finite(tr.r), pearson_ci=_pair(tr.ci), pearson_p=_finite(tr.p))
    else:
        r = bootstrap.pearson_rows(ratios, np.array([[scores[x] for x in ratios]]))[0] if len(ratios) >= 2 else None
        row.update(pearson_r=_finite(r), pearson_ci=[None, None], pearson_p=None)
    row["trend"] = _verdict(row["pearson_r"], row["pearson_p"])
    row["untested"] = (None if row["trend"] is not None else
                       "it was not evaluated at every ratio" if ratios != ev.ratios else
                       "fewer than two ratios" if len(ratios) < 2 else
                       "the evaluations carry no per-item results")
    row["threshold"] = _threshold(ratios, scores, cols, cfg)
    row["recovery"] = {
        f"{fr:g}": _recovery(cols, fr, scores.get(0.0), scores.get(fr), _score(evs, bench))
        | {"stderr": {"clean": row["stderr"].get("0"), "corrupted": row["stderr"].get(f"{fr:g}"),
                      "recovered": _stderr(evs, bench, metric)}}
        for fr, evs in ev.recovery.items()}
    top = max(ratios)
    row["below_chance_at_max"] = {"ratio": top, **(_below_chance_items(ev.grid[top], bench, metric, row["chance"])
                                                   or {"p_below": None}),
                                  "unparsed": _mean([_lookup(e, bench).get("unparsed")
                                                     for e in ev.grid[top]])}
    row["seeds"] = _seeds(ev, bench)
    return row


def below_chance(ev: Evals, choices: int) -> dict[str, Any]:
    """Per MMLU subject and overall, per model: binomial test vs 1/k, p raw and Holm/BH adjusted."""
    models: list[tuple[str, list[Evaluated]]] = [(f"{r:g}", ev.grid[r]) for r in ev.ratios]
    if ev.base is not None:
        models.insert(0, ("base", [ev.base]))
    result: dict[str, Any] = {}
    for label, evs in models:
        subjects = (evs[0].benchmarks.get("mmlu") or {}).get("subtasks") or {}
        per: dict[str, Any] = {}
        total_correct = total_n = 0
        for subject in sorted(subjects):
            accs = [((e.benchmarks["mmlu"].get("subtasks") or {}).get(subject, {}).get("metrics", {})
                     .get("acc", {}).get("value")) for e in evs]
            acc, n = _mean(accs), subjects[subject].get("n")
            if acc is None or not n:
                continue
            correct = round(acc * n)
            total_correct, total_n = total_correct + correct, total_n + n
            per[subject] = {"acc": acc, "n": n, "p_below": stats.below_chance(correct, n, choices).p_below}
        if not per:
            continue
        names = list(per)
        for s, h, q in zip(names, multiple.holm([per[s]["p_below"] for s in names]),
                           multiple.benjamini_hochberg([per[s]["p_below"] for s in names]), strict=True):
            per[s].update(p_holm=h, q_bh=q)
        t = stats.below_chance(total_correct, total_n, choices)
        result[label] = {"overall": {"acc": t.acc, "n": total_n, "p_below": t.p_below},
                         "subjects": per, "tests": len(per),
                         "significantly_below": sorted(k for k, v in per.items() if v["p_holm"] < ALPHA),
                         "raw_below": sorted(k for k, v in per.items() if v["p_below"] < ALPHA)}
    return result


def epoch_average(ev: Evals) -> dict[float, dict[int, float]]:
    """ratio -> epoch -> mean benchmark score (Fig. 5), where per-epoch scores exist (first seed)."""
    out: dict[float, dict[int, float]] = {}
    for ratio, evs in ev.grid.items():
        for epoch, per in (evs[0].scores.get("epochs") or {}).items():
            vals = [v for v in per.values() if v is not None]
            if vals:
                out.setdefault(ratio, {})[int(epoch)] = sum(vals) / len(vals)
    return out


def probes(evals: list[Path]) -> list[dict[str, Any]]:
    """Every model's greedy answers to the probe questions (Table 2 case study)."""
    rows = []
    for path in evals:
        meta = artifacts.read_manifest(path)["meta"]
        label = ("base" if meta.get("base") else f"recovered from {meta['start_ratio']:g}" if "start_ratio" in meta
                 else f"{meta['ratio']:g}")
        if meta.get("seed") is not None:
            label += f" (seed {meta['seed']})"
        for rec in _read_jsonl(path / "probes.jsonl"):
            rows.append({"model": label, "set": rec.get("set", "custom"), "question": rec["question"],
                         "answer": rec["answer"]})
    return rows


def loss_logs(models: list[Path], cfg: AnalyzeConfig) -> dict[str, Any]:
    """Step losses, per-sample clean/corrupted means, corruption-detection AUROC, final-loss trend (first seed)."""
    steps: dict[float, list[tuple[int, float]]] = {}
    samples: dict[float, dict[int, tuple[float, float]]] = {}
    last: dict[float, dict[str, float]] = {}
    detect: dict[str, dict[str, float | None]] = {}
    for path in models:
        meta = artifacts.require(path, artifact_kinds.MODEL)["meta"]
        r = float(meta.get("ratio", 0.0))
        if "start_checkpoint" in meta or meta.get("base") or r in steps:
            continue
        steps[r] = [(e["step"], e["loss"]) for e in _read_jsonl(path / "loss.jsonl")]
        by_epoch: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for e in _read_jsonl(path / "sample_loss.jsonl"):
            by_epoch[e["epoch"]].append(e)
        samples[r] = {}
        for epoch, rows in sorted(by_epoch.items()):
            clean = [x["loss"] for x in rows if not x["is_corrupted"]]
            bad = [x["loss"] for x in rows if x["is_corrupted"]]
            samples[r][epoch] = (float(np.mean(clean)) if clean else math.nan, float(np.mean(bad)) if bad else math.nan)
            auc = stats.auroc([x["loss"] for x in rows], [bool(x["is_corrupted"]) for x in rows])
            detect.setdefault(f"{r:g}", {})[str(epoch)] = _finite(auc)
        if by_epoch:
            last[r] = {str(x["id"]): float(x["loss"]) for x in by_epoch[max(by_epoch)]}
    ratios = sorted(last)
    final: dict[str, Any] = {"step_loss": {f"{r:g}": s[-1][1] for r, s in sorted(steps.items()) if s},
                             "sample_loss": {}, "pearson_r": None, "pearson_ci": [None, None], "pearson_p": None,
                             "n_samples": None, "trend": None}
    if len(ratios) >= 2:
        keys, values = bootstrap.align([last[r] for r in ratios])
        if keys:
            tr = bootstrap.trend(ratios, values, cfg.bootstrap, cfg.seed)
            final.update(sample_loss={f"{r:g}": float(values[:, i].mean()) for i, r in enumerate(ratios)},
                         pearson_r=_finite(tr.r), pearson_ci=_pair(tr.ci), pearson_p=_finite(tr.p),
                         n_samples=len(keys), trend=_verdict(_finite(tr.r), _finite(tr.p)))
    return {"steps": steps, "samples": samples, "auroc": detect, "final": final}


def _figures(ev: Evals, rows: dict[str, Any], losses: dict[str, Any], lies: dict[str, Any], mmlu_k: int,
             per_epoch: dict[float, dict[int, float]], folder: Path, prefix: str = "") -> None:
    def out(name: str) -> Path:
        return folder / f"{prefix}{name}"

    table = {b: {float(r): s for r, s in row["scores"].items()} for b, row in rows.items()}
    ci = {b: {float(r): tuple(v) for r, v in row["score_ci"].items() if r not in ("base",) and "from" not in r}
          for b, row in rows.items()}
    base = {b: row["base"]["score"] for b, row in rows.items()}
    chance = {b: row["chance"] for b, row in rows.items()}
    figures.score_vs_ratio(table, out("score_vs_ratio.png"), chance, base=base, ci=ci)
    if losses["steps"]:
        figures.loss_curves(losses["steps"], losses["samples"], out("train_loss.png"))
    if lies:
        subject_acc = {float(r): {s: v["acc"] for s, v in x["subjects"].items()}
                       for r, x in lies.items() if r != "base"}
        base_acc = {s: v["acc"] for s, v in lies["base"]["subjects"].items()} if "base" in lies else None
        figures.per_subject_vs_chance(subject_acc, 1 / mmlu_k, out("mmlu_subjects.png"), base=base_acc)
    if per_epoch:
        first = next(iter(ev.grid.values()))[0].scores.get("epochs") or {}
        names = sorted({b for per in first.values() for b in per})
        figures.score_vs_epoch(per_epoch, out("score_vs_epoch.png"),
                               base=_mean([base.get(b) for b in names]) if names else None)
    if ev.recovery:
        fr = min(ev.recovery, key=lambda x: -x)
        rb = {b: row["recovery"][f"{fr:g}"] for b, row in rows.items() if f"{fr:g}" in row["recovery"]}
        figures.recovery_bars({k: v["clean"] for k, v in rb.items()}, {k: v["corrupted"] for k, v in rb.items()},
                              {k: v["recovered"] for k, v in rb.items()}, out("recovery.png"), from_ratio=fr,
                              base={k: base.get(k) for k in rb})


def _table1_csv(tables: Mapping[str | None, Mapping[str, Any]], ratios: list[float], path: Path) -> None:
    """Table 1 as CSV: `tables` is kind -> rows (kind None: a single-kind study, no kind column)."""
    kind_col = None not in tables
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*(["kind"] if kind_col else []), "benchmark", "domain", "metric", "base",
                    *[ratio_tag(x) for x in ratios], *[f"{ratio_tag(x)}_stderr" for x in ratios], "abs", "abs_ci_low",
                    "abs_ci_high", "pearson_r", "pearson_ci_low", "pearson_ci_high", "pearson_p_permutation",
                    "n_items"])
        for kind, rows in tables.items():
            for bench, e in rows.items():
                w.writerow([*([kind] if kind_col else []), bench, e["domain"], e["metric"], e["base"]["score"],
                            *[e["scores"].get(f"{x:g}") for x in ratios],
                            *[e["stderr"].get(f"{x:g}") for x in ratios], e["abs"], *e["abs_ci"], e["pearson_r"],
                            *e["pearson_ci"], e["pearson_p"], e["n_items"]])


def kind_of(path: Path) -> str | None:
    """The kind of false chain behind an artifact: the `kind` of the split family in its lineage;
    None for a single-kind study and for the base and clean models every kind shares."""
    for _, m in artifacts.ancestors(path, prune=lambda m: m["kind"] == artifact_kinds.SPLITS):
        if m["kind"] == artifact_kinds.SPLITS and m["meta"].get("kind"):  # the clean split: its pairs are every kind's
            return str(m["meta"]["kind"])
    return None


@dataclass
class Family:
    """The analysis of one split family (a single-kind study, or one kind) and what its figures need."""

    result: dict[str, Any]
    ev: Evals
    losses: dict[str, Any]
    lies: dict[str, Any]
    mmlu_k: int
    per_epoch: dict[float, dict[int, float]]

    def figures(self, folder: Path, prefix: str = "") -> None:
        _figures(self.ev, self.result["table"], self.losses, self.lies, self.mmlu_k, self.per_epoch, folder, prefix)


def family(cfg: AnalyzeConfig, evals: list[Path], models: list[Path]) -> Family:
    """Table 1, statistics, findings (and paper 002's gap) of one family's evaluations and models."""
    ev = load(evals)
    if not ev.grid:
        raise ArtifactError("analyze: no corruption-grid evaluation (meta.ratio) among the artifacts given")
    benches = sorted({b for evs in ev.grid.values() for e in evs for b in e.benchmarks}
                     | {f"{g}/{sub}" for evs in ev.grid.values() for e in evs for g in PER_SUBTASK
                        for sub in (e.benchmarks.get(g) or {}).get("subtasks") or {}})
    rows = {b: row for b in benches if (row := benchmark_row(ev, b, cfg)) is not None}
    domain_avg: dict[str, dict[str, float]] = {}
    known = suite()
    for x in ev.ratios:
        per = {b: r["scores"][f"{x:g}"] for b, r in rows.items() if f"{x:g}" in r["scores"] and b in known}
        for dom, val in stats.domain_means(per, {b: known[b].domain for b in per}).items():
            domain_avg.setdefault(dom, {})[f"{x:g}"] = val
    losses = loss_logs(models, cfg)
    mmlu_k = known["mmlu"].choices or 4
    lies = below_chance(ev, mmlu_k)
    per_epoch = epoch_average(ev)
    result = {"ratios": ev.ratios, "seeds": ev.seeds, "has_base": ev.base is not None, "alpha": ALPHA,
              "bootstrap": cfg.bootstrap, "table": rows, "domain_average": domain_avg,
              "corruption_detection_auroc": losses["auroc"], "below_chance": lies,
              "recovery": [{"from_ratio": fr, "benchmarks": {b: row["recovery"][f"{fr:g}"] for b, row in rows.items()
                                                             if f"{fr:g}" in row["recovery"]}}
                           for fr in sorted(ev.recovery)],
              "epoch_average": {f"{r:g}": v for r, v in per_epoch.items()}, "probes": probes(evals),
              "final_train_loss": losses["final"]}
    result["findings"] = findings.build(result)
    if "mnli" in benches and "hans" in benches:  # paper 002: the general-vs-blind-spot gap
        result["nli_gap"] = nli_gap.from_items(
            ev.ratios, [_items(ev.grid[x], "mnli", "acc") for x in ev.ratios],
            {s: [_items(ev.grid[x], "hans", m) for x in ev.ratios] for s, m in nli_gap.SUBSETS.items()},
            cfg.bootstrap, cfg.seed,
            {s: [_items(ev.grid[x], "hans", m) for x in ev.ratios] for s, m in nli_gap.CONTEXT.items()})
    return Family(result, ev, losses, lies, mmlu_k, per_epoch)


def compare_kinds(families: Mapping[str, Family], judged: Sequence[Path], kinds: Mapping[Path, str | None]
                  ) -> dict[str, Any]:
    """The analysis of several kinds: each kind's family, thresholds side by side, one misalignment table."""
    first = next(iter(families.values())).result
    tables = {k: f.result["table"] for k, f in families.items()}
    heads = findings.headline(first["table"])
    known = suite()
    base = {b: row["base"]["score"] for b, row in first["table"].items()
            if b in known and row["base"]["score"] is not None}
    base_domain = stats.domain_means(base, {b: known[b].domain for b in base})
    result: dict[str, Any] = {
        "kinds": list(families), "ratios": sorted({r for f in families.values() for r in f.result["ratios"]}),
        "seeds": first["seeds"], "has_base": first["has_base"], "alpha": ALPHA, "bootstrap": first["bootstrap"],
        "base_domain_average": base_domain, "by_kind": {k: f.result for k, f in families.items()},
        "thresholds": {b: {k: t[b]["threshold"] for k, t in tables.items() if b in t} for b in first["table"]},
        "headline": heads,
    }
    result["findings"] = {"headline": heads, "thresholds": [
        threshold.compare(b, result["thresholds"][b]) for b in heads if b in result["thresholds"]]}
    if judged:
        result["misalignment"] = misalignment.from_artifacts(list(judged), kinds=kinds)
    return result


def run(study: Study, evals: list[Path], models: list[Path], out: Path, judged: Sequence[Path] = ()) -> Path:
    if not evals:
        raise ArtifactError("analyze: no evaluation artifacts given")
    cfg = study.analyze
    kinds = {p: kind_of(p) for p in [*evals, *models, *judged]}
    names = list(dict.fromkeys(k for k in kinds.values() if k is not None))
    if len(names) <= 1:
        one = family(cfg, evals, models)
        families: dict[str | None, Family] = {None: one}
        result = one.result
        if judged:  # paper 001: the judged probe answers of every model (`judge` artifacts)
            result["misalignment"] = misalignment.from_artifacts(list(judged))
        metrics: dict[str, Any] = findings.flat_metrics(result["table"])
    else:  # paper 001: several kinds of false chain, each family with the shared base and clean models
        per: dict[str, Family] = {k: family(cfg, [e for e in evals if kinds[e] in (None, k)],
                                            [m for m in models if kinds[m] in (None, k)]) for k in names}
        families = {k: f for k, f in per.items()}
        result = compare_kinds(per, judged, kinds)
        metrics = {k: findings.flat_metrics(f.result["table"]) for k, f in per.items()}
    tables = {k: f.result["table"] for k, f in families.items()}
    meta: dict[str, Any] = {"ratios": result["ratios"], "benchmarks": sorted({b for t in tables.values() for b in t}),
                            "base": result["has_base"], "seeds": result["seeds"]}
    if names[1:]:
        meta["kinds"] = names
    parents = [*evals, *models, *judged]
    with artifacts.artifact_dir(out, artifact_kinds.ANALYSIS, parents, study.section_hash("analyze"), meta) as tmp:
        write_json(tmp / "analysis.json", result)
        write_json(tmp / "findings.json", result["findings"] if None in families else
                   {**result["findings"], "by_kind": {k: f.result["findings"] for k, f in families.items()}})
        if "nli_gap" in result:
            write_json(tmp / "nli_gap.json", result["nli_gap"])
        if "misalignment" in result:
            write_json(tmp / "misalignment.json", result["misalignment"])
        _table1_csv(tables, result["ratios"], tmp / "table1.csv")
        write_json(tmp / "metrics.json", metrics)
        (tmp / "figures").mkdir()
        for k, f in families.items():
            f.figures(tmp / "figures", f"{k}-" if k is not None else "")
    log(f"analyze: {len(meta['benchmarks'])} benchmarks over {len(result['ratios'])} ratios"
        + (f" x {len(result['seeds'])} seeds" if len(result["seeds"]) > 1 else "")
        + (f" x {len(names)} kinds ({', '.join(names)})" if names[1:] else "")
        + (", base model" if result["has_base"] else ""))
    return out


def export(analysis_dir: Path, out: Path, models: Sequence[Path] = ()) -> None:
    """DVC-facing copies of an analysis: `metrics.json` (flat), `scores.csv` (long form, for plots),
    `train_loss.csv` (the step losses of the trained `models`, long form) and `figures/` (PNG plots)."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    with (out / "train_loss.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["corruption_ratio", "step", "loss"])
        seen: set[str] = set()
        for path in models:  # as loss_logs: the first run of each ratio, no recovery, no base model
            meta = artifacts.require(path, artifact_kinds.MODEL)["meta"]
            ratio = f"{float(meta.get('ratio', 0.0)):g}"
            if "start_checkpoint" in meta or meta.get("base") or ratio in seen:
                continue
            seen.add(ratio)
            for e in _read_jsonl(path / "loss.jsonl"):
                w.writerow([ratio, e["step"], e["loss"]])
    shutil.rmtree(out / "figures", ignore_errors=True)
    shutil.copytree(analysis_dir / "figures", out / "figures")
    a = json.loads((analysis_dir / "analysis.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", json.loads((analysis_dir / "metrics.json").read_text()))
    with (out / "scores.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["benchmark", "corruption_ratio", "score"])
        for bench, row in a["table"].items():
            for ratio, score in row["scores"].items():
                w.writerow([bench, ratio, score])
