"""Detectors that compare with the base model (before training).

- Instruction-following difficulty (Li et al. 2024, "From quantity to quality"): the base model's
  response loss after the prompt divided by its loss without it (after an empty prompt in the same
  chat format). A response the prompt does not make more predictable is suspicious.
- Loss change: the trained model's final response loss divided by the base model's, the share of its
  loss training did not remove. A sample training could not fit like the others is suspicious.
"""

from __future__ import annotations

from faco.audit.inputs import BASE, DYNAMICS, AuditData


class InstructionFollowingDifficulty:
    name = "ifd"
    needs = frozenset({BASE})
    about = "instruction-following difficulty: base loss with the prompt / base loss without it"

    def score(self, data: AuditData) -> dict[str, float]:
        return {k: b.loss / b.loss_alone for k, b in data.base.items() if b.loss_alone > 0}


class LossChange:
    name = "loss_change"
    needs = frozenset({BASE, DYNAMICS})
    about = "final trained loss / base loss: the share of the base model's loss training left"

    def score(self, data: AuditData) -> dict[str, float]:
        return {k: es[-1].loss / data.base[k].loss for k, es in data.dynamics.items()
                if es and k in data.base and data.base[k].loss > 0}
