"""Offline twins of lm-eval tasks: repo YAMLs rendered with the mirror's absolute paths."""

from __future__ import annotations

from pathlib import Path

from faco.errors import ConfigError
from faco.evaluation.suite import Benchmark
from faco.paths import TASKS_DIR

OFFLINE_DIR = TASKS_DIR / "offline"


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def task_name(bench: Benchmark, offline: bool) -> str:
    """The lm-eval task to run: the offline twin, or the upstream task on a networked cluster."""
    if not offline:
        return bench.lm_eval
    if bench.offline is None:
        raise ConfigError(
            f"evaluate.benchmarks: {bench.name!r} has no offline twin; set evaluate.offline: false "
            "on a machine with network access"
        )
    return bench.offline


def render_offline(benches: list[Benchmark], data: Path, out: Path) -> None:
    """Write the offline twins of `benches` into `out`, pointing at the mirror under `data`.

    The repo YAMLs `include:` the installed lm-eval's upstream definition and override only the
    data source and the fields the mirror's format needs; `{lm_eval_tasks}` and `{data}` are
    replaced by absolute paths here. Helper modules (`*.py`) next to them are copied too.
    """
    out.mkdir(parents=True, exist_ok=True)
    for helper in OFFLINE_DIR.glob("*.py"):
        (out / helper.name).write_text(helper.read_text())
    for bench in benches:
        name = task_name(bench, offline=True)
        text = (OFFLINE_DIR / f"{name}.yaml").read_text()
        text = text.replace("{lm_eval_tasks}", str(lm_eval_tasks_dir())).replace("{data}", str(data))
        (out / f"{name}.yaml").write_text(text)
