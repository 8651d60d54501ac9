"""The one interface every detector implements (docs/audit.md: how to add one)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from faco.audit.inputs import AuditData


@runtime_checkable
class Detector(Protocol):
    """Scores samples; a higher score means more suspicious (more likely false)."""

    #: the name configs use (`audit.detectors`, `audit.rank_by`, `train.clean.detector`)
    name: str
    #: the inputs it reads (faco.audit.inputs: dynamics, options, base, judge)
    needs: frozenset[str]
    #: one line for reports: what the score is
    about: str

    def score(self, data: AuditData) -> dict[str, float]:
        """id -> score for every item it can score (others left out)."""
        ...
