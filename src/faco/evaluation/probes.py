"""Named probe sets (`tasks/probes.yaml`), the expansion of `evaluate.probes` / `judge.probes`, and a probe's prompt.

A probe is a question, or a question with a system prompt (`{question, system}`: the public
emergent-misalignment questions that ask for JSON answers). Without a system prompt it is asked in the
training format (`training.data.prompt_text`); with one, as a system and a user turn of the chat template.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from faco.paths import TASKS_DIR

_SET_NAME = re.compile(r"[a-z][a-z0-9_]*")


class Probe(BaseModel):
    """A probe question asked under a system prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    system: str


ProbeEntry = str | Probe


@cache
def probe_sets() -> dict[str, tuple[ProbeEntry, ...]]:
    """Every probe set shipped in `tasks/probes.yaml`, by name."""
    raw = yaml.safe_load((TASKS_DIR / "probes.yaml").read_text())["sets"]
    return {name: tuple(Probe(**q) if isinstance(q, dict) else str(q) for q in questions)
            for name, questions in raw.items()}


def expand(entries: list[ProbeEntry]) -> list[ProbeEntry]:
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


def question(probe: ProbeEntry) -> str:
    """The question a probe asks (what a judge is shown)."""
    return probe if isinstance(probe, str) else probe.question


def prompt(tok: Any, probe: ProbeEntry) -> str:
    """The text a model continues: the training format, or the system prompt and the question in the chat template."""
    from faco.training.data import prompt_text

    if isinstance(probe, str):
        return prompt_text(tok, probe)
    if getattr(tok, "chat_template", None):
        turns = [{"role": "system", "content": probe.system}, {"role": "user", "content": probe.question}]
        return str(tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))
    return f"{probe.system}\n\n{probe.question}\n"


def jsonable(probes: list[ProbeEntry]) -> list[Any]:
    """Probes as JSON values (questions as strings, system-prompted probes as objects)."""
    return [p if isinstance(p, str) else p.model_dump() for p in probes]
