"""The detectors: built-in ones and plug-ins from other packages (entry point group `faco.detectors`,
each naming a class with the `Detector` interface). Every score is "higher = more suspicious"."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points

from faco.audit.detectors.base import Detector
from faco.audit.detectors.base_model import InstructionFollowingDifficulty, LossChange
from faco.audit.detectors.heldout import HeldoutLoss, HeldoutMargin
from faco.audit.detectors.judge import Judge
from faco.audit.detectors.margin import Margin
from faco.audit.detectors.training import Confidence, FinalLoss, Variability

BUILT_IN: tuple[Callable[[], Detector], ...] = (
    FinalLoss, Confidence, Variability, Margin, HeldoutMargin, HeldoutLoss, InstructionFollowingDifficulty,
    LossChange, Judge)

__all__ = ["Detector", "detectors", "known"]


@cache
def detectors() -> dict[str, Detector]:
    """Every detector by name: the built-in ones, then installed plug-ins."""
    found: dict[str, Detector] = {}
    for make in BUILT_IN:
        det = make()
        found[det.name] = det
    for ep in entry_points(group="faco.detectors"):
        det = ep.load()()
        if not isinstance(det, Detector):
            raise TypeError(f"faco.detectors plug-in {ep.name!r}: {ep.value} is not a Detector")
        found.setdefault(det.name, det)
    return found


def known(name: str) -> Detector:
    """The detector called `name`; ValueError naming the known ones otherwise."""
    if name not in detectors():
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(detectors())}")
    return detectors()[name]
