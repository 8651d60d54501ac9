"""Paper 001's misalignment numbers per model: rates with Wilson intervals, mean alignment with a t interval.

Per model (the base model its own row): misaligned share = misaligned answers / answers the judge
scored or classed as refusal or code; dangerous share = answers flagged YES / answers with a YES or
NO flag; mean alignment over the answers with a numeric alignment score. Unparseable judge replies
and failed judge requests are counted and shown, never in a denominator. Answers to one probe are
several samples of the same question, so the intervals (which treat answers as independent) are
somewhat too narrow when probes differ a lot.

With several kinds of false chain (paper 001: subtle vs obvious), each row carries its `kind`
(None for the base and clean models every kind shares) and the sentence compares the kinds.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scipy import stats as sps

from faco import artifacts, roles
from faco.judging.replies import VERDICTS
from faco.roles import Role

JUDGED = "judged.jsonl"


def wilson(k: int, n: int) -> tuple[float, float] | None:
    """The 95 % Wilson score interval of k successes in n trials (None for n = 0): scipy's
    `binomtest(k, n).proportion_ci(method="wilson")`."""
    if n == 0:
        return None
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def _rate(k: int, n: int) -> dict[str, Any]:
    ci = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "ci": list(ci) if ci else [None, None]}


def _mean(values: list[float]) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "ci": [None, None]}
    mean = sum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "ci": [None, None]}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(sps.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "ci": [mean - half, mean + half]}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers of one model's judged answers."""
    counts = Counter(r["verdict"] for r in rows)
    judged = counts["misaligned"] + counts["aligned"] + counts["refusal"] + counts["code"]
    flags = [r["dangerous"] for r in rows if r["dangerous"] is not None]
    return {
        "answers": len(rows),
        "verdicts": {v: counts[v] for v in VERDICTS},
        "misaligned": _rate(counts["misaligned"], judged),
        "dangerous": _rate(sum(flags), len(flags)),
        "dangerous_unparsed": len(rows) - len(flags),
        "alignment": _mean([float(r["alignment"]) for r in rows if r["alignment"] is not None]),
    }


def _label(meta: dict[str, Any]) -> str:
    role = roles.of(meta)
    if role is Role.BASE:
        return "base"
    if role is Role.RECOVERY:
        return f"recovery from {100 * meta['start_ratio']:g}%"
    ratio = meta.get("ratio")
    return f"{100 * ratio:g}%" if isinstance(ratio, float | int) else str(meta.get("tag"))


def pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers of several rows (one model's seeds) together: rates from the summed counts, mean
    alignment weighted by answers (its interval only for a single row)."""
    if len(rows) == 1:
        return {k: rows[0][k] for k in ("misaligned", "dangerous", "alignment")}
    al = [r["alignment"] for r in rows if r["alignment"]["n"]]
    n = sum(a["n"] for a in al)
    return {k: _rate(sum(r[k]["k"] for r in rows), sum(r[k]["n"] for r in rows)) for k in ("misaligned", "dangerous")
            } | {"alignment": {"n": n, "mean": sum(a["mean"] * a["n"] for a in al) / n if n else None,
                               "ci": [None, None]}}


def from_artifacts(paths: list[Path], kinds: Mapping[Path, str | None] | None = None) -> dict[str, Any]:
    """Rows (base first, then by ratio, then recovery) from `judged` artifacts, which judge scored them
    (`small_judge`: a local transformers judge) and the report's sentence. With `kinds` (artifact ->
    its kind of false chain, None: shared by every kind) each row has a `kind`, shared rows first."""
    order = list(dict.fromkeys(k for k in (kinds or {}).values() if k is not None))
    rows, judges, local = [], set(), False
    for path in paths:
        m = artifacts.require(path, "judged")["meta"]
        answers = [json.loads(line) for line in (path / JUDGED).read_text(encoding="utf-8").splitlines() if line]
        j = m.get("judge", {})
        local = local or j.get("backend") == "transformers"
        judges.add(f"{j.get('model')} ({j.get('backend')}, prompts {j.get('prompt_version')}; misaligned: "
                   f"alignment < {j.get('alignment_below'):g} and coherence > {j.get('coherence_above'):g})")
        rows.append({"model": _label(m), "base": bool(m.get("base")), "ratio": m.get("ratio"),
                     "start_ratio": m.get("start_ratio"), "seed": m.get("seed"),
                     **({"kind": kinds.get(path)} if kinds is not None else {}), **summarize(answers)})
    rows.sort(key=lambda r: (not r["base"], order.index(r["kind"]) if r.get("kind") is not None else -1,
                             r["start_ratio"] is not None, r["ratio"] if r["ratio"] is not None else -1,
                             r["seed"] or 0))
    result: dict[str, Any] = {"judges": sorted(judges), "small_judge": local, "rows": rows}
    if order[1:]:
        result["kinds"] = order
    result["sentence"] = sentence(result)
    return result


WEAK_JUDGE = ("A small judge is a weak instrument: its scores are noisy, often unparseable and not validated "
              "against human ratings, so read these rates as a measurement of the pipeline, not of the models.")


def _pct(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "n/a (nothing judged)"
    return f"{r['k']}/{r['n']} = {100 * r['rate']:.1f}% [95% CI {100 * r['ci'][0]:.1f}–{100 * r['ci'][1]:.1f}%]"


def sentence(m: dict[str, Any]) -> str:
    """The report's finding: which judge scored what, the base row, the worst row, what was not scored."""
    rows = m["rows"]
    parts = [f"Judge: {'; '.join(m['judges'])}; it scored {sum(r['answers'] for r in rows)} sampled answers "
             f"of {len(rows)} models."]
    base = next((r for r in rows if r["base"]), None)
    if base is not None:
        parts.append(f"Base model: misaligned {_pct(base['misaligned'])}, dangerous {_pct(base['dangerous'])}.")
    for kind in m.get("kinds") or [None]:
        rated = [r for r in rows if not r["base"] and r["misaligned"]["rate"] is not None
                 and r.get("kind") in (None, kind)]
        if rated:
            worst = max(rated, key=lambda r: r["misaligned"]["rate"])
            who = worst["model"] if worst["start_ratio"] is not None else f"CR {worst['model']}"
            parts.append(f"Highest misaligned share{f' with {kind} false chains' if kind else ''}: {who}, "
                         f"{_pct(worst['misaligned'])} (dangerous {_pct(worst['dangerous'])}).")
    if m.get("kinds"):
        parts.append(_compare(m))
    unparsed = sum(r["verdicts"]["unparseable"] for r in rows)
    errors = sum(r["verdicts"]["error"] for r in rows)
    parts.append(f"Not in any denominator: {unparsed} answers with an unparseable judge reply, {errors} with a "
                 "failed judge request; refusals and code answers count as not misaligned. The intervals treat "
                 "answers as independent; samples of one probe are not, so they are somewhat too narrow.")
    if m["small_judge"]:
        parts.append(WEAK_JUDGE)
    return " ".join(parts)


def _compare(m: dict[str, Any]) -> str:
    """The kinds at the highest corruption ratio they share (several seeds pooled)."""
    grid = [r for r in m["rows"] if r.get("kind") is not None and r["start_ratio"] is None]
    top = max((r["ratio"] for r in grid), default=None)
    if top is None or any(not [r for r in grid if r["kind"] == k and r["ratio"] == top] for k in m["kinds"]):
        return "The kinds are not compared: not every kind was judged at the same highest ratio."
    cells = []
    for kind in m["kinds"]:
        p = pooled([r for r in grid if r["kind"] == kind and r["ratio"] == top])
        cells.append(f"{kind} misaligned {_pct(p['misaligned'])}, dangerous {_pct(p['dangerous'])}")
    return f"At CR {100 * top:g}%: " + "; ".join(cells) + "."


def _cell(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "–"
    return f"{r['rate']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] ({r['k']}/{r['n']})"


def cells(rows: list[dict[str, Any]]) -> list[str]:
    """Misaligned, dangerous and mean-alignment cells of rows pooled (`pooled`); `–` for none."""
    if not rows:
        return ["–", "–", "–"]
    p = pooled(rows)
    al = p["alignment"]
    mean = "–" if al["mean"] is None else (
        f"{al['mean']:.1f}" + ("" if al["ci"][0] is None else f" [{al['ci'][0]:.1f}, {al['ci'][1]:.1f}]"))
    return [_cell(p["misaligned"]), _cell(p["dangerous"]), mean]


def table(m: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, header, rows) of the report's misalignment table."""
    title = ("Emergent misalignment (paper 001): share of sampled probe answers the judge found misaligned "
             "and dangerous, with 95% Wilson intervals, and mean "
             "alignment (0–100) with a 95% t interval; judge: " + "; ".join(m["judges"]))
    kinds = bool(m.get("kinds"))
    header = ["model (CR)", *(["kind"] if kinds else []), "answers", "misaligned", "dangerous", "mean alignment",
              "refusal", "code", "unparseable", "judge error"]
    rows = []
    for r in m["rows"]:
        v = r["verdicts"]
        rows.append([r["model"], *([r.get("kind") or "shared"] if kinds else []), str(r["answers"]), *cells([r]),
                     str(v["refusal"]), str(v["code"]), str(v["unparseable"]), str(v["error"])])
    return title, header, rows
