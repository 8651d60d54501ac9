"""The role a model plays in a study: the untrained base model, a grid model (trained on one
corruption ratio) or a recovery model (a grid model retrained on clean data).

Train writes the role into the model manifest's `meta.role` (the base model's artifact says `base`),
evaluate and judge copy it to theirs. Artifacts made before roles existed say it the old way: meta
`base: true` (base), `start_ratio` (recovery), else a grid model; `of` reads either.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


class Role(str, Enum):
    BASE = "base"
    GRID = "grid"
    RECOVERY = "recovery"


def of(meta: Mapping[str, Any]) -> Role:
    """The role a model or evaluation manifest's meta records, derived the old way when absent."""
    if "role" in meta:
        return Role(meta["role"])
    if meta.get("base"):
        return Role.BASE
    if meta.get("start_ratio") is not None or "start_checkpoint" in meta:
        return Role.RECOVERY
    return Role.GRID
