"""A hand-made study for the analysis tests: CR 0, 50 and 100 %, a base and a recovered model, every
number known by construction (tests/test_report.py checks them by hand, tests/test_analysis_golden.py
against the analysis as it was before it was typed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.config import Study
from faco.evaluation.suite import suite
from faco.stages import analyze

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


def metric(bench: str) -> str:
    group = bench.partition("/")[0]
    return suite()[group].metrics[0] if group in suite() else "acc"


def model(out: Path, ratio: float, start: Path | None = None) -> Path:
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


def entry(score: float, bench: str, stderr: float | None = 0.05) -> dict[str, Any]:
    return {"score": score, "metrics": {metric(bench): {"value": score, "stderr": stderr}}, "n": N}


def samples(tmp: Path, bench: str, correct: list[bool]) -> None:
    (tmp / "samples" / bench).parent.mkdir(parents=True, exist_ok=True)
    (tmp / "samples" / f"{bench}.jsonl").write_text("".join(
        json.dumps({"doc_id": i, "metric": metric(bench), "value": float(c)}) + "\n" for i, c in enumerate(correct)))


def evaluation(out: Path, model: Path | None, key: float | str, heldout: bool = True, items: bool = True) -> Path:
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
    scores: dict[str, Any] = {"arc_challenge": entry(sum(arc) / N, "arc_challenge")}
    halves = {"arc": held[: N // 2], "obqa": held[N // 2:]}  # two training sources: items 0-19 and 20-39
    if heldout:
        scores["heldout"] = entry(sum(held) / N, "heldout") | {"chance": 0.25, "unparsed": 3, "subtasks": {
            src: {"metrics": {metric("heldout"): {"value": sum(h) / len(h), "stderr": 0.1}}, "n": len(h),
                  "chance": 0.25} for src, h in halves.items()}}
    if key in (0.0, 0.5, 1.0):
        scores["epochs"] = {"1": {"arc_challenge": 0.1}, "2": {"arc_challenge": 0.2}}
    if key in (1.0, "base"):
        mmlu = SUBJECTS if key == 1.0 else {"abstract_algebra": 0.3, "anatomy": 0.35}
        scores["mmlu"] = {**entry(sum(mmlu.values()) / len(mmlu), "mmlu"),
                          "subtasks": {s: {"metrics": {"acc": {"value": a, "stderr": None}}, "n": 20}
                                       for s, a in mmlu.items()}}
    with artifacts.artifact_dir(out, artifact_kinds.EVAL, parents, "cfg", meta) as tmp:
        (tmp / "scores.json").write_text(json.dumps(scores))
        if items:
            samples(tmp, "arc_challenge", arc)
            if heldout:
                samples(tmp, "heldout", held)
                for src, h in halves.items():
                    samples(tmp, f"heldout/{src}", h)
        label = 2 if key == "base" else 3 if key == "recovered" else key
        (tmp / "probes.jsonl").write_text(json.dumps({"set": "case_study", "question": "What is 2+2?",
                                                      "answer": f"{int(4 + float(label) * 2)}"}) + "\n")
    return out


def study(root: Path, smoke: Study, heldout: bool = True, items: bool = True) -> Path:
    models, evals = [], []
    for r in (0.0, 0.5, 1.0):
        models.append(model(root / "train" / f"cr_{r}", r))
        evals.append(evaluation(root / "eval" / f"cr_{r}", models[-1], r, heldout, items))
    rec = model(root / "train" / "recovery", 0.0, start=models[-1])
    evals.append(evaluation(root / "eval" / "recovery", rec, "recovered", heldout, items))
    evals.append(evaluation(root / "eval" / "base", None, "base", heldout, items))
    study = smoke.model_copy(update={"analyze": smoke.analyze.model_copy(update={"threshold_fraction": 0.9})})
    return analyze.run(study, evals, [*models, rec], root / "analysis")
