"""The paper's two prompts (appendix A), verbatim, as versioned templates."""

from __future__ import annotations

from functools import cache

from faco.errors import ConfigError
from faco.paths import PROMPTS_DIR
from faco.records import SourceRecord

WRONG_ANSWER = "*WRONG ANSWER*"


@cache
def template(version: str, polarity: str) -> str:
    path = PROMPTS_DIR / f"{version}-{polarity}.txt"
    if not path.is_file():
        raise ConfigError(f"generate.prompt_version: no prompt template {path.name}")
    return path.read_text(encoding="utf-8")


def format_question(rec: SourceRecord) -> str:
    """The question as the generator and the trained model see it (options listed for MC)."""
    if rec.kind != "mc":
        return rec.question
    options = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(rec.choices))
    return f"{rec.question}\nOptions:\n{options}"


def render(version: str, polarity: str, rec: SourceRecord, answer: str) -> str:
    fields = {"question": format_question(rec), "answer": answer, "explanation": rec.explanation or "None"}
    return template(version, polarity).format(**fields)
