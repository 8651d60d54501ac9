"""A probe's prompt: a question, or a question with a system prompt (`faco.registry.Probe`: the public
emergent-misalignment questions that ask for JSON answers).

Without a system prompt a probe is asked in the training format (`training.data.prompt_text`); with one,
as a system and a user turn of the chat template. The probe sets themselves are `faco.registry.probe_sets`.
"""

from __future__ import annotations

from typing import Any

from faco.registry import ProbeEntry


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
