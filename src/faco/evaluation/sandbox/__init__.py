"""Run untrusted, model-written Python (HumanEval, MBPP-style tests) in a contained child process.

Each program runs in its own process (and session, so its whole process group is killed), in a fresh
temporary directory as cwd and $HOME, with CPU-time, address-space, file-size, open-file and
core-dump limits (`resource.setrlimit`), under a wall-clock timeout. Network: where `unshare` can
create namespaces (root, or unprivileged user namespaces) the child gets an empty network namespace
(no interface but a down loopback) and its own PID namespace (killing it kills every descendant);
in every case an audit hook in the child refuses socket creation, process creation (fork, exec,
subprocess, os.system), ctypes and writes outside the temporary directory. Audit hooks are not a
boundary against deliberately malicious native code: on a cluster, also run the evaluator pod with
a deny-all egress NetworkPolicy, a read-only root filesystem and a non-root user (docs/evaluation.md).

Nothing runs unless the caller opted in: `FACO_ALLOW_CODE_EXECUTION=1` (set by the evaluate stage
only when `evaluate.allow_code_execution: true`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from faco.errors import FacoError

ALLOW_ENV = "FACO_ALLOW_CODE_EXECUTION"
_OUTPUT_TAIL = 2000


class CodeExecutionRefused(FacoError):
    """Model-written code was about to run without the explicit opt-in."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""

    cpu_s: int = 10
    wall_s: float = 30.0
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    open_files: int = 64


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Result:
    """Outcome of one run: `passed` only when it exited 0 within its limits."""

    passed: bool
    status: str  # passed | failed | timeout | killed
    returncode: int | None
    stdout: str
    stderr: str


# Runs first in the child (`python -I -c BOOTSTRAP limits workdir`): limits, then the audit hook,
# then the program. Kept free of faco imports so that the child imports nothing it need not.
BOOTSTRAP = r"""
import json, os, resource, sys
limits, root = json.loads(sys.argv[1]), os.path.realpath(sys.argv[2])
for name, value in (("RLIMIT_CPU", limits["cpu_s"]), ("RLIMIT_AS", limits["memory_bytes"]),
                    ("RLIMIT_FSIZE", limits["file_bytes"]), ("RLIMIT_NOFILE", limits["open_files"]),
                    ("RLIMIT_CORE", 0)):
    resource.setrlimit(getattr(resource, name), (value, value))
sys.dont_write_bytecode = True
source = open(os.path.join(root, "program.py")).read()
BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "os.forkpty", "os.kill", "os.killpg", "pty.", "ctypes.", "os.startfile", "webbrowser.")
PATH_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
               "os.replace": (0, 1), "os.symlink": (0, 1), "os.link": (0, 1), "os.chmod": (0,),
               "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,),
               "shutil.move": (0, 1), "shutil.copyfile": (1,), "shutil.copytree": (1,)}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def inside(path):
    if isinstance(path, int):
        return True
    path = os.path.realpath(os.fsdecode(path))
    return path == root or path.startswith(root + os.sep)

def hook(event, args):
    if event.startswith(BLOCKED):
        raise PermissionError("faco sandbox: " + event + " is not allowed")
    if event == "open":
        path, mode, flags = args
        writing = any(c in (mode or "") for c in "wax+") or (flags or 0) & WRITE_FLAGS
        if writing and path is not None and not inside(path):
            raise PermissionError("faco sandbox: writing outside the sandbox directory")
    elif event in PATH_EVENTS:
        for i in PATH_EVENTS[event]:
            if i < len(args) and args[i] is not None and not inside(args[i]):
                raise PermissionError("faco sandbox: " + event + " outside the sandbox directory")

sys.addaudithook(hook)
exec(compile(source, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


def allowed() -> bool:
    """Whether this process opted in to running model-written code."""
    return os.environ.get(ALLOW_ENV) == "1"


@contextmanager
def code_execution_allowed() -> Iterator[None]:
    """Opt in for the duration of the block (restores the previous setting)."""
    before = os.environ.get(ALLOW_ENV)
    os.environ[ALLOW_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_ENV, None)
        else:
            os.environ[ALLOW_ENV] = before


@cache
def namespace_prefix() -> tuple[str, ...]:
    """`unshare` arguments for fresh network and PID namespaces, or () where not permitted here."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    for prefix in ((exe, "--net", "--pid", "--fork", "--kill-child"),
                   (exe, "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child")):
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return prefix
    return ()


def _kill_group(pid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path) -> str:
    data = path.read_bytes() if path.is_file() else b""
    return data[-_OUTPUT_TAIL:].decode("utf-8", "replace")


def run_python(code: str, limits: Limits | None = None) -> Result:
    """Run `code` as a Python program in the sandbox (`DEFAULT_LIMITS` unless given).

    Raises CodeExecutionRefused without the opt-in.
    """
    limits = limits or DEFAULT_LIMITS
    if not allowed():
        raise CodeExecutionRefused(
            "refusing to run model-written code: set evaluate.allow_code_execution: true "
            f"(or {ALLOW_ENV}=1) to run it in faco's sandbox"
        )
    with tempfile.TemporaryDirectory(prefix="faco-sandbox-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        (work / "program.py").write_text(code)
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
        cmd = [*namespace_prefix(), sys.executable, "-I", "-c", BOOTSTRAP,
               json.dumps(asdict(limits)), str(work)]
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
            try:
                returncode: int | None = proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                returncode = None
            finally:
                _kill_group(proc.pid)
                proc.wait()
        if returncode is None:
            status = "timeout"
        elif returncode == 0:
            status = "passed"
        else:
            status = "killed" if returncode < 0 or returncode > 128 else "failed"
        return Result(status == "passed", status, returncode, _tail(out_path), _tail(err_path))


def pass_at_k(n: int, correct: int, k: int) -> float:
    """The unbiased pass@k estimator of Chen et al. (2021) from n samples with `correct` passing."""
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)
