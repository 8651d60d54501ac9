"""Corruption ratios and their one name.

A ratio's name is `cr_` followed by the ratio's shortest exact decimal form (`repr` of the float):
`cr_0.0`, `cr_0.25`, `cr_1.0`, `cr_1e-09`. It is the name `faco study` gives the model and evaluation
folders, the name of the split file, the model's `tag`, the column of table1.csv, and the folder DVC's
`foreach` stages write (`cr_${item}` renders a float the same way), so a model has one name everywhere.
The name is injective (two ratios never share a file) and exact (it parses back to the same float).
"""

from __future__ import annotations

import math
from pathlib import Path

PREFIX = "cr_"


def decimal(value: object) -> object:
    """Refuse what would blur a ratio's name before it becomes a float: booleans, integers (`1` rather
    than `1.0`: DVC would name its folder `cr_1`, not `cr_1.0`) and -0.0. Anything else passes on."""
    if isinstance(value, int):  # bool is an int too
        hint = "" if isinstance(value, bool) else f"; write {float(value)!r}"
        raise ValueError(f"ratio must be a decimal number in [0, 1] (got {value!r}{hint})")
    if isinstance(value, float) and value == 0.0 and math.copysign(1.0, value) < 0:
        raise ValueError("ratio must be in [0, 1] (got -0.0)")
    return value


def check_ratio(value: object) -> float:
    """`value` as a ratio: a float in [0, 1] written as a decimal; ValueError (one line) otherwise."""
    decimal(value)
    if not isinstance(value, float) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"ratio must be in [0, 1] (got {value!r})")
    return value


def ratio_tag(ratio: float) -> str:
    """The ratio's name: `cr_0.25` for 0.25."""
    return f"{PREFIX}{float(ratio)!r}"


def parse_tag(name: str) -> float:
    """The ratio a name stands for (`cr_0.25` -> 0.25); ValueError when it is not a ratio's name."""
    if not name.startswith(PREFIX):
        raise ValueError(f"{name!r} is not a ratio's name (cr_<ratio>)")
    try:
        ratio = check_ratio(float(name[len(PREFIX):]))
    except ValueError:
        raise ValueError(f"{name!r} is not a ratio's name (cr_<ratio>, ratio in [0, 1])") from None
    if ratio_tag(ratio) != name:
        raise ValueError(f"{name!r} is not a ratio's name: {ratio!r} is named {ratio_tag(ratio)}")
    return ratio


def split_path(splits: Path, ratio: float) -> Path:
    """The training split of `ratio` inside a splits artifact."""
    return splits / f"{ratio_tag(ratio)}.jsonl"

