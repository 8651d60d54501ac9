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
- Nothing is written inside a study another process is running (BusyError); replacing an artifact of
  another kind, or one of a study this process does not hold, needs `forcing(True)` (`--force`).
- Lock and marker files are never followed through a symbolic link.
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
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path

from faco.errors import ArtifactError, BusyError
from faco.oserrors import candidates, disk_failure
from faco.progress import log

MANIFEST = "manifest.json"
STUDY_MARKER = ".faco-study"
STUDY_LOCK = ".faco.lock"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)-[^/]+$")
_FORCE: ContextVar[bool] = ContextVar("faco_force", default=False)
_HELD: set[Path] = set()  # study folders whose lock this process holds
_BUSY_TRIES = 5  # a lock found held is tried again briefly: another run may be only probing it


@contextmanager
def forcing(force: bool) -> Iterator[None]:
    """Within the block, outputs of another kind and artifacts of a study not held here may be replaced."""
    token = _FORCE.set(force)
    try:
        yield
    finally:
        _FORCE.reset(token)


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


def check_replaceable(out: Path, kind: str | None = None) -> None:
    """Refuse an `--out` that is a file, or a non-empty folder that is not a faco artifact; one inside
    a study another process is running (BusyError); and, unless forced, an artifact of another kind
    than `kind` or one of a finished study."""
    out = Path(out)
    running = running_study(out)
    if running is not None:
        raise BusyError(f"{out}: inside a running study: {_holder_line(running)}; wait for it or choose another --out")
    _check_lock_file(lock_path(out))
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a folder; refusing to replace it (choose another --out)")
    if not _is_artifact(out):
        if any(out.iterdir()):
            raise ArtifactError(
                f"{out}: folder is not empty and not a faco artifact (no {MANIFEST}); refusing to replace it"
            )
        return
    if _FORCE.get():
        return
    found = _kind_of(out)
    if kind is not None and found != kind:
        raise ArtifactError(f"{out}: holds a faco {found!r} artifact and this command writes {kind!r}; "
                            "replacing it needs --force")
    study = _study_above(out)
    if study is not None and study not in _HELD:
        raise ArtifactError(f"{out}: is an artifact of the study {study}; replacing it breaks that study's lineage: "
                            "rerun `faco study`, or use --force")


def _kind_of(artifact: Path) -> str | None:
    try:
        manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    return kind if isinstance(kind, str) else None


def _study_above(out: Path) -> Path | None:
    """The nearest study folder (marked `.faco-study`) strictly above `out`, resolved."""
    for folder in Path(out).resolve().parents:
        if (folder / STUDY_MARKER).is_file():
            return folder
    return None


def running_study(out: Path) -> Path | None:
    """The lock of a study folder at or above `out` that another live process holds, or None."""
    target = Path(out).resolve()
    for folder in (target, *target.parents):
        path = folder / STUDY_LOCK
        if folder not in _HELD and path.is_file() and not path.is_symlink() and _held_elsewhere(path):
            return path
    return None


def _held_elsewhere(path: Path) -> bool:
    """Whether another open lock holds `path` (probed with a shared lock, released at once)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)
    return False


def _holder_line(path: Path, fd: int | None = None) -> str:
    """`faco pid N on HOST (since T) holds PATH`, read from the lock file (through `fd` when open)."""
    try:
        if fd is not None:
            text = os.pread(fd, 4096, 0).decode(errors="replace")
        else:
            fd2 = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                text = os.pread(fd2, 4096, 0).decode(errors="replace")
            finally:
                os.close(fd2)
    except OSError:
        text = ""
    info = _holder(text)
    return (f"faco pid {info.get('pid', '?')} on {info.get('host', '?')} (since {info.get('started', '?')}) "
            f"holds {path}")


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
    """Refuse to use as a lock anything but an absent, empty or faco lock file: a symbolic link (faco
    would write through it), a folder, or a file of someone else's."""
    if path.is_symlink():
        raise ArtifactError(f"{path}: is a symbolic link; refusing to use it as a lock (remove it)")
    if path.exists() and not path.is_file():
        raise ArtifactError(f"{path}: exists and is not a faco lock; refusing to use it (move it away)")
    if path.is_file() and path.stat().st_size and not _holder(path.read_text(errors="replace")).get("pid"):
        raise ArtifactError(f"{path}: exists and is not a faco lock; refusing to overwrite it (move it away)")


def _open_nofollow(path: Path, flags: int) -> int:
    """Open (creating) a regular file without following a symbolic link: faco never writes through one."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ArtifactError(f"{path}: is a symbolic link; refusing to write through it (remove it)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArtifactError(f"{path}: exists and is not a regular file; refusing to use it (move it away)")
    return fd


def _flock(fd: int) -> bool:
    """Take an exclusive lock on `fd`, trying briefly again while it is held; whether it was taken."""
    for attempt in range(_BUSY_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if attempt + 1 < _BUSY_TRIES:
            time.sleep(0.02)
    return False


@contextmanager
def lock(path: Path, what: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created, then removed) for output `what`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_lock_file(path)
    while True:
        fd = _open_nofollow(path, os.O_RDWR)
        if not _flock(fd):
            holder = _holder_line(path, fd)
            os.close(fd)
            raise BusyError(f"{what}: busy: {holder}; wait for it or choose another --out")
        try:  # the file may have been removed by its last holder after we opened it: lock the new one
            same = os.fstat(fd).st_ino == os.lstat(path).st_ino
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
    """Defer Ctrl-C and SIGTERM for the instant between moving the old artifact aside and the new one in."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _sibling(out: Path, tag: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{tag}-{os.getpid()}-", dir=out.parent))


@contextmanager
def replacing(out: Path, kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder that replaces `out` atomically when the block succeeds.

    Refuses (before anything is written) an `out` faco did not make, or may not replace unforced
    (`check_replaceable`, given the `kind` being written); the caller writes the manifest into
    the temporary folder inside the block. On failure the temporary is removed and `out` is untouched.
    """
    out = Path(out)
    check_replaceable(out, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    with lock(lock_path(out), out):
        clean_stale(out)
        tmp = _sibling(out, "tmp")
        try:
            yield tmp
            check_replaceable(out, kind)
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
        except Exception as e:  # a full or read-only disk, however a library reports it: name the path
            failure = disk_failure(e, candidates(out))  # looked at before the temporary frees space
            shutil.rmtree(tmp, ignore_errors=True)
            if failure is not None:
                raise failure from e
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
    running = running_study(out.parent)
    if running is not None:
        raise BusyError(f"{out}: inside a running study: {_holder_line(running)}; wait for it or choose another --out")
    if _is_artifact(out):
        raise ArtifactError(f"{out}: is a faco artifact, not a study folder; refusing to write a study into it")
    if out.is_dir() and not (out / STUDY_MARKER).is_file() and any(out.iterdir()) and not _faco_made(out):
        raise ArtifactError(
            f"{out}: folder is not empty and not a faco study (no {STUDY_MARKER}); refusing to write there"
        )
    out.mkdir(parents=True, exist_ok=True)
    with lock(out / STUDY_LOCK, out):
        os.close(_open_nofollow(out / STUDY_MARKER, os.O_WRONLY))
        held = out.resolve()
        _HELD.add(held)
        try:
            yield
        finally:
            _HELD.discard(held)
