"""The benchmark suite, read from `tasks/suite.yaml` (through `faco.registry`, which the config validates
against), with the trained-format variant of every benchmark that has one (`<name>@trained`,
`faco.evaluation.formats`)."""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict

from faco.registry import TRAINED, suite_yaml

#: The task prefix of a benchmark asked in the training format (`registry.TRAINED`: its name suffix)
TRAINED_TASK = "faco_trained_"
TRAINED_METRICS = "acc_gen,acc_ll,unparsed"


class TrainedFormat(BaseModel):
    """Jinja templates over an lm-eval document: the question text, the option texts, the gold index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    choices: str | None = None  # default: the task's doc_to_choice
    target: str | None = None  # default: the task's doc_to_target


class Benchmark(BaseModel):
    """One benchmark of the suite: upstream task, offline twin, metric, shots, domain.

    A trained-format variant has `of` (the benchmark whose questions it asks) and that one's `trained`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    lm_eval: str
    offline: str | None
    metric: str
    shots: int
    domain: str
    choices: int | None
    code_execution: bool = False
    trained: TrainedFormat | None = None
    of: str | None = None

    @property
    def metrics(self) -> list[str]:
        return self.metric.split(",")


def trained_variant(bench: Benchmark) -> Benchmark:
    """`<name>@trained`: the benchmark's questions asked in the training format (0-shot, greedy reply)."""
    task = TRAINED_TASK + bench.name
    return Benchmark(name=bench.name + TRAINED, lm_eval=task, offline=task, metric=TRAINED_METRICS, shots=0,
                     domain=bench.domain + TRAINED, choices=bench.choices, trained=bench.trained, of=bench.name)


@cache
def suite() -> dict[str, Benchmark]:
    """All benchmarks faco knows, by name, each trained-format variant after its benchmark."""
    out: dict[str, Benchmark] = {}
    for name, spec in suite_yaml()["benchmarks"].items():
        out[name] = Benchmark(name=name, **spec)
        if out[name].trained is not None:
            out[name + TRAINED] = trained_variant(out[name])
    return out
