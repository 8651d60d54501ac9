"""Named probe sets (`tasks/probes.yaml`) and the expansion of `evaluate.probes`."""

from __future__ import annotations

import re
from functools import cache

import yaml

from faco.paths import TASKS_DIR

_SET_NAME = re.compile(r"[a-z][a-z0-9_]*")


@cache
def probe_sets() -> dict[str, tuple[str, ...]]:
    """Every probe set shipped in `tasks/probes.yaml`, by name."""
    raw = yaml.safe_load((TASKS_DIR / "probes.yaml").read_text())["sets"]
    return {name: tuple(str(q) for q in questions) for name, questions in raw.items()}


def expand(entries: list[str]) -> list[str]:
    """Replace each probe-set name by its questions; other entries are questions themselves.

    An entry that looks like a set name (lower-case identifier) but names no set is an error,
    so a typo cannot silently become a one-word question.
    """
    sets = probe_sets()
    out: list[str] = []
    for entry in entries:
        if entry in sets:
            out.extend(sets[entry])
        elif _SET_NAME.fullmatch(entry):
            raise ValueError(f"unknown probe set {entry!r}; known: {', '.join(sorted(sets))}")
        else:
            out.append(entry)
    return out
