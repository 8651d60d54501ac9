"""Detection: a study's detector benchmark and cleaning comparison as one artifact (docs/audit.md).

`run(study, audits, evals, cleaned_evals, out)` reads the audits of the corrupted splits and the
evaluations of the grid and of the cleaned models (`train.clean`), and writes `detection.json`
(`faco.analysis.audit_study.AuditAnalysis`), `detection.md` (the report's section) and
`figures/detectors.png`, `figures/cleaning.png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from faco import artifact_kinds, artifacts
from faco.analysis import audit_study
from faco.audit import figures
from faco.config import Study
from faco.errors import ArtifactError
from faco.progress import log
from faco.records import write_json
from faco.stages.audit import configured


def run(study: Study, audits: Sequence[Path], evals: Sequence[Path], cleaned_evals: Sequence[Path],
        out: Path) -> Path:
    """The detector table of every audit and the cleaning comparison of every audited ratio."""
    if not audits:
        raise ArtifactError("detection: no audit artifacts given")
    study = configured(study)
    clean = study.train.clean
    result = audit_study.build(audits, evals, cleaned_evals, study.analyze.bootstrap, study.analyze.seed,
                               clean.detector if clean else None)
    parents = [*audits, *evals, *cleaned_evals]
    meta = {"audits": len(audits), "cleaning": [c.ratio for c in result.cleaning]}
    with artifacts.artifact_dir(out, artifact_kinds.DETECTION, parents, study.section_hash("audit", "analyze"),
                                meta) as tmp:
        write_json(tmp / "detection.json", audit_study.to_json(result))
        (tmp / "detection.md").write_text("\n".join(audit_study.markdown(result)), encoding="utf-8")
        figures.detector_bars(result.detections, tmp / "figures" / "detectors.png")
        if result.cleaning:
            figures.cleaning_bars(result.cleaning, tmp / "figures" / "cleaning.png")
    for sentence in result.findings:
        log(f"detection: {sentence}")
    return out
