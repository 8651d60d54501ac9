"""What detectors read: the items, each one's training dynamics by epoch, its held-out measurement (by a
model that did not train on it), its losses under the base model, and the judge's verdicts; each input
present only when the audit measured it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from faco.audit.items import AuditItem

#: the inputs a detector may need
DYNAMICS, HELDOUT, OPTIONS, BASE, JUDGE = "dynamics", "heldout", "options", "base", "judge"


@dataclass(frozen=True)
class Epoch:
    """One sample after one epoch: response loss, mean token probability, option log-likelihoods."""

    epoch: int
    loss: float
    confidence: float
    options: tuple[float, ...] = ()


@dataclass(frozen=True)
class Base:
    """One sample under the base model: its response loss after the prompt and without it."""

    loss: float
    loss_alone: float


@dataclass(frozen=True)
class AuditData:
    items: list[AuditItem]
    dynamics: dict[str, list[Epoch]] = field(default_factory=dict)
    heldout: dict[str, Epoch] = field(default_factory=dict)
    base: dict[str, Base] = field(default_factory=dict)
    judge: dict[str, float] = field(default_factory=dict)

    def has(self, need: str) -> bool:
        """Whether this input was measured (options: some item has options to compare)."""
        if need == OPTIONS:
            return any(it.choices and it.assigned is not None for it in self.items)
        return bool({DYNAMICS: self.dynamics, HELDOUT: self.heldout, BASE: self.base, JUDGE: self.judge}[need])

    @property
    def epochs(self) -> list[int]:
        return sorted({e.epoch for es in self.dynamics.values() for e in es})

    def until(self, epoch: int) -> AuditData:
        """The same data as it stood after `epoch` (the dynamics of later epochs left out)."""
        return replace(self, dynamics={k: [e for e in es if e.epoch <= epoch] for k, es in self.dynamics.items()})


def read_dynamics(path: Path) -> dict[str, list[Epoch]]:
    """id -> its epochs, in order, from measurements written by `faco.training.dynamics` (or the audit's
    `dynamics.jsonl`)."""
    out: dict[str, list[Epoch]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            out.setdefault(str(r["id"]), []).append(
                Epoch(int(r["epoch"]), float(r["loss"]), float(r["confidence"]), tuple(r.get("options") or ())))
    return {k: sorted(v, key=lambda e: e.epoch) for k, v in out.items()}
