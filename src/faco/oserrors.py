"""OS-level failures (a full, read-only or forbidden disk) as one line naming the path that failed.

Libraries report them in many shapes: an OSError with or without a file name, safetensors' and
SQLite's own error types carrying the OS message. `disk_failure` recognises them and finds the path
to name: the file the error names, else the first of the candidate folders (the output being
written, faco's cache, the temporary folder) whose disk is full or read-only.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from faco.errors import ArtifactError
from faco.paths import cache_root

_ERRNOS = {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system",
           errno.EACCES: "Permission denied", errno.EPERM: "Operation not permitted",
           errno.EDQUOT: "Disk quota exceeded"}
_WRITE = 0  # a write failed without saying why (torch's writer): a disk in trouble is the suspect
_MARKERS = {"StorageFull": errno.ENOSPC, "database or disk is full": errno.ENOSPC, "ReadOnlyFilesystem":
            errno.EROFS, "readonly database": errno.EROFS, "PermissionDenied": errno.EACCES,
            "QuotaExceeded": errno.EDQUOT, **{text: code for code, text in _ERRNOS.items()},
            "PytorchStreamWriter failed": _WRITE, "file write failed": _WRITE, "inline_container.cc": _WRITE,
            "disk I/O error": _WRITE}


def _errno_of(err: BaseException) -> int | None:
    """The OS error behind `err` (itself, its cause or context, or the message of a wrapper); _WRITE
    for a failed write that names no cause."""
    seen: BaseException | None = err
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in _ERRNOS:
            return seen.errno
        text = str(seen)
        for marker, code in _MARKERS.items():
            if marker in text:
                return code
        seen = seen.__cause__ or seen.__context__
    return None


def _in_trouble(folder: Path, code: int) -> bool:
    """Whether the disk holding `folder` is full (for ENOSPC) or read-only (for EROFS) right now."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    if code == errno.EROFS:
        return bool(st.f_flag & os.ST_RDONLY)
    return min(st.f_bavail, st.f_bfree) == 0


def disk_state(folder: Path) -> str | None:
    """`No space left on device` or `Read-only file system` when the disk of `folder` is so, else None."""
    for code in (errno.ENOSPC, errno.EROFS):
        if _in_trouble(folder, code):
            return _ERRNOS[code]
    return None


def candidates(out: Path | None = None) -> list[Path]:
    """Where faco writes: the output, its cache, the temporary folder."""
    return [*([out] if out is not None else []), cache_root(), Path(tempfile.gettempdir())]


def disk_failure(err: BaseException, where: Iterable[Path]) -> ArtifactError | None:
    """One line naming the path `err` failed on, if `err` is an OS-level failure; else None."""
    code = _errno_of(err)
    if code is None:
        return None
    folders = list(where)
    if code == _WRITE:  # the disk in trouble, if one still is (a failed write may have been cleaned up)
        for folder in folders:
            state = disk_state(folder)
            if state:
                return ArtifactError(f"{folder}: {state}")
        named = folders[0] if folders else Path.cwd()
        return ArtifactError(f"{named}: a write failed ({' '.join(str(err).split())}); is its disk full?")
    what = _ERRNOS[code]
    if isinstance(err, OSError) and err.filename is not None:
        return ArtifactError(f"{err.filename}: {err.strerror or what}")
    for folder in folders:
        if code in (errno.ENOSPC, errno.EROFS) and _in_trouble(folder, code):
            return ArtifactError(f"{folder}: {what}")
    named = folders[0] if folders else Path.cwd()
    return ArtifactError(f"{named}: {what} (while writing there, or to faco's cache or temporary folder)")
