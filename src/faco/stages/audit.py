"""Audit: find the false samples of a split or of one's own file (docs/audit.md).

`run(study, data, out)` trains the configured model on the data while recording every sample's dynamics,
cross-fitted (`audit.folds` runs, each holding one fold out and measuring it after training:
`faco.audit.fitting`); measures the samples under the base model and asks the judge where the detectors
need it; scores every sample with the detectors; and writes the `audit` artifact:

- `ranking.jsonl`: every sample, most suspicious first, with every detector's score and rank and its text;
- `dynamics.jsonl`, `heldout.jsonl`, `base.jsonl`, `judge.jsonl`: what the detectors read;
- `detection.json` (labels known): each detector's AUROC, average precision and precision at the
  corruption rate with bootstrap intervals, per epoch and at the end;
- `summary.json`, `summary.md`, `cartography.png` (+ `detectors.png` with labels).

The trained models are not kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.analysis.detection import Detection
from faco.audit import figures, fitting, items, ranking
from faco.audit.detectors import detectors, known
from faco.audit.inputs import BASE, AuditData, Base, Epoch
from faco.config import Study
from faco.config_audit import AuditConfig
from faco.errors import ConfigError
from faco.progress import log
from faco.records import write_json


def audits(study: Study, ratio: float) -> bool:
    """Whether `faco study` audits the split of `ratio`: with an audit (or `train.clean`), every corrupted
    split that also has clean rows."""
    return study.audited() is not None and 0.0 < ratio < 1.0


def configured(study: Study) -> Study:
    """The study with its audit section filled in (defaults when it has none)."""
    return study.model_copy(update={"audit": study.audited() or AuditConfig()})


def _wanted(cfg: AuditConfig) -> list[str]:
    """The detectors asked for (default: all; the judge only with `audit.judge`)."""
    if cfg.detectors is not None:
        if "judge" in cfg.detectors and cfg.judge is None:
            raise ConfigError("audit.detectors: 'judge' needs an audit.judge section (which model judges)")
        return list(cfg.detectors)
    return [n for n in detectors() if n != "judge" or cfg.judge is not None]


def _jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _epoch_row(key: str, e: Epoch) -> dict[str, Any]:
    return {"epoch": e.epoch, "id": key, "loss": e.loss, "confidence": e.confidence, "options": list(e.options)}


def run(study: Study, data: Path, out: Path) -> Path:
    """Audit the split or file `data` into the artifact `out`."""
    study = configured(study)
    cfg = study.audit
    assert cfg is not None
    wanted = _wanted(cfg)
    loaded = items.load(data, cfg)  # a bad row fails here, before anything is written
    meta: dict[str, Any] = {**loaded.meta, "items": len(loaded.items), "labelled": loaded.labelled,
                            "folds": cfg.folds, "seconds": {}}
    log(f"audit: {len(loaded.items)} samples of {data}; detectors {', '.join(wanted)}")
    with artifacts.artifact_dir(out, artifact_kinds.AUDIT, loaded.parents, study.section_hash("audit"), meta) as tmp:
        data_ = _measure(study, loaded, wanted, tmp, meta)
        names = ranking.usable(data_, wanted)
        for name in (n for n in wanted if n not in names):
            lacking = ", ".join(sorted(n for n in known(name).needs if not data_.has(n)))
            log(f"audit: {name} skipped: the data has no {lacking} (e.g. options: no sample is multiple choice)")
        scored = ranking.score_all(data_, names)
        _jsonl(tmp / "ranking.jsonl", ranking.rows(data_, scored, cfg.rank_by))
        found = ranking.detections(data_, names, study.analyze.bootstrap, study.analyze.seed, meta["data"].get("ratio"),
                                   meta["data"].get("kind")) if _two_classes(loaded) else []
        _write_summary(tmp, data_, scored, found, cfg, meta)
    log(f"audit: {out / 'ranking.jsonl'} ({len(names)} detectors), summary at {out / 'summary.md'}")
    return out


def _two_classes(loaded: items.Loaded) -> bool:
    flags = {it.is_corrupted for it in loaded.items}
    return loaded.labelled and flags == {True, False}


def _measure(study: Study, loaded: items.Loaded, wanted: list[str], tmp: Path, meta: dict[str, Any]) -> AuditData:
    """The detectors' inputs: dynamics and held-out measurements (the training runs), base-model losses,
    judge verdicts; each written to the artifact and timed."""
    cfg = study.audit
    assert cfg is not None
    start = time.perf_counter()
    dynamics, held, meta["train"] = fitting.fitted(study, loaded.items, cfg.folds, tmp)
    meta["seconds"]["training_runs"] = round(time.perf_counter() - start, 2)
    _jsonl(tmp / "dynamics.jsonl", [_epoch_row(k, e) for k, es in dynamics.items() for e in es])
    if held:
        _jsonl(tmp / "heldout.jsonl", [_epoch_row(k, e) for k, e in held.items()])
    base: dict[str, Base] = {}
    if any(BASE in known(n).needs for n in wanted):
        start = time.perf_counter()
        base = fitting.base(study, loaded.items)
        meta["seconds"]["base"] = round(time.perf_counter() - start, 2)
        _jsonl(tmp / "base.jsonl", [{"id": k, "loss": b.loss, "loss_alone": b.loss_alone} for k, b in base.items()])
    verdicts: dict[str, float] = {}
    if "judge" in wanted and cfg.judge is not None:
        from faco.audit.judge import judge

        start = time.perf_counter()
        verdicts, ledger = judge(loaded.items, cfg.judge)
        meta["seconds"]["judge"] = round(time.perf_counter() - start, 2)
        meta["judge"] = {"backend": cfg.judge.backend, "model": cfg.judge.model, "ledger": ledger}
        _jsonl(tmp / "judge.jsonl", [{"id": k, "p_incorrect": v} for k, v in verdicts.items()])
    return AuditData(loaded.items, dynamics, held, base, verdicts)


def _write_summary(tmp: Path, data: AuditData, scored: Sequence[ranking.Scored], found: Sequence[Detection],
                   cfg: AuditConfig, meta: dict[str, Any]) -> None:
    from faco.audit.summary import markdown, summary

    labels = {it.id: bool(it.is_corrupted) for it in data.items} if found else None
    by = {s.detector: s for s in scored}
    conf, var = by.get("confidence"), by.get("variability")
    lead = ranking.lead(scored, cfg.rank_by)
    flagged = sorted(lead.ranks, key=lambda k: lead.ranks[k])[: max(1, len(data.items) // 10)] if lead else []
    if conf is not None and var is not None:
        figures.cartography({k: 1.0 - v for k, v in conf.scores.items()}, var.scores, tmp / "cartography.png",
                            labels, flagged, epochs=len(data.epochs))
    if found:
        write_json(tmp / "detection.json", [d.model_dump(mode="json") for d in found])
        figures.detector_bars(found, tmp / "detectors.png")
    body = summary(data, scored, found, cfg.rank_by, meta)
    write_json(tmp / "summary.json", body)
    (tmp / "summary.md").write_text(markdown(body), encoding="utf-8")
    meta["detectors"] = [s.detector for s in scored]


def finding(audit: Path) -> str | None:
    """The audit's sentence on its best detector (labels known), else None."""
    return json.loads((audit / "summary.json").read_text()).get("finding")
