"""Detectors from the training dynamics: the final loss, and dataset cartography (Swayamdipta et al.
2020) over the epochs: confidence (mean over epochs of the mean token probability of the response)
and variability (its standard deviation over epochs, ddof 0)."""

from __future__ import annotations

import numpy as np

from faco.audit.inputs import DYNAMICS, AuditData


class FinalLoss:
    name = "loss"
    needs = frozenset({DYNAMICS})
    about = "mean response-token loss after the last epoch (loss ranking)"

    def score(self, data: AuditData) -> dict[str, float]:
        return {k: es[-1].loss for k, es in data.dynamics.items() if es}


class Confidence:
    name = "confidence"
    needs = frozenset({DYNAMICS})
    about = "1 − cartography confidence: 1 − the mean over epochs of the response's mean token probability"

    def score(self, data: AuditData) -> dict[str, float]:
        return {k: 1.0 - float(np.mean([e.confidence for e in es])) for k, es in data.dynamics.items() if es}


class Variability:
    name = "variability"
    needs = frozenset({DYNAMICS})
    about = "cartography variability: the standard deviation over epochs of the mean token probability"

    def score(self, data: AuditData) -> dict[str, float]:
        return {k: float(np.std([e.confidence for e in es])) for k, es in data.dynamics.items() if es}
