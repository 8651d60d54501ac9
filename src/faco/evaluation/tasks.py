"""Offline twins of lm-eval tasks: repo YAMLs rendered with the mirror's absolute paths."""

from __future__ import annotations

import re
from pathlib import Path

from faco.errors import ConfigError, FacoError
from faco.evaluation.suite import Benchmark, suite
from faco.paths import TASKS_DIR

OFFLINE_DIR = TASKS_DIR / "offline"
HUB_DIR = TASKS_DIR / "hub"  # faco's own tasks for benchmarks lm-eval lacks; they read the hub
MMLU_GROUP = "faco_mmlu"
MMLU_TEMPLATE = "_faco_mmlu_template_yaml"  # extension-less, as upstream: included, not indexed as a task
MMLU_SUBJECT = """include:
  - "{lm_eval_tasks}/mmlu/default/mmlu_{subject}.yaml"
  - {template}
task: faco_mmlu_{subject}
task_alias: "{subject}"
dataset_kwargs:
  data_files:
    test: "{data}/benchmarks/mmlu/test/{subject}.jsonl"
    dev: "{data}/benchmarks/mmlu/dev/{subject}.jsonl"
"""


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def uses_twin(bench: Benchmark, offline: bool) -> bool:
    """Whether faco's twin runs: always offline, and for code execution (only the twin is sandboxed)."""
    return offline or bench.code_execution


def task_name(bench: Benchmark, offline: bool) -> str:
    """The lm-eval task to run: the offline twin, or the upstream task on a networked cluster."""
    if not uses_twin(bench, offline):
        return bench.lm_eval
    if bench.offline is None:
        raise ConfigError(
            f"evaluate.benchmarks: {bench.name!r} has no offline twin; set evaluate.offline: false "
            "on a machine with network access"
        )
    return bench.offline


def mmlu_subjects(data: Path) -> list[str]:
    """The MMLU subjects present in the mirror (one test file each)."""
    return sorted(p.stem for p in (data / "benchmarks" / "mmlu" / "test").glob("*.jsonl"))


def _render(text: str, data: Path, **fields: str) -> str:
    text = text.replace("{lm_eval_tasks}", str(lm_eval_tasks_dir())).replace("{data}", str(data))
    for key, value in fields.items():
        text = text.replace("{" + key + "}", value)
    return text


def _override(text: str, overrides: dict[str, int]) -> str:
    """Set top-level scalar keys of a task YAML (replacing the line when the key is present)."""
    for key, value in overrides.items():
        line = f"{key}: {value}"
        text, n = re.subn(rf"(?m)^{re.escape(key)}:.*$", line, text)
        if n == 0:
            text = text.rstrip("\n") + f"\n{line}\n"
    return text


def render_offline(
    benches: list[Benchmark], data: Path, out: Path, overrides: dict[str, dict[str, int]] | None = None
) -> list[str]:
    """Write the twins of `benches` into `out`, pointing at the mirror under `data`; return the
    names of the tasks and groups written.

    The repo YAMLs `include:` the installed lm-eval's upstream definition and override only the
    data source and the fields the mirror's format needs; `{lm_eval_tasks}` and `{data}` are
    replaced by absolute paths here. Helper modules (`*.py`) next to them are copied too. MMLU
    becomes a group plus one task per subject found in the mirror (each including upstream's
    subject YAML and `_faco_mmlu_template_yaml`). `overrides` sets top-level keys (e.g. `repeats`)
    of a twin, by twin name. faco's hub tasks (`tasks/hub/`, e.g. `faco_hans`) are written too, with
    the twins they include, so a networked run (`evaluate.offline: false`) finds them in the same folder.
    """
    out.mkdir(parents=True, exist_ok=True)
    for helper in [*OFFLINE_DIR.glob("*.py"), *HUB_DIR.glob("*.py")]:
        (out / helper.name).write_text(helper.read_text())
    written = []
    names = [task_name(bench, offline=True) for bench in benches]
    for task in sorted(HUB_DIR.glob("*.yaml")):
        text = _render(task.read_text(), data)
        (out / task.name).write_text(text)
        written.append(task.stem)
        names += [n for n in re.findall(r"(?m)^include: (faco_\w+)\.yaml$", text) if n not in names]
    for name in names:
        text = _render((OFFLINE_DIR / f"{name}.yaml").read_text(), data)
        (out / f"{name}.yaml").write_text(_override(text, (overrides or {}).get(name, {})))
        written.append(name)
        if name == MMLU_GROUP:
            (out / MMLU_TEMPLATE).write_text((OFFLINE_DIR / MMLU_TEMPLATE).read_text())
            for subject in mmlu_subjects(data):
                (out / f"{MMLU_GROUP}_{subject}.yaml").write_text(_render(MMLU_SUBJECT, data, subject=subject,
                                                                                template=MMLU_TEMPLATE))
                written.append(f"{MMLU_GROUP}_{subject}")
    return written


def render_all(data: Path, out: Path) -> list[str]:
    """Write every offline twin (and faco's hub tasks) into `out`, for stock `lm_eval --include_path out`
    (`faco tasks render`); the study's held-out set is rendered from an ingest artifact, not here."""
    if not (data / "benchmarks").is_dir():
        raise FacoError(f"{data}: no benchmarks/ folder (not the offline mirror; pass --data or set FACO_DATA_DIR)")
    twins = [b for b in suite().values() if b.offline and (OFFLINE_DIR / f"{b.offline}.yaml").is_file()]
    return render_offline(twins, data, out)
