"""The stat cache behind verify-before-use (`faco.artifacts.require` re-hashes an input artifact
against its manifest before a stage reads it).

Hashing a 26 GB model on every read would be slow, so a verified artifact leaves a record under
`$FACO_CACHE_DIR/verified/<manifest sha256>.json`: each file's size, mtime, ctime and inode at
the time its hash was checked. When every file still has the same stat, the hashes are trusted
without reading the bytes; any edit (which changes mtime and ctime), copy or replacement (new
inode) makes the next use re-hash. A symbolic link or other non-regular entry anywhere in the
artifact always fails the check (a reader would follow it to bytes no manifest vouches for), and
with `FACO_PUBLIC_KEY` set, so does a manifest no trusted key signed. `FACO_NO_VERIFY=1` skips the
check (for users who accept the risk on huge inputs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from faco.paths import cache_dir

NO_VERIFY_ENV = "FACO_NO_VERIFY"

Stats = dict[str, list[int]]


def disabled() -> bool:
    """Whether the user opted out of verification (`FACO_NO_VERIFY=1`)."""
    return os.environ.get(NO_VERIFY_ENV, "").strip().lower() in ("1", "true", "yes")


def file_stats(root: Path, names: list[str]) -> Stats:
    """(size, mtime_ns, ctime_ns, inode) of each file that exists."""
    out: Stats = {}
    for name in names:
        try:
            st = (root / name).stat()
        except OSError:
            continue
        out[name] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    return out


def _record_path(manifest_sha256: str) -> Path:
    return cache_dir() / "verified" / f"{manifest_sha256}.json"


def remember(root: Path, manifest_sha256: str, names: list[str]) -> None:
    """Record that the files of `root` (manifest `manifest_sha256`) match their hashes right now."""
    try:
        record = _record_path(manifest_sha256)
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(file_stats(root, names), sort_keys=True))
        os.replace(tmp, record)
    except OSError:  # a read-only cache only costs a re-hash next time
        pass


def known_good(root: Path, manifest_sha256: str, names: list[str]) -> bool:
    """Whether every file of `root` has the stat recorded when it was last verified."""
    try:
        recorded = json.loads(_record_path(manifest_sha256).read_text())
    except (OSError, ValueError):
        return False
    return bool(names) and recorded == file_stats(root, names) and set(recorded) == set(names)
