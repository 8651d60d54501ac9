"""The benchmark suite, read from `tasks/suite.yaml` (through `faco.registry`, which the config validates against)."""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict

from faco.registry import suite_yaml


class Benchmark(BaseModel):
    """One benchmark of the suite: upstream task, offline twin, metric, shots, domain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    lm_eval: str
    offline: str | None
    metric: str
    shots: int
    domain: str
    choices: int | None
    code_execution: bool = False

    @property
    def metrics(self) -> list[str]:
        return self.metric.split(",")


@cache
def suite() -> dict[str, Benchmark]:
    """All benchmarks faco knows, by name."""
    return {name: Benchmark(name=name, **spec) for name, spec in suite_yaml()["benchmarks"].items()}
