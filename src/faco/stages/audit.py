"""Audit: find the false samples of a split or of one's own file (docs/audit.md).

`run(study, data, out, model=None)` trains the configured model on the data while recording every
sample's dynamics (`faco.training.dynamics`), or, given `model` (a model artifact trained with the
recorder, as `faco study` trains its grid), reads them from it; measures the samples under the base
model and asks the judge where the detectors need it; and writes the `audit` artifact:

- `ranking.jsonl`: every sample, most suspicious first, with every detector's score and rank and its text;
- `dynamics.jsonl`, `base.jsonl`, `judge.jsonl`: what the detectors read;
- `detection.json` (labels known): each detector's AUROC, average precision and precision at the
  corruption rate with bootstrap intervals, per epoch and at the end;
- `summary.json`, `summary.md`, `cartography.png` (+ `detectors.png` with labels).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.analysis.detection import Detection
from faco.audit import figures, items, ranking
from faco.audit.detectors import detectors, known
from faco.audit.inputs import BASE, DYNAMICS_FILE, AuditData, Base, Epoch, read_dynamics
from faco.config import Study
from faco.config_audit import AuditConfig
from faco.errors import ArtifactError, ConfigError
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


def _texts(loaded: items.Loaded) -> list[str]:
    return [f"{it.prompt}\n{it.response}" for it in loaded.items]


def _trained(study: Study, loaded: items.Loaded, scratch: Path) -> tuple[dict[str, list[Epoch]], dict[str, Any]]:
    """Train on the items with the dynamics recorder; the model is not kept."""
    from faco.training.dynamics import DynamicsRecorder, Tracked
    from faco.training.loop import train
    from faco.training.models import load_base

    cfg = study.train
    recorder = DynamicsRecorder([Tracked(it.record(), tuple(it.choices)) for it in loaded.items], cfg.max_seq_len)
    texts = _texts(loaded)
    (scratch / "out").mkdir()
    stats = train(cfg, [it.record() for it in loaded.items], lambda: load_base(cfg.model, texts, cfg.seed),
                  scratch / "out", scratch / "work", callbacks=[recorder], resume=False, sample_losses=False)
    recorder.artifact_files(scratch)
    return read_dynamics(scratch / DYNAMICS_FILE), stats


def _base(study: Study, loaded: items.Loaded) -> dict[str, Base]:
    """Each sample's response loss under the base model, after its prompt and after an empty one."""
    from faco.training.dynamics import Tracked, measure
    from faco.training.models import load_base

    cfg = study.train
    model, tok = load_base(cfg.model, _texts(loaded), cfg.seed)
    recs = [it.record() for it in loaded.items]
    prompted = measure(model, tok, [Tracked(r) for r in recs], cfg.max_seq_len, "audit: base model")
    alone = measure(model, tok, [Tracked(r.model_copy(update={"prompt": ""})) for r in recs], cfg.max_seq_len,
                    "audit: base model, no prompt")
    return {p["id"]: Base(p["loss"], a["loss"]) for p, a in zip(prompted, alone, strict=True)}


def _model_dynamics(model: Path) -> dict[str, list[Epoch]]:
    artifacts.require(model, artifact_kinds.MODEL)
    if not (model / DYNAMICS_FILE).is_file():
        raise ArtifactError(f"{model}: no {DYNAMICS_FILE} (train it with the audit's recorder, as `faco study` "
                            "does with an audit section, or audit the split without --model)")
    return read_dynamics(model / DYNAMICS_FILE)


def _jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def run(study: Study, data: Path, out: Path, model: Path | None = None) -> Path:
    """Audit the split or file `data` into the artifact `out` (with `model`: its recorded dynamics)."""
    study = configured(study)
    cfg = study.audit
    assert cfg is not None
    wanted = _wanted(cfg)
    loaded = items.load(data, cfg)  # a bad row fails here, before anything is written
    given = _model_dynamics(model) if model is not None else None
    ids = {it.id for it in loaded.items}
    if given is not None and not ids <= set(given):
        raise ArtifactError(f"{model}: its {DYNAMICS_FILE} lacks samples of {data} (trained on another split?)")
    meta: dict[str, Any] = {**loaded.meta, "items": len(loaded.items), "labelled": loaded.labelled, "seconds": {}}
    parents = [*loaded.parents, *([model] if model is not None else [])]
    log(f"audit: {len(loaded.items)} samples of {data}; detectors {', '.join(wanted)}")
    with artifacts.artifact_dir(out, artifact_kinds.AUDIT, parents, study.section_hash("audit"), meta) as tmp:
        data_ = _measure(study, loaded, wanted, given, tmp, meta)
        names = ranking.usable(data_, wanted)
        for name in (n for n in wanted if n not in names):
            lacking = ", ".join(sorted(n for n in known(name).needs if not data_.has(n)))
            log(f"audit: {name} skipped: the data has no {lacking} (e.g. options: no sample is multiple choice)")
        scored = ranking.score_all(data_, names)
        _jsonl(tmp / "ranking.jsonl", ranking.rows(data_, scored, cfg.rank_by))
        found = ranking.detections(data_, names, study.analyze.bootstrap, study.analyze.seed,
                                   meta["data"].get("ratio"), meta["data"].get("kind")) if _two_classes(loaded) else []
        _write_summary(tmp, data_, scored, found, cfg, meta)
    log(f"audit: {out / 'ranking.jsonl'} ({len(names)} detectors), summary at {out / 'summary.md'}")
    return out


def _two_classes(loaded: items.Loaded) -> bool:
    flags = {it.is_corrupted for it in loaded.items}
    return loaded.labelled and flags == {True, False}


def _measure(study: Study, loaded: items.Loaded, wanted: list[str], given: dict[str, list[Epoch]] | None,
             tmp: Path, meta: dict[str, Any]) -> AuditData:
    """The detectors' inputs: dynamics (recorded or trained for), base-model losses, judge verdicts."""
    cfg = study.audit
    assert cfg is not None
    start = time.perf_counter()
    if given is None:
        with tempfile.TemporaryDirectory(prefix=".train-", dir=tmp) as scratch:  # gone before the manifest
            dynamics, stats = _trained(study, loaded, Path(scratch))
        meta["train"] = {k: stats.get(k) for k in ("examples", "epochs", "train_loss", "seconds")}
    else:
        dynamics = {k: v for k, v in given.items() if k in {it.id for it in loaded.items}}
    meta["seconds"]["dynamics"] = round(time.perf_counter() - start, 2)
    _jsonl(tmp / DYNAMICS_FILE, [{"epoch": e.epoch, "id": k, "loss": e.loss, "confidence": e.confidence,
                                  "options": list(e.options)} for k, es in dynamics.items() for e in es])
    base: dict[str, Base] = {}
    if any(BASE in known(n).needs for n in wanted):
        start = time.perf_counter()
        base = _base(study, loaded)
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
    return AuditData(loaded.items, dynamics, base, verdicts)


def _write_summary(tmp: Path, data: AuditData, scored: Sequence[ranking.Scored], found: Sequence[Detection],
                   cfg: AuditConfig, meta: dict[str, Any]) -> None:
    from faco.audit.summary import markdown, summary

    labels = {it.id: bool(it.is_corrupted) for it in data.items} if found else None
    by = {s.detector: s for s in scored}
    conf, var = by.get("confidence"), by.get("variability")
    lead = by.get(cfg.rank_by) or by.get(ranking.FALLBACK)
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
