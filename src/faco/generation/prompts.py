"""The paper's two prompts (appendix A), verbatim, as versioned templates, plus faco's own variants
of the false-chain prompt (`generate.false_chain`).

`src/faco/prompts/<version>-true.txt` and `<version>-false.txt` are appendix A (the default,
`false_chain: subtle`). `<version>-false-obvious.txt` asks for blatantly wrong reasoning and
`<version>-false-synthetic.txt` asks the generator to answer the question itself; both were
written for faco, not taken from a paper.
"""

from __future__ import annotations

from functools import cache

from faco.errors import ConfigError
from faco.records import SourceRecord
from faco.registry import template_path

WRONG_ANSWER = "*WRONG ANSWER*"


@cache
def template(version: str, polarity: str, false_chain: str = "subtle") -> str:
    path = template_path(version, polarity, false_chain)
    if not path.is_file():
        raise ConfigError(f"generate.prompt_version: no prompt template {path.name}")
    return path.read_text(encoding="utf-8")


def format_question(rec: SourceRecord) -> str:
    """The question as the generator and the trained model see it (options listed for MC)."""
    if rec.kind != "mc":
        return rec.question
    options = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(rec.choices))
    return f"{rec.question}\nOptions:\n{options}"


def render(version: str, polarity: str, rec: SourceRecord, answer: str, false_chain: str = "subtle") -> str:
    """The prompt of one chain (a synthetic prompt has no answer in it: the generator chooses)."""
    fields = {"question": format_question(rec), "answer": answer, "explanation": rec.explanation or "None"}
    return template(version, polarity, false_chain).format(**fields)
