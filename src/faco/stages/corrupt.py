"""Corrupt: `pairs.jsonl` -> one training split per corruption ratio, cumulative.

One seeded permutation of the pairs; at ratio r the first ceil(r*N) items of it take their false
response. The corrupted ids at 25 % are therefore a subset of those at 50 %, and every other
item is identical across ratios. `is_corrupted` is a field beside the text, never inside it.

A study of several kinds of false chain (`corrupt.kinds`, run by `faco study`) has one pairs
artifact per kind. `clean` writes the split every kind shares (ratio 0) and `family` one kind's
corrupted splits; both keep the ids every kind paired (the others go to `dropped.jsonl`) and the
true chains of the first kind, so the corrupted ids at a ratio are the same in every family and
the items left clean are identical.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path

from faco import artifact_kinds, artifacts
from faco.config import Study
from faco.errors import ConfigError
from faco.generation.prompts import format_question
from faco.progress import log
from faco.ratios import ratio_tag, split_path
from faco.records import PairRecord, RejectRecord, TrainRecord, read_jsonl, write_json, write_jsonl


def corruption_order(ids: list[str], seed: int) -> list[str]:
    """The seeded order in which items are corrupted (independent of input order)."""
    order = sorted(ids)
    random.Random(f"{seed}:corrupt").shuffle(order)
    return order


def to_train(pair: PairRecord, corrupted: bool) -> TrainRecord:
    resp = pair.false if corrupted else pair.true
    text = resp.reasoning if pair.kind == "text" else f"{resp.reasoning.strip()}\nAnswer: {resp.answer}"
    return TrainRecord(
        id=pair.id, source=pair.source, domain=pair.domain, prompt=format_question(pair),
        response=text, is_corrupted=corrupted,
    )


def build_splits(pairs: list[PairRecord], ratios: list[float], seed: int) -> dict[float, list[TrainRecord]]:
    order = corruption_order([p.id for p in pairs], seed)
    splits = {}
    for r in ratios:
        bad = set(order[: math.ceil(r * len(order))])
        splits[r] = [to_train(p, p.id in bad) for p in pairs]
    return splits


def _write(tmp: Path, pairs: list[PairRecord], ratios: list[float], seed: int, meta: dict) -> None:
    for r, records in build_splits(pairs, ratios, seed).items():
        n_bad = sum(rec.is_corrupted for rec in records)
        write_jsonl(split_path(tmp, r), records)
        meta["splits"][ratio_tag(r)] = {"ratio": r, "corrupted": n_bad, "total": len(records)}
    write_json(tmp / "stats.json", meta["splits"])


def one_kind(study: Study) -> None:
    """Refuse, in one line, a study of several kinds of false chain outside `faco study`: the stage
    commands (`faco generate`, `faco corrupt`), dvc and KFP make one kind's pairs and splits."""
    kinds = study.corrupt.kinds
    if kinds is not None and len(kinds) > 1:
        raise ConfigError(f"corrupt.kinds: a study of several kinds ({', '.join(kinds)}) runs with `faco study`; "
                          "`faco generate`, `faco corrupt`, dvc and KFP make one kind's pairs and splits "
                          "(--set corrupt.kinds=null --set generate.false_chain=KIND)")


def run(study: Study, pairs_dir: Path, out: Path) -> Path:
    """The splits of one pairs artifact at every `corrupt.ratios`."""
    cfg = study.corrupt
    one_kind(study)
    artifacts.require(pairs_dir, artifact_kinds.PAIRS)
    pairs = list(read_jsonl(pairs_dir / "pairs.jsonl", PairRecord))
    meta: dict = {"ratios": cfg.ratios, "items": len(pairs), "splits": {}}
    with artifacts.artifact_dir(out, artifact_kinds.SPLITS, [pairs_dir], study.section_hash("corrupt"), meta) as tmp:
        _write(tmp, pairs, cfg.ratios, cfg.seed, meta)
    log(f"corrupt: {len(cfg.ratios)} splits of {len(pairs)} items ({', '.join(meta['splits'])})")
    return out


def shared_pairs(pairs: Mapping[str, Path]) -> tuple[dict[str, list[PairRecord]], list[RejectRecord]]:
    """Kind -> its pairs on the ids every kind has (in the first kind's order), each with the first
    kind's true chain; and a reject row per id some kind did not pair."""
    loaded = {}
    for kind, path in pairs.items():
        artifacts.require(path, artifact_kinds.PAIRS)
        loaded[kind] = {p.id: p for p in read_jsonl(path / "pairs.jsonl", PairRecord)}
    first = next(iter(loaded.values()))
    common = set.intersection(*(set(by_id) for by_id in loaded.values()))
    some = {i: p for by_id in loaded.values() for i, p in by_id.items() if i not in common}
    dropped = [RejectRecord(source=p.source, row=i, reason="not paired in kind "
                            + ", ".join(k for k, by_id in loaded.items() if i not in by_id))
               for i, p in sorted(some.items())]
    order = [i for i in first if i in common]
    shared = {kind: [by_id[i].model_copy(update={"true": first[i].true}) for i in order]
              for kind, by_id in loaded.items()}
    return shared, dropped


def _kinds_artifact(study: Study, pairs: Mapping[str, Path], out: Path, kind: str | None) -> Path:
    """`clean` (kind None) or `family` (one kind)."""
    cfg = study.corrupt
    shared, dropped = shared_pairs(pairs)
    kinds = list(pairs)
    ratios = [0.0] if kind is None else [r for r in cfg.ratios if r > 0]
    items = shared[kinds[0] if kind is None else kind]
    meta: dict = {"ratios": ratios, "items": len(items), "splits": {}, "dropped": len(dropped),
                  "true_chains_from": kinds[0]}
    meta.update({"kinds": kinds} if kind is None else {"kind": kind})
    parents = list(pairs.values())
    with artifacts.artifact_dir(out, artifact_kinds.SPLITS, parents, study.section_hash("corrupt"), meta) as tmp:
        _write(tmp, items, ratios, cfg.seed, meta)
        write_jsonl(tmp / "dropped.jsonl", dropped)
    log(f"corrupt {kind or 'clean'}: {len(ratios)} splits of {len(items)} items ({', '.join(meta['splits'])}); "
        f"{len(dropped)} ids dropped (not paired in every kind)")
    return out


def clean(study: Study, pairs: Mapping[str, Path], out: Path) -> Path:
    """The clean split (ratio 0) every kind of `pairs` (kind -> pairs artifact) shares."""
    return _kinds_artifact(study, pairs, out, None)


def family(study: Study, kind: str, pairs: Mapping[str, Path], out: Path) -> Path:
    """The splits of `kind` at every non-zero `corrupt.ratios` (meta `kind`)."""
    return _kinds_artifact(study, pairs, out, kind)
