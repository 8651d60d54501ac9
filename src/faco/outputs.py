"""Safe outputs: faco never replaces what it did not make, one writer per output, no litter.

- `check_replaceable(out)`: an `--out` may be absent, an empty folder or a faco artifact; an existing
  file or a non-empty folder of someone else's files is refused (ArtifactError, nothing touched).
- `lock(path)`: an exclusive `flock` on a lock file holding pid, host and start time; a second live
  holder gets BusyError naming the first; a lock left by a dead process is taken over (logged).
  The file is removed on release.
- `replacing(out)`: a temporary sibling `.<name>.tmp-<pid>-<rand>` renamed onto `out` only when
  complete (the old artifact goes aside to `.<name>.old-<pid>-<rand>` for that instant), under
  `<out>.lock`; temporaries of dead processes are removed first.
- `study_lock(out)`: the same guarantees for `faco study --out DIR`, a tree of artifacts: DIR is
  marked `.faco-study` on first use and locked through `DIR/.faco.lock`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from faco.errors import ArtifactError, BusyError
from faco.progress import log

MANIFEST = "manifest.json"
STUDY_MARKER = ".faco-study"
STUDY_LOCK = ".faco.lock"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)-[^/]+$")


def _is_artifact(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def _faco_made(path: Path, depth: int = 2) -> bool:
    """Whether everything in `path` is faco's: artifacts, its temporaries and locks, or folders of those."""
    if _is_artifact(path) or path.name in (STUDY_MARKER, STUDY_LOCK) or path.name.endswith(".lock"):
        return True
    if _TEMP.match(path.name) or (path.name.startswith(".") and path.name.endswith(".work")):
        return True
    return depth > 0 and path.is_dir() and not path.is_symlink() and all(
        _faco_made(child, depth - 1) for child in path.iterdir()
    )


def check_replaceable(out: Path) -> None:
    """Refuse an `--out` that is a file, or a non-empty folder that is not a faco artifact."""
    _check_lock_file(lock_path(out))
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a folder; refusing to replace it (choose another --out)")
    if not _is_artifact(out) and any(out.iterdir()):
        raise ArtifactError(
            f"{out}: folder is not empty and not a faco artifact (no {MANIFEST}); refusing to replace it"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(text: str) -> dict[str, object]:
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _check_lock_file(path: Path) -> None:
    """Refuse to use as a lock a file of someone else's (anything but empty or a faco lock record)."""
    if path.is_file() and path.stat().st_size and not _holder(path.read_text(errors="replace")).get("pid"):
        raise ArtifactError(f"{path}: exists and is not a faco lock; refusing to overwrite it (move it away)")


@contextmanager
def lock(path: Path, what: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created, then removed) for output `what`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_lock_file(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            info = _holder(path.read_text(errors="replace") if path.exists() else "")
            raise BusyError(
                f"{what}: busy: faco pid {info.get('pid', '?')} on {info.get('host', '?')} "
                f"(since {info.get('started', '?')}) holds {path}; wait for it or choose another --out"
            ) from None
        try:  # the file may have been removed by its last holder after we opened it: lock the new one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        old = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
        if old.get("pid"):
            log(f"{what}: taking over the stale lock {path} of faco pid {old['pid']} on {old.get('host', '?')} "
                f"(started {old.get('started', '?')}; no longer running)")
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def lock_path(out: Path) -> Path:
    """The lock file of an output: `<out>.lock` beside it."""
    return out.with_name(out.name + ".lock")


def clean_stale(out: Path) -> None:
    """Remove `.<name>.tmp-<pid>-*` / `.<name>.old-<pid>-*` siblings of `out` left by dead processes.

    A run killed between moving the old artifact aside and moving the new one in left `out`
    missing: the old artifact is put back first.
    """
    if not out.parent.is_dir():
        return
    for cand in sorted(out.parent.iterdir()):
        m = _TEMP.match(cand.name)
        if not (m and m["name"] == out.name and cand.is_dir() and not _alive(int(m["pid"]))):
            continue
        if ".old-" in cand.name and (cand / "old").is_dir() and not out.exists():
            (cand / "old").rename(out)
            log(f"{out}: restored the artifact that faco pid {m['pid']} had moved aside to {cand.name}")
        shutil.rmtree(cand, ignore_errors=True)
        log(f"{out}: removed {cand.name}, left by faco pid {m['pid']} (no longer running)")


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Defer Ctrl-C (SIGINT) for the instant between moving the old artifact aside and the new one in."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _sibling(out: Path, tag: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{tag}-{os.getpid()}-", dir=out.parent))


@contextmanager
def replacing(out: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces `out` atomically when the block succeeds.

    Refuses (before anything is written) an `out` faco did not make; the caller writes the
    manifest into the temporary folder inside the block. On failure the temporary is removed
    and `out` is untouched.
    """
    out = Path(out)
    check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with lock(lock_path(out), out):
        clean_stale(out)
        tmp = _sibling(out, "tmp")
        try:
            yield tmp
            check_replaceable(out)
            if out.exists():
                trash = _sibling(out, "old")
                with _uninterrupted():
                    out.rename(trash / "old")
                    try:
                        tmp.rename(out)
                    except BaseException:
                        (trash / "old").rename(out)
                        shutil.rmtree(trash, ignore_errors=True)
                        raise
                shutil.rmtree(trash, ignore_errors=True)
            else:
                tmp.rename(out)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if e.filename is None:  # e.g. ENOSPC from a write: name the output being written
                raise ArtifactError(f"{out}: {e.strerror or e}") from e
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


@contextmanager
def study_lock(out: Path) -> Iterator[None]:
    """Own and lock a study output folder (a tree of artifacts) for the duration of the block."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a folder; refusing to write a study there")
    if _is_artifact(out):
        raise ArtifactError(f"{out}: is a faco artifact, not a study folder; refusing to write a study into it")
    if out.is_dir() and not (out / STUDY_MARKER).is_file() and any(out.iterdir()) and not _faco_made(out):
        raise ArtifactError(
            f"{out}: folder is not empty and not a faco study (no {STUDY_MARKER}); refusing to write there"
        )
    out.mkdir(parents=True, exist_ok=True)
    with lock(out / STUDY_LOCK, out):
        (out / STUDY_MARKER).touch()
        yield
