"""Config slices: the part of a study config one pipeline task reads, so KFP's cache sees only that.

A slice is YAML text holding the sections a task reads, plus single keys of other sections it
really depends on (`evaluate.benchmarks` for ingest's contamination check), and `_sections`, the
list of those paths. `load` turns it back into a `Study` in which exactly those are present: the
given sections are validated as usual, and reading anything absent raises AttributeError, so a
stage that starts reading a new section fails loudly instead of using a default.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from faco.config import Study, parse_config
from faco.errors import ConfigError
from faco.stage_reads import READS

MARKER = "_sections"

#: Pipeline task -> the config paths it reads (`faco.stage_reads.READS`); report gets the whole config
TASKS: dict[str, tuple[str, ...]] = {task: READS[task] for task in
                                     ("ingest", "generate", "corrupt", "train", "evaluate", "judge", "analyze")}


def dump(study: Study, paths: tuple[str, ...]) -> str:
    """The slice of `study` holding `paths`, as canonical YAML (sorted keys: same config, same bytes)."""
    full = study.model_dump(mode="json")
    out: dict[str, Any] = {MARKER: list(paths)}
    for path in paths:
        section, _, key = path.partition(".")
        if key:
            out.setdefault(section, {})[key] = full[section][key]
        else:
            out[section] = full[section]
    return yaml.safe_dump(out, sort_keys=True)


def slices(study: Study) -> dict[str, str]:
    """Task -> its config slice."""
    return {task: dump(study, paths) for task, paths in TASKS.items()}


def _strict(cls: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    """An unvalidated instance holding only `values`: reading any other field raises AttributeError."""
    obj = cls.model_construct(_fields_set=set(values), **values)
    for name in set(cls.model_fields) - set(values):
        obj.__dict__.pop(name, None)
    return obj


def _partial(cls: type[BaseModel], values: dict[str, Any], where: str) -> BaseModel:
    """Some keys of a section, each validated against its field type."""
    checked = {}
    for key, value in values.items():
        if key not in cls.model_fields:
            raise ConfigError(f"{where}: {key}: unknown key")
        try:
            checked[key] = TypeAdapter(cls.model_fields[key].annotation or Any).validate_python(value)
        except ValidationError as e:
            raise ConfigError(f"{where}: {key}: {e.errors()[0]['msg']}") from None
    return _strict(cls, checked)


def _section_class(annotation: Any) -> Any:
    """The section model of a Study field: `JudgeConfig` for an optional section (`JudgeConfig | None`)."""
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def load(text: str, source: str = "config_yaml", overrides: list[str] | None = None) -> Study:
    """A study config or a slice of one (see the module docstring)."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or MARKER not in data:
        return parse_config(text, source, overrides)
    if overrides:
        raise ConfigError(f"{source}: a config slice takes no overrides (apply them before slicing)")
    paths = data.pop(MARKER)
    sections: dict[str, Any] = {}
    for name, value in data.items():
        field = Study.model_fields.get(name)
        cls = _section_class(field.annotation) if field else None
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or not isinstance(value, dict):
            raise ConfigError(f"{source}: {name}: not a config section")
        if name in paths:
            try:
                sections[name] = cls.model_validate(value)
            except ValidationError as e:
                first = e.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise ConfigError(f"{source}: {name}.{loc}: {first['msg']}") from None
        else:
            sections[name] = _partial(cls, value, f"{source}: {name}")
    return _strict(Study, sections)  # type: ignore[return-value]

