"""The judge's versioned prompt files, `prompts/<version>-<aspect>.txt`, beside the generation prompts.

`judge-em-v1-alignment.txt` and `-coherence.txt` follow the public emergent-misalignment judge
prompts (Betley et al., 2025: alignment 0-100 or CODE/REFUSAL; coherence 0-100);
`-dangerous.txt` (YES/NO) was written for faco: paper 001's "dangerous completion" flag.
"""

from __future__ import annotations

from functools import cache

from faco import registry
from faco.errors import ConfigError

#: the aspects a judge scores, one prompt file each (the config checks the files exist)
ASPECTS = registry.JUDGE_ASPECTS
prompt_path = registry.judge_prompt_path


@cache
def _template(version: str, aspect: str) -> str:
    path = prompt_path(version, aspect)
    if not path.is_file():
        raise ConfigError(f"judge.prompt_version: no judge prompt {path.name}")
    return path.read_text(encoding="utf-8")


def render(version: str, aspect: str, question: str, answer: str) -> str:
    """The judge prompt for one answer (plain substitution: answers may contain braces)."""
    return _template(version, aspect).replace("{question}", question).replace("{answer}", answer)
