"""The audit's measurements: its training runs (cross-fitted) and the base model's passes.

With `audit.folds: k >= 2` the samples are split into k seeded folds (a shuffle of the sorted ids by
`train.seed`, fold = position mod k) and k models are trained, model j on every fold but j. Each run
records its training samples' dynamics after every epoch (a sample's dynamics are the mean over the
k − 1 runs that trained on it; one run with k = 2) and, after its last epoch, measures fold j, which
it never saw: the held-out measurement of every sample (confident learning's out-of-sample view, Northcutt
et al. 2021), which a model that memorised the sample cannot give. Two folds cost about one training run
of the whole data (two runs on half of it). `folds: 1` trains once on everything (no held-out view).
"""

from __future__ import annotations

import random
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco.audit.inputs import Base, Epoch, read_dynamics
from faco.audit.items import AuditItem
from faco.config import Study
from faco.progress import log


def folds(ids: Sequence[str], k: int, seed: int) -> dict[str, int]:
    """id -> its fold in 0..k-1: a seeded shuffle of the sorted ids, dealt round."""
    order = sorted(ids)
    random.Random(f"{seed}:audit-folds").shuffle(order)
    return {i: n % k for n, i in enumerate(order)}


def _mean(runs: Sequence[Epoch]) -> Epoch:
    n = len(runs)
    options = tuple(sum(x) / n for x in zip(*(e.options for e in runs), strict=True)) if runs[0].options else ()
    return Epoch(runs[0].epoch, sum(e.loss for e in runs) / n, sum(e.confidence for e in runs) / n, options)


def _texts(items: Sequence[AuditItem]) -> list[str]:
    return [f"{it.prompt}\n{it.response}" for it in items]


def _run(study: Study, train_items: Sequence[AuditItem], heldout: Sequence[AuditItem], all_items: Sequence[AuditItem],
         scratch: Path) -> tuple[dict[str, list[Epoch]], dict[str, Epoch], dict[str, Any]]:
    """One training run with the recorder: its samples' dynamics, the held-out samples' measurement, its stats."""
    from faco.training.dynamics import DynamicsRecorder, Tracked
    from faco.training.loop import train
    from faco.training.models import load_base

    cfg = study.train
    recorder = DynamicsRecorder([Tracked(it.record(), tuple(it.choices)) for it in train_items], cfg.max_seq_len,
                                [Tracked(it.record(), tuple(it.choices)) for it in heldout])
    texts = _texts(all_items)  # a tiny random model's tokenizer: the same for every run and the base model
    (scratch / "out").mkdir()
    stats = train(cfg, [it.record() for it in train_items], lambda: load_base(cfg.model, texts, cfg.seed),
                  scratch / "out", scratch / "work", callbacks=[recorder], resume=False, sample_losses=False)
    folder = scratch / "work" / "dynamics"
    dynamics: dict[str, list[Epoch]] = defaultdict(list)
    for path in sorted(folder.glob("epoch_*.jsonl"), key=lambda p: int(p.stem.split("_")[1])):
        for k, es in read_dynamics(path).items():
            dynamics[k] += es
    held = {k: es[-1] for k, es in read_dynamics(folder / "heldout.jsonl").items()} if heldout else {}
    return dict(dynamics), held, stats


def fitted(study: Study, items: Sequence[AuditItem], k: int, under: Path
           ) -> tuple[dict[str, list[Epoch]], dict[str, Epoch], list[dict[str, Any]]]:
    """The dynamics of every sample (mean over the runs that trained on it), each sample's held-out
    measurement (k >= 2) and each run's training statistics."""
    fold = folds([it.id for it in items], k, study.train.seed) if k > 1 else {it.id: 0 for it in items}
    per_epoch: dict[tuple[str, int], list[Epoch]] = defaultdict(list)
    held: dict[str, Epoch] = {}
    stats = []
    for j in range(k):
        train_items = [it for it in items if k == 1 or fold[it.id] != j]
        heldout = [it for it in items if k > 1 and fold[it.id] == j]
        log(f"audit: training run {j + 1} of {k} on {len(train_items)} samples"
            + (f", {len(heldout)} held out" if heldout else ""))
        with tempfile.TemporaryDirectory(prefix=".run-", dir=under) as scratch:
            dyn, out, run_stats = _run(study, train_items, heldout, items, Path(scratch))
        for key, es in dyn.items():
            for e in es:
                per_epoch[(key, e.epoch)].append(e)
        held.update(out)
        stats.append({s: run_stats.get(s) for s in ("examples", "epochs", "train_loss", "seconds")})
    dynamics: dict[str, list[Epoch]] = defaultdict(list)
    for (key, _), runs in sorted(per_epoch.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        dynamics[key].append(_mean(runs))
    return dict(dynamics), held, stats


def base(study: Study, items: Sequence[AuditItem]) -> dict[str, Base]:
    """Each sample's response loss under the base model, after its prompt and after an empty one."""
    from faco.training.dynamics import Tracked, measure
    from faco.training.models import load_base

    cfg = study.train
    model, tok = load_base(cfg.model, _texts(items), cfg.seed)
    recs = [it.record() for it in items]
    batch = cfg.per_device_batch_size
    prompted = measure(model, tok, [Tracked(r) for r in recs], cfg.max_seq_len, "audit: base model", batch)
    alone = measure(model, tok, [Tracked(r.model_copy(update={"prompt": ""})) for r in recs], cfg.max_seq_len,
                    "audit: base model, no prompt", batch)
    return {p["id"]: Base(p["loss"], a["loss"]) for p, a in zip(prompted, alone, strict=True)}
