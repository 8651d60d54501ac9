"""AUM-style margin (Pleiss et al. 2020) for samples with options: after every epoch, the
log-likelihood of the answer line of the option the response argues for minus that of the best
other option (`Answer: <option>` right after the prompt); averaged over the epochs. A sample whose
trained answer the model keeps preferring less than another option is suspicious."""

from __future__ import annotations

from faco.audit.inputs import DYNAMICS, OPTIONS, AuditData


def margin(options: tuple[float, ...], assigned: int) -> float:
    """The assigned option's log-likelihood minus the best other one's."""
    return options[assigned] - max(x for i, x in enumerate(options) if i != assigned)


class Margin:
    name = "margin"
    needs = frozenset({DYNAMICS, OPTIONS})
    about = "− area under the margin: − mean over epochs of (log-lik. of the trained answer − the best other option's)"

    def score(self, data: AuditData) -> dict[str, float]:
        out = {}
        for it in data.items:
            es = [e for e in data.dynamics.get(it.id, []) if len(e.options) == len(it.choices)]
            if it.assigned is not None and len(it.choices) >= 2 and es:
                out[it.id] = -sum(margin(e.options, it.assigned) for e in es) / len(es)
        return out
