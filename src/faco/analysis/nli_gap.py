"""Paper 002's measurement: the general-vs-blind-spot gap, MNLI accuracy minus HANS non-entailment
accuracy, per synthetic share (corruption ratio), overall and per HANS heuristic, and its trend.

MNLI and HANS are different item sets, so each is resampled on its own: a bootstrap replicate draws
MNLI items (paired across models) and, independently, HANS items of the subset (paired across models),
and the replicate gap is the difference of the two replicate means. The trend is Pearson r of gap vs
share (three shares or more); its interval comes from the same replicates. `change` is the gap at the
largest share minus the gap at the smallest, and `verdict` says whether synthetic data widened the
gap by that change's interval.

A gap can move without the blind spot moving: a model that comes to answer non-entailment to
everything scores 1.0 on HANS non-entailment. So HANS entailment accuracy and accuracy over both
labels go beside the gap (`context`), each with its change and interval, and the sentence says when a
narrowing is that shift of the predicted label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from faco.analysis import bootstrap

#: HANS subsets (names in nli_gap.json) -> the faco_hans metric of their per-item samples
SUBSETS = {
    "non_entailment": "acc_non_entailment",
    "lexical_overlap": "acc_non_entailment_lexical_overlap",
    "subsequence": "acc_non_entailment_subsequence",
    "constituent": "acc_non_entailment_constituent",
}


#: HANS metrics that say where a change of the gap comes from: its entailment rows, and all its rows
CONTEXT = {"entailment": "acc_entailment", "both_labels": "acc"}


def _pair(iv: bootstrap.Interval) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in iv]


def subset_gap(ratios: Sequence[float], mnli: np.ndarray, hans: np.ndarray, n_boot: int, seed: int,
               level: float = 0.95) -> dict[str, Any]:
    """Gap per ratio with intervals, its trend r with interval, and the change from the smallest to
    the largest ratio. `mnli`, `hans`: (items, models) correctness, models in the order of `ratios`."""
    mnli_acc, hans_acc = mnli.mean(axis=0), hans.mean(axis=0)
    gap = mnli_acc - hans_acc
    reps = bootstrap.replicate_means(mnli, n_boot, seed) - bootstrap.replicate_means(hans, n_boot, seed + 1)
    lo, hi = int(np.argmin(ratios)), int(np.argmax(ratios))
    trended = len(set(ratios)) > 2  # r over two shares is +-1 whatever the data: not reported
    r = float(bootstrap.pearson_rows(ratios, gap)[0]) if trended else float("nan")
    r_reps = np.nan_to_num(bootstrap.pearson_rows(ratios, reps), nan=0.0) if len(reps) else reps
    return {
        "hans": [float(v) for v in hans_acc],
        "gap": [float(v) for v in gap],
        "gap_ci": [_pair(bootstrap.percentile(reps[:, j], level)) for j in range(len(ratios))],
        "trend": {"r": None if np.isnan(r) else r,
                  "ci": _pair(bootstrap.percentile(r_reps, level)) if trended else [None, None]},
        "change": {"from": float(ratios[lo]), "to": float(ratios[hi]), "value": float(gap[hi] - gap[lo]),
                   "ci": _pair(bootstrap.percentile(reps[:, hi] - reps[:, lo], level))},
        "n_items": {"mnli": int(mnli.shape[0]), "hans": int(hans.shape[0])},
    }


def context(ratios: Sequence[float], values: Mapping[str, np.ndarray], n_boot: int, seed: int,
            level: float = 0.95) -> dict[str, Any]:
    """Per `CONTEXT` metric given ((items, models) correctness): accuracy per ratio and its change from the
    smallest to the largest ratio with a paired item-bootstrap interval."""
    lo, hi = int(np.argmin(ratios)), int(np.argmax(ratios))
    out = {}
    for k, (name, v) in enumerate(values.items()):
        if not v.size:
            continue
        acc, reps = v.mean(axis=0), bootstrap.replicate_means(v, n_boot, seed + k)
        out[name] = {"acc": [float(x) for x in acc],
                     "change": {"value": float(acc[hi] - acc[lo]),
                                "ci": _pair(bootstrap.percentile(reps[:, hi] - reps[:, lo], level))}}
    return out


def verdict(change: Mapping[str, Any]) -> str:
    """'widened', 'narrowed' or 'unchanged' (the change's interval contains 0 or is unknown)."""
    low, high = change["ci"]
    if low is not None and low > 0:
        return "widened"
    if high is not None and high < 0:
        return "narrowed"
    return "unchanged"


def gap_study(ratios: Sequence[float], mnli: np.ndarray, hans: Mapping[str, np.ndarray], n_boot: int, seed: int,
              level: float = 0.95) -> dict[str, Any]:
    """The gap for every HANS subset given (`hans`: subset name -> (items, models) correctness)."""
    subsets = {name: subset_gap(ratios, mnli, values, n_boot, seed + 10 * k, level)
               for k, (name, values) in enumerate(hans.items()) if values.shape[0] and mnli.shape[0]}
    out: dict[str, Any] = {"ratios": [float(x) for x in ratios], "mnli": [float(v) for v in mnli.mean(axis=0)],
                           "level": level, "bootstrap": n_boot, "subsets": subsets}
    if "non_entailment" in subsets:
        out["verdict"] = verdict(subsets["non_entailment"]["change"])
    return out


def _num(x: float | None, sign: bool = False) -> str:
    return "n/a" if x is None else (f"{x:+.3f}" if sign else f"{x:.3f}")


def sentence(result: Mapping[str, Any]) -> str:
    """One sentence: did synthetic data widen the MNLI-HANS gap, with the change, its interval and r."""
    sub = result["subsets"].get("non_entailment")
    if sub is None:
        return "No MNLI-HANS gap: no per-item MNLI or HANS non-entailment results."
    ch, tr = sub["change"], sub["trend"]
    pct = round(100 * result["level"])
    word = {"widened": "widened", "narrowed": "narrowed", "unchanged": "did not measurably change"}[verdict(ch)]
    lo, hi = result["ratios"].index(ch["from"]), result["ratios"].index(ch["to"])
    return (f"Synthetic data {word} the MNLI-HANS gap: the gap (MNLI acc - HANS non-entailment acc) went from "
            f"{_num(sub['gap'][lo])} at {ch['from']:.0%} synthetic to {_num(sub['gap'][hi])} at {ch['to']:.0%}, "
            f"a change of {_num(ch['value'], sign=True)} ({pct} % item-bootstrap CI {_num(ch['ci'][0], True)} to "
            f"{_num(ch['ci'][1], True)}); Pearson r of gap vs share {_num(tr['r'], True)} "
            f"(CI {_num(tr['ci'][0], True)} to {_num(tr['ci'][1], True)})." + _shift(result, lo, hi))


def _shift(result: Mapping[str, Any], lo: int, hi: int) -> str:
    """HANS entailment and both-label accuracy over the same shares, and, when the gap narrowed while the
    entailment accuracy fell and the both-label accuracy did not rise, that this is a shift of the label."""
    ctx = result.get("context", {})
    parts = [f"HANS {label} accuracy went from {_num(c['acc'][lo])} to {_num(c['acc'][hi])} (change "
             f"{_num(c['change']['value'], True)}, CI {_num(c['change']['ci'][0], True)} to "
             f"{_num(c['change']['ci'][1], True)})"
             for name, label in (("entailment", "entailment"), ("both_labels", "both-label")) if (c := ctx.get(name))]
    if not parts:
        return ""
    text = " " + " and ".join(parts) + "."
    ent, both = ctx.get("entailment"), ctx.get("both_labels")
    if (result.get("verdict") == "narrowed" and ent is not None and verdict(ent["change"]) == "narrowed"
            and (both is None or verdict(both["change"]) != "widened")):
        text += (" So the gap narrowed because the model answers non-entailment to more HANS items, a shift of "
                 "its predicted label, not because the blind spot closed.")
    return text


def from_items(ratios: Sequence[float], mnli: Sequence[Mapping[str, float]],
               hans: Mapping[str, Sequence[Mapping[str, float]]], n_boot: int, seed: int,
               hans_context: Mapping[str, Sequence[Mapping[str, float]]] | None = None) -> dict[str, Any]:
    """`gap_study` from per-model item maps (doc_id -> value, one map per ratio), on the items every model has,
    with the `CONTEXT` metrics given in `hans_context` and the generated `sentence`."""
    _, m = bootstrap.align(mnli)
    subsets = {name: bootstrap.align(per_model)[1] for name, per_model in hans.items()}
    out = gap_study(ratios, m, {k: v for k, v in subsets.items() if v.size}, n_boot, seed)
    if hans_context:
        out["context"] = context(ratios, {k: bootstrap.align(v)[1] for k, v in hans_context.items()},
                                 n_boot, seed + 100)
    out["sentence"] = sentence(out)
    return out
