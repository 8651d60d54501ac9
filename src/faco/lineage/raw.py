"""Lineage below the first artifact: the raw inputs an ingest read (mirror files or hub revisions).

The ingest manifest's `meta.raw_inputs` lists, per source split, either a local file (an offline
mirror file or a `data_files` export: its absolute path, size and sha256) or a hub dataset
(id, config, pinned revision). `problem` re-hashes a recorded file when it can be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faco.artifacts import sha256_file
from faco.config import Study
from faco.paths import data_dir
from faco.sources.custom import resolve
from faco.sources.mirror import MIRROR_DIRS, MIRROR_FILES
from faco.sources.registry import PARQUET_REVISION, SOURCES


def file_entry(source: str, split: str, path: Path) -> dict[str, Any]:
    """The record of one raw input file."""
    path = path.resolve()
    return {"source": source, "split": split, "path": str(path), "size": path.stat().st_size,
            "sha256": sha256_file(path)}


def hub_entry(source: str, split: str, dataset: str, config: str | None, revision: str | None) -> dict[str, Any]:
    """The record of one hub dataset split (the revision is what pins its bytes)."""
    return {"source": source, "split": split, "hub": dataset, "config": config, "revision": revision}


def problem(entry: dict[str, Any], shown: str) -> str | None:
    """What is wrong with a recorded raw input: a changed file (None when intact or unreachable)."""
    if "sha256" not in entry:
        return None
    path = Path(str(entry.get("path", "")))
    if not path.is_file():
        return None
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        return (f"{path}: raw input of {shown} ({entry.get('source')}/{entry.get('split')}) changed "
                f"(recorded sha256 {str(entry['sha256'])[:12]}, found {actual[:12]})")
    return None


def reachable(entry: dict[str, Any]) -> bool:
    """Whether a recorded raw file can be re-hashed here."""
    return "sha256" in entry and Path(str(entry.get("path", ""))).is_file()


def ingest_inputs(study: Study) -> list[dict[str, Any]]:
    """What an ingest of `study` reads, per source split: the mirror file (or `data_files` export)
    with its hash, or the hub dataset and the revision that pins it."""
    cfg = study.ingest
    out: list[dict[str, Any]] = []
    for spec in cfg.sources:
        if spec.custom is not None:  # a custom source: its own file, or its hub dataset at its revision
            c = spec.custom
            out.append(file_entry(spec.name, spec.split, resolve(c.path)) if c.path is not None
                       else hub_entry(spec.name, spec.split, str(c.hub), c.hub_name, c.revision))
        elif cfg.origin == "mirror":
            name = MIRROR_FILES[spec.name][spec.split]
            folder = MIRROR_DIRS.get(spec.name, spec.name)
            out.append(file_entry(spec.name, spec.split, data_dir(cfg.data_dir) / "sources" / folder / name))
        elif spec.data_files is not None:
            out.append(file_entry(spec.name, spec.split, Path(spec.data_files)))
        else:
            adapter = SOURCES[spec.name]
            revision = spec.revision or (PARQUET_REVISION if adapter.parquet_config else None)
            out.append(hub_entry(spec.name, spec.split, adapter.hub_path, adapter.parquet_config or adapter.hub_name,
                                 revision))
    return out
