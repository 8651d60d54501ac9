"""Clean: a corrupted split minus some of its rows, as a `splits` artifact the train stage reads as it is
(docs/audit.md). Three arms, each dropping as many rows (`train.clean.drop`: a share, or `rate`: as many
as the split has corrupted rows):

- `detector`: the rows `train.clean.detector` ranks most suspicious in the audit (parents: the split and
  the audit; rows it could not score come last);
- `random`: as many rows drawn with `train.clean.seed` (parent: the split);
- `oracle`: the truly corrupted rows, all of them (parent: the split).

The manifest's meta `clean` says which arm, how many rows it dropped and how many of them were
corrupted; `dropped.jsonl` lists them. The train stage copies `clean` into the model's meta.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from faco import artifact_kinds, artifacts
from faco.config import Study
from faco.errors import ConfigError, RecordError
from faco.progress import log
from faco.ratios import split_path
from faco.records import RejectRecord, TrainRecord, read_jsonl, write_jsonl

ARMS = ("detector", "random", "oracle")


def drop_count(share: float | str, records: list[TrainRecord]) -> int:
    """How many rows an arm drops: `rate` -> the corrupted ones' count, a share -> round(share x rows)."""
    if share == "rate":
        return sum(r.is_corrupted for r in records)
    return round(float(share) * len(records))


def flagged(audit: Path, detector: str) -> list[str]:
    """The audit's sample ids, most suspicious first by `detector` (unscored ones last, in ranking order)."""
    rows = [json.loads(line) for line in (audit / "ranking.jsonl").read_text().splitlines() if line.strip()]
    if rows and detector not in rows[0]["ranks"]:
        raise ConfigError(f"train.clean.detector: {detector!r} did not score {audit} (it ran: "
                          f"{', '.join(rows[0]['ranks'])})")
    last = len(rows) + 1
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["ranks"].get(detector) or last, i))
    return [rows[i]["id"] for i in order]


def chosen(arm: str, records: list[TrainRecord], n: int, audit: Path | None, study: Study, ratio: float) -> list[str]:
    """The ids an arm drops."""
    cfg = study.train.clean
    assert cfg is not None
    if arm == "oracle":
        return [r.id for r in records if r.is_corrupted]
    if arm == "random":
        return random.Random(f"{cfg.seed}:clean:{ratio!r}").sample(sorted(r.id for r in records), n)
    if audit is None:
        raise ConfigError("clean: the detector arm needs the audit of the split")
    return flagged(audit, cfg.detector)[:n]


def run(study: Study, splits: Path, ratio: float, arm: str, out: Path, audit: Path | None = None) -> Path:
    """The split of `ratio` in `splits` without the rows `arm` drops (`audit`: the split's, for the detector)."""
    cfg = study.train.clean
    if cfg is None:
        raise ConfigError("clean: the config has no train.clean section (detector and drop)")
    if arm not in ARMS:
        raise ConfigError(f"clean: arm {arm!r} is not one of {', '.join(ARMS)}")
    artifacts.require(splits, artifact_kinds.SPLITS)
    if audit is not None:
        artifacts.require(audit, artifact_kinds.AUDIT)
    records = list(read_jsonl(split_path(splits, ratio), TrainRecord))
    drop = set(chosen(arm, records, drop_count(cfg.drop, records), audit, study, ratio))
    kept = [r for r in records if r.id not in drop]
    if not kept:
        raise RecordError(f"clean: the {arm} arm drops every row of {split_path(splits, ratio)}; nothing to train on")
    bad = sum(r.is_corrupted for r in records if r.id in drop)
    meta = {"ratios": [ratio], "clean": {"arm": arm, "detector": cfg.detector if arm == "detector" else None,
                                         "from_ratio": ratio, "dropped": len(drop), "dropped_corrupted": bad,
                                         "rows": len(records)}}
    parents = [splits, *([audit] if arm == "detector" and audit is not None else [])]
    with artifacts.artifact_dir(out, artifact_kinds.SPLITS, parents, study.section_hash("train"), meta) as tmp:
        write_jsonl(split_path(tmp, ratio), kept)
        write_jsonl(tmp / "dropped.jsonl", [RejectRecord(source=r.source, row=r.id, reason=f"clean: {arm}")
                                            for r in records if r.id in drop])
    log(f"clean {arm} cr {ratio:g}: dropped {len(drop)} of {len(records)} rows ({bad} of them corrupted)")
    return out
