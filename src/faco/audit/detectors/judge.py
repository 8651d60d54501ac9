"""An LLM judge asked "is this response correct?" (the practitioners' baseline): the probability it
gives to "no" (a local model's two answer lines compared), or its reply (1 for no, 0 for yes, ½ when
it commits to neither); `faco.audit.judge` asks it."""

from __future__ import annotations

from faco.audit.inputs import JUDGE, AuditData


class Judge:
    name = "judge"
    needs = frozenset({JUDGE})
    about = "an LLM judge's probability that the response is not correct"

    def score(self, data: AuditData) -> dict[str, float]:
        return dict(data.judge)
