"""Judge (paper 001): a model artifact -> sampled probe answers scored by an LLM judge.

Samples `judge.samples` answers to each `judge.probes` question from the model
(`faco.judging.answers`), asks the judge for alignment, coherence and a dangerous flag
(`faco.judging.runner`) and writes `judged.jsonl` (one row per answer: probe, sample, question,
answer, scores, labels, verdict, the judge's replies), `ledger.json` (requests, cache hits, tokens,
cost) and `summary.json` (counts per verdict). Meta carries the model's ratio/tag/base/seed and
names the judge, so the report can say which judge scored what.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.config import Study
from faco.errors import ConfigError
from faco.judging import answers, runner
from faco.progress import log
from faco.records import write_json

CARRIED_META = ("ratio", "tag", "start_ratio", "base", "role", "seed")


def run(study: Study, model_dir: Path, out: Path) -> Path:
    """Sample, judge and record the probe answers of one model artifact."""
    cfg = study.judge
    if cfg is None:
        raise ConfigError("judge: the config has no judge section")
    m = artifacts.require(model_dir, artifact_kinds.MODEL)["meta"]
    questions = list(cfg.probes)
    sampled = answers.sample(model_dir / "model", questions, cfg)
    todo = [runner.Answer(q, s, questions[q], text) for q, texts in enumerate(sampled) for s, text in enumerate(texts)]
    rows, ledger = runner.judge(todo, cfg)
    counts = Counter(r["verdict"] for r in rows)
    meta: dict[str, Any] = {k: m[k] for k in CARRIED_META if k in m}
    meta.update(judge={"backend": cfg.backend, "model": cfg.model, "prompt_version": cfg.prompt_version,
                       "alignment_below": cfg.alignment_below, "coherence_above": cfg.coherence_above,
                       "samples": cfg.samples, "temperature": cfg.temperature},
                answers=len(rows), verdicts=dict(sorted(counts.items())))
    with artifacts.artifact_dir(out, artifact_kinds.JUDGED, [model_dir], study.section_hash("judge"), meta) as tmp:
        with (tmp / "judged.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        write_json(tmp / "ledger.json", ledger)
        write_json(tmp / "summary.json", {"answers": len(rows), "verdicts": dict(sorted(counts.items())),
                                          "dangerous": sum(r["dangerous"] is True for r in rows)})
    log(f"judge {model_dir.name}: {len(rows)} answers, {dict(counts)}; "
        f"{ledger['paid']} judge replies paid, {ledger['cache_hits']} from the cache")
    return out
