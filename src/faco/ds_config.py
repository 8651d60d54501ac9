"""DeepSpeed configs: the ones shipped in the package by name (`zero3`), or any JSON file by path.

`train.deepspeed: zero3` reads `faco/deepspeed/zero3.json` from the installed package, so a pod
whose working directory holds no checkout finds it; a value with a `/` or a `.json` suffix is a
path (relative to the working directory).
"""

from __future__ import annotations

import json
from pathlib import Path

from faco.paths import PACKAGE_DIR

CONFIG_DIR = PACKAGE_DIR / "deepspeed"


def names() -> list[str]:
    """The shipped configs' names: zero2, zero3, zero3_offload."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def is_name(value: str) -> bool:
    """A shipped config's name, not a path: no directory part and no `.json` suffix."""
    return "/" not in value and "\\" not in value and not value.endswith(".json")


def resolve(value: str) -> Path:
    """The DeepSpeed config file `value` names; ValueError (the message names the value) when none."""
    if is_name(value):
        path = CONFIG_DIR / f"{value}.json"
        if not path.is_file():
            raise ValueError(f"{value}: no DeepSpeed config of that name; shipped: {', '.join(names())} "
                             "(or a path to a JSON file)")
        return path
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"{value}: no such file (relative to {Path.cwd()}; shipped configs by name: "
                         f"{', '.join(names())})")
    return path.resolve()


def zero_stage(path: Path) -> int:
    """The ZeRO stage of a DeepSpeed JSON config (0 without `zero_optimization`)."""
    try:
        return int(json.loads(path.read_text()).get("zero_optimization", {}).get("stage", 0))
    except (ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"{path}: not a DeepSpeed JSON config ({e})") from None
