"""Study: every stage in order, into one output directory, reusing finished artifacts."""

from __future__ import annotations

import time
from pathlib import Path

from faco import artifacts
from faco.config import Study
from faco.progress import log
from faco.stages import analyze, corrupt, evaluate, generate, ingest, report, train


def _done(out: Path, study: Study, sections: tuple[str, ...], parents: list[Path]) -> bool:
    """Whether `out` is an intact artifact made by this config from exactly these parents."""
    if not (out / artifacts.MANIFEST).is_file():
        return False
    m = artifacts.read_manifest(out)
    recorded = [p["manifest_sha256"] for p in m["parents"]]
    current = [artifacts.manifest_hash(p) for p in parents]
    return m["config_hash"] == study.section_hash(*sections) and recorded == current and not artifacts.verify(out)


def _stage(name: str, out: Path, study: Study, section: str, parents: list[Path], fn, *args) -> Path:  # type: ignore[no-untyped-def]
    if _done(out, study, (section,), parents):
        log(f"{name}: up to date ({out})")
        return out
    start = time.perf_counter()
    fn(study, *args, out)
    log(f"{name}: done in {time.perf_counter() - start:.0f}s")
    return out


def run(study: Study, out: Path) -> Path:
    """Run ingest → generate → corrupt → train/evaluate per ratio (+ recovery) → analyze → report."""
    out = Path(out)
    src = _stage("ingest", out / "ingest", study, "ingest", [], ingest.run)
    pairs = _stage("generate", out / "pairs", study, "generate", [src], generate.run, src)
    splits = _stage("corrupt", out / "splits", study, "corrupt", [pairs], corrupt.run, pairs)
    models, evals = [], []
    for r in study.corrupt.ratios:
        tag = corrupt.ratio_tag(r)
        m = _stage(f"train {tag}", out / "train" / tag, study, "train", [splits],
                   lambda s, o, r=r: train.run(s, splits, r, o))
        e = _stage(f"evaluate {tag}", out / "eval" / tag, study, "evaluate", [m], evaluate.run, m)
        models.append(m)
        evals.append(e)
    rec = study.train.recovery
    if rec is not None:
        start = out / "train" / corrupt.ratio_tag(rec.from_ratio)
        tag = f"recovery_from_{corrupt.ratio_tag(rec.from_ratio)}"
        m = _stage(f"train {tag}", out / "train" / tag, study, "train", [splits, start],
                   lambda s, o: train.run(s, splits, 0.0, o, start=start))
        evals.append(_stage(f"evaluate {tag}", out / "eval" / tag, study, "evaluate", [m], evaluate.run, m))
    analysis = out / "analysis"
    analyze.run(study, evals, models, analysis)
    rep = report.run(study, analysis, out / "report")
    log(f"study {study.name}: report at {rep / 'report.md'}")
    return rep
