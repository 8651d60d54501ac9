"""Below chance: exact one-sided binomial tests of correct answers against guessing.

F2 tests the headline benchmark's items of the most corrupted model; Fig. 4 and its tables test
every MMLU subject of every model, with Holm and Benjamini–Hochberg corrections (docs/analysis.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy import stats as sps

from faco.analysis import multiple, stats
from faco.analysis.inputs import Evals, Evaluated, lookup, mean, spec
from faco.analysis.schema import ChanceTest, ModelRef, OverallTest, SubjectsBelowChance, SubjectTest
from faco.roles import Role


def chance(ev: Evals, bench: str) -> float | None:
    """Chance accuracy: the eval's own `chance` (mean 1/options over items) or 1/choices of the suite."""
    for evs in ev.grid.values():
        c = lookup(evs[0], bench).get("chance")
        if isinstance(c, (int, float)):
            return float(c)
    k = s.choices if (s := spec(bench)) else None
    return 1 / k if k else None


def at_max(evs: Sequence[Evaluated], ratio: float, bench: str, metric: str, chance: float | None) -> ChanceTest:
    """The items of the most corrupted model (`evs`: its seeds, trained at `ratio`) against chance; with
    several seeds every seed is tested and the least significant one kept (below chance means below
    chance in every seed)."""
    unparsed = mean([lookup(e, bench).get("unparsed") for e in evs])
    tests = _binomial(evs, bench, metric, chance)
    if not tests:
        return ChanceTest(ratio=ratio, unparsed=unparsed)
    worst = max(tests, key=lambda t: t.p_below or 0.0)
    return worst.model_copy(update={"ratio": ratio, "seeds": len(tests), "unparsed": unparsed})


def _binomial(evs: Sequence[Evaluated], bench: str, metric: str, chance: float | None) -> list[ChanceTest]:
    """One test per seed, none when a seed lacks 0/1 per-item results or there is no chance level."""
    tests = []
    for e in evs:
        items = e.items(bench, metric)
        if not items or chance is None or not all(v in (0.0, 1.0) for v in items.values()):
            return []
        n, correct = len(items), round(sum(items.values()))
        p = float(sps.binomtest(correct, n, chance, alternative="less").pvalue)
        tests.append(ChanceTest(ratio=0.0, correct=correct, n=n, acc=correct / n, chance=chance, p_below=p))
    return tests


def subjects(ev: Evals, choices: int, alpha: float) -> list[SubjectsBelowChance]:
    """Per MMLU subject and overall, per grid model (by ratio) and then the base model: binomial test vs
    1/k, p raw and Holm / BH adjusted."""
    models = [(ModelRef(role=Role.GRID, ratio=r), ev.grid[r]) for r in ev.ratios]
    if ev.base is not None:
        models.append((ModelRef(role=Role.BASE), [ev.base]))
    return [t for ref, evs in models if (t := _model_subjects(ref, evs, choices, alpha)) is not None]


def _model_subjects(ref: ModelRef, evs: Sequence[Evaluated], choices: int, alpha: float
                    ) -> SubjectsBelowChance | None:
    found = (evs[0].benchmarks.get("mmlu") or {}).get("subtasks") or {}
    counts: dict[str, tuple[float, int, int]] = {}
    for subject in sorted(found):
        accs = [((e.benchmarks["mmlu"].get("subtasks") or {}).get(subject, {}).get("metrics", {})
                 .get("acc", {}).get("value")) for e in evs]
        acc, n = mean(accs), found[subject].get("n")
        if acc is not None and n:
            counts[subject] = (acc, n, round(acc * n))
    if not counts:
        return None
    raw = [stats.below_chance(correct, n, choices).p_below for _, n, correct in counts.values()]
    per = {s: SubjectTest(acc=acc, n=n, p_below=p, p_holm=h, q_bh=q)
           for (s, (acc, n, _)), p, h, q in zip(counts.items(), raw, multiple.holm(raw),
                                                multiple.benjamini_hochberg(raw), strict=True)}
    total_n = sum(n for _, n, _ in counts.values())
    overall = stats.below_chance(sum(c for _, _, c in counts.values()), total_n, choices)
    return SubjectsBelowChance(
        model=ref, overall=OverallTest(acc=overall.acc, n=total_n, p_below=overall.p_below), subjects=per,
        tests=len(per), significantly_below=sorted(k for k, v in per.items() if v.p_holm < alpha),
        raw_below=sorted(k for k, v in per.items() if v.p_below < alpha))
