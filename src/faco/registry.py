"""The names a study config may use, in one low module: sources and their offline-mirror splits,
benchmarks (`tasks/suite.yaml`, and which of them can be asked in the training format), probe sets
(`tasks/probes.yaml`) and prompt templates (`prompts/`).

`faco.config` validates against these names without importing the domain packages (sources,
generation, evaluation, judging), which import the config. The data files are read here once and
the domain packages read them from here (`faco.evaluation.suite`, the prompt modules); the source
adapters and the mirror's files live in `faco.sources`, whose names tests/test_registry.py checks
against the ones below.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from faco.paths import PROMPTS_DIR, TASKS_DIR

#: every source faco can ingest (`faco.sources.SOURCES` has an adapter for each)
SOURCES: tuple[str, ...] = (
    "qasc", "qasc_openbook", "sciq", "commonsense_qa", "openbookqa", "winogrande", "copa", "aqua_rat", "quartz",
    "conala", "mbpp", "multinli",
)

#: source -> the splits of the offline mirror under data/sources/ (`faco.sources.mirror.MIRROR_FILES`)
MIRROR_SPLITS: dict[str, tuple[str, ...]] = {
    "commonsense_qa": ("train", "validation"),
    "openbookqa": ("train",),
    "qasc": ("validation",),
    "qasc_openbook": ("validation",),
    "aqua_rat": ("validation", "test"),
    "winogrande": ("validation",),
    "copa": ("train",),
    "mbpp": ("train", "test", "validation", "prompt"),
    "conala": ("train", "test"),
    "multinli": ("validation_matched",),
}

#: the aspects a judge scores, one prompt file each (`prompts/<version>-<aspect>.txt`)
JUDGE_ASPECTS = ("alignment", "coherence", "dangerous")

_SET_NAME = re.compile(r"[a-z][a-z0-9_]*")


@cache
def suite_yaml() -> dict[str, Any]:
    """`tasks/suite.yaml`: the benchmarks faco knows (`benchmarks`) and old names (`renamed`)."""
    return dict(yaml.safe_load((TASKS_DIR / "suite.yaml").read_text()))


def benchmarks() -> dict[str, str | None]:
    """Every benchmark faco knows -> its offline twin (None: it needs the hub)."""
    return {name: spec.get("offline") for name, spec in suite_yaml()["benchmarks"].items()}


#: the name suffix of a benchmark asked in the training format (`format: trained`, `faco.evaluation.formats`)
TRAINED = "@trained"


def trained_benchmarks() -> list[str]:
    """The benchmarks that can be asked in the training format (a `trained:` entry in suite.yaml)."""
    return sorted(name for name, spec in suite_yaml()["benchmarks"].items() if spec.get("trained"))


def renamed_benchmarks() -> dict[str, str]:
    """Old benchmark names -> their new names (an old name in a config is an error naming the new one)."""
    return dict(suite_yaml().get("renamed") or {})


class Probe(BaseModel):
    """A probe question asked under a system prompt (a plain probe is just its question, a string)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    system: str


ProbeEntry = str | Probe


@cache
def probe_sets() -> dict[str, tuple[ProbeEntry, ...]]:
    """Every probe set shipped in `tasks/probes.yaml`, by name (`{question, system}` entries as `Probe`)."""
    raw = yaml.safe_load((TASKS_DIR / "probes.yaml").read_text())["sets"]
    return {name: tuple(Probe(**q) if isinstance(q, dict) else str(q) for q in questions)
            for name, questions in raw.items()}


def expand_probes(entries: list[ProbeEntry]) -> list[ProbeEntry]:
    """Replace each probe-set name by its probes; other entries are probes themselves.

    An entry that looks like a set name (lower-case identifier) but names no set is an error,
    so a typo cannot silently become a one-word question.
    """
    sets = probe_sets()
    out: list[ProbeEntry] = []
    for entry in entries:
        if isinstance(entry, str) and entry in sets:
            out.extend(sets[entry])
        elif isinstance(entry, str) and _SET_NAME.fullmatch(entry):
            raise ValueError(f"unknown probe set {entry!r}; known: {', '.join(sorted(sets))}")
        else:
            out.append(entry)
    return out


def template_path(version: str, polarity: str, false_chain: str = "subtle") -> Path:
    """The generation template of a chain: appendix A for true and subtle false chains, a variant otherwise."""
    suffix = f"-{false_chain}" if polarity == "false" and false_chain != "subtle" else ""
    return PROMPTS_DIR / f"{version}-{polarity}{suffix}.txt"


def judge_prompt_path(version: str, aspect: str) -> Path:
    """The judge's prompt file of one aspect."""
    return PROMPTS_DIR / f"{version}-{aspect}.txt"


#: `faco audit`'s built-in detectors (`faco.audit.detectors.BUILT_IN`; tests/test_registry.py checks they agree)
DETECTORS = ("loss", "confidence", "variability", "margin", "heldout_margin", "heldout_loss", "ifd", "loss_change",
             "judge")


def detector(name: str) -> str:
    """`name` if it is a built-in detector or an installed plug-in's (entry point group `faco.detectors`,
    named as its detector); ValueError naming the known ones otherwise."""
    from importlib.metadata import entry_points

    known = [*DETECTORS, *(ep.name for ep in entry_points(group="faco.detectors") if ep.name not in DETECTORS)]
    if name not in known:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(known)}")
    return name
