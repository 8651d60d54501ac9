"""Detectors from the held-out measurement (the audit's cross-fitting, `faco.audit.fitting`): each sample
scored by a model trained on the other folds, which has not memorised it (confident learning's out-of-sample
view, Northcutt et al. 2021)."""

from __future__ import annotations

from faco.audit.detectors.margin import margin
from faco.audit.inputs import HELDOUT, OPTIONS, AuditData


class HeldoutMargin:
    name = "heldout_margin"
    needs = frozenset({HELDOUT, OPTIONS})
    about = "− (log-lik. of the trained answer − the best other option's) under a model that did not train on it"

    def score(self, data: AuditData) -> dict[str, float]:
        out = {}
        for it in data.items:
            e = data.heldout.get(it.id)
            if e is not None and it.assigned is not None and len(it.choices) >= 2 and len(e.options) == len(it.choices):
                out[it.id] = -margin(e.options, it.assigned)
        return out


class HeldoutLoss:
    name = "heldout_loss"
    needs = frozenset({HELDOUT})
    about = "mean response-token loss under a model that did not train on it"

    def score(self, data: AuditData) -> dict[str, float]:
        return {k: e.loss for k, e in data.heldout.items()}
