"""The benchmark suite, read from `tasks/suite.yaml`."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from faco.paths import TASKS_DIR


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
def _suite_yaml() -> dict[str, Any]:
    return dict(yaml.safe_load((TASKS_DIR / "suite.yaml").read_text()))


@cache
def suite() -> dict[str, Benchmark]:
    """All benchmarks faco knows, by name."""
    return {name: Benchmark(name=name, **spec) for name, spec in _suite_yaml()["benchmarks"].items()}


def renamed() -> dict[str, str]:
    """Old benchmark names -> their new names (an old name in a config is an error naming the new one)."""
    return dict(_suite_yaml().get("renamed") or {})
