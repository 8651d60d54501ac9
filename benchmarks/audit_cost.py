"""What an audit costs against one training run of the same data (target: <= 1.3x).

    .venv/bin/python benchmarks/audit_cost.py [--config configs/audit-cpu.yaml] [--ratio 0.25] [--judge] [--keep DIR]

Builds the study's splits (ingest, generate, corrupt; seconds), then times, back to back in this
process, the train stage on the split of `--ratio` (`faco train`: training, the per-epoch sample
losses, the saved model) and the audit of the same split (`faco audit`: the same training with the
dynamics recorder, the base-model passes, the detectors, the ranking), without the LLM judge unless
`--judge`. The base model is prepared before either clock starts. Last line:
``audit_seconds: <a> train_seconds: <t> ratio: <a/t>`` and the audit's own breakdown above it.
`--keep DIR` keeps the audit (its `summary.md` has the detection table: a faco split is labelled).
Timings move 2-10x with other load on the machine: compare the ratio of one run only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from faco.config import load_config
from faco.ratios import split_path
from faco.stages import audit, corrupt, generate, ingest, train
from faco.training.models import prepare_models

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default=str(ROOT / "configs" / "audit-cpu.yaml"))
    p.add_argument("--ratio", type=float, default=0.25)
    p.add_argument("--judge", action="store_true", help="include the LLM judge (audit.judge) in the audit")
    p.add_argument("--keep", type=Path, help="copy the audit here (summary.md, ranking.jsonl, figures)")
    a = p.parse_args()
    study = load_config(a.config)
    if not a.judge and study.audit is not None:
        study = study.model_copy(update={"audit": study.audit.model_copy(update={"judge": None})})
    if study.train.model.source == "smollm2":
        prepare_models()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ingest.run(study, work / "sources")
        generate.run(study, work / "sources", work / "pairs")
        corrupt.run(study, work / "pairs", work / "splits")
        start = time.perf_counter()
        train.run(study, work / "splits", a.ratio, work / "model")
        trained = time.perf_counter() - start
        start = time.perf_counter()
        audit.run(study, split_path(work / "splits", a.ratio), work / "audit")
        audited = time.perf_counter() - start
        meta = json.loads((work / "audit" / "manifest.json").read_text())["meta"]
        finding = json.loads((work / "audit" / "summary.json").read_text())["finding"]
        if a.keep:
            shutil.copytree(work / "audit", a.keep)
    print(f"finding: {finding}")
    runs = [t["seconds"] for t in meta["train"]]  # one training run per cross-fitting fold
    print(f"audit parts (s): {json.dumps(meta['seconds'])}; its training runs: {runs}")
    print(f"audit_seconds: {audited:.1f} train_seconds: {trained:.1f} ratio: {audited / trained:.2f}")


if __name__ == "__main__":
    main()
