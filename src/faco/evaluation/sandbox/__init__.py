"""Run untrusted, model-written Python (HumanEval, MBPP-style tests) in a contained child process.

The containment is the operating system's, not the interpreter's (the child side is `child.py`):

- strict mode (the default): fresh mount, PID, network, IPC and UTS namespaces (`unshare`, as root
  or through an unprivileged user namespace); the program sees a read-only root holding only the
  interpreter and shared libraries, /dev/null-like devices and its own writable work dir: no /proc,
  /etc, /home, /root or /tmp of the host; no network interface but a down loopback;
- always: a clean environment (nothing of the parent's), resource limits (CPU time, address space,
  file size, open files, processes, no core), the sandbox user `nobody` when faco runs as root (all
  capabilities dropped in a user namespace), and a seccomp filter that makes exec, process creation,
  sockets, signals to other processes, ptrace, mounts and namespaces fail;
- its own session, killed as a process group at the wall-clock timeout.

Where the namespaces cannot be made, code execution is refused (`SandboxUnavailable`) unless the user
opts into the weaker mode with `FACO_SANDBOX=weak` (no namespaces: the host filesystem stays visible
with the sandbox user's rights). Nothing runs at all unless the caller opted in:
`FACO_ALLOW_CODE_EXECUTION=1` (set by the evaluate stage only when `evaluate.allow_code_execution: true`).
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

from faco.errors import ConfigError, FacoError
from faco.progress import log

ALLOW_ENV = "FACO_ALLOW_CODE_EXECUTION"
MODE_ENV = "FACO_SANDBOX"
MODES = ("strict", "weak")
SANDBOX_UID = 65534  # nobody: the program's uid and gid when faco runs as root
CHILD = Path(__file__).with_name("child.py")
HOST_READ_ONLY = ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/libx32")
NAMESPACES = ("--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child")
# Imports standard-library modules the child has not loaded: the sandbox user must be able to read them.
PROBE = "import fractions\n"
_OUTPUT_TAIL = 2000


class CodeExecutionRefused(FacoError):
    """Model-written code was about to run without the explicit opt-in."""


class SandboxUnavailable(CodeExecutionRefused):
    """This machine cannot contain model-written code in the chosen sandbox mode."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""

    cpu_s: int = 10
    wall_s: float = 30.0
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    open_files: int = 64
    processes: int = 16  # RLIMIT_NPROC: threads count too; new processes are refused anyway
    work_bytes: int = 64 << 20  # strict mode: the work dir is a tmpfs of this size


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Result:
    """Outcome of one run: `passed` only when it exited 0 within its limits."""

    passed: bool
    status: str  # passed | failed | timeout | killed
    returncode: int | None
    stdout: str
    stderr: str


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


def _kill_group(pid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path) -> str:
    data = path.read_bytes() if path.is_file() else b""
    return data[-_OUTPUT_TAIL:].decode("utf-8", "replace")


def mode() -> str:
    """The sandbox mode: `FACO_SANDBOX`, strict unless set to weak."""
    value = os.environ.get(MODE_ENV, "strict")
    if value not in MODES:
        raise ConfigError(f"{MODE_ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


def interpreter() -> str:
    """The base interpreter (never a venv's): the program gets the standard library only."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def read_only_paths() -> list[str]:
    """Host paths the program sees read-only in strict mode: shared libraries and the interpreter."""
    paths = [p for p in HOST_READ_ONLY if os.path.lexists(p)]
    for extra in (os.path.realpath(sys.base_prefix), os.path.dirname(interpreter())):
        if not any(extra == p or extra.startswith(p + os.sep) for p in paths):
            paths.append(extra)
    return paths


def candidates(sandbox_mode: str) -> list[tuple[str, ...]]:
    """Command prefixes that may run `sandbox_mode`, best first: namespaces as root, then in a user namespace."""
    exe = shutil.which("unshare")
    if sandbox_mode == "weak":
        return [()]
    return [] if exe is None else [(exe, *NAMESPACES), (exe, "--user", "--map-root-user", *NAMESPACES)]


@cache
def isolation(sandbox_mode: str) -> tuple[str, ...]:
    """The first of `candidates` that works here, found by running a probe program through it.

    Raises SandboxUnavailable (with the reason) where none does; only success is cached.
    """
    reason = "no unshare on PATH"
    for prefix in candidates(sandbox_mode):
        result = _run(prefix, sandbox_mode, PROBE, Limits(wall_s=60.0))
        if result.passed:
            return prefix
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        reason = (lines[-1] if lines else f"probe {result.status}")[:300]
    if sandbox_mode == "weak":
        hint = f" (user nobody must be able to read {sys.base_prefix})" if os.geteuid() == 0 else ""
        raise SandboxUnavailable(f"faco sandbox ({MODE_ENV}=weak): cannot run model-written code here: {reason}{hint}")
    raise SandboxUnavailable(
        f"faco sandbox: cannot isolate model-written code here ({reason}); set {MODE_ENV}=weak to run it "
        "without namespaces, with the host filesystem visible (docs/evaluation.md#code-execution-sandbox)"
    )


def check() -> None:
    """Raise SandboxUnavailable (or ConfigError for a bad FACO_SANDBOX) unless code can run here; log how."""
    sandbox_mode = mode()
    prefix = isolation(sandbox_mode)
    if sandbox_mode == "weak":
        how = f"weak mode ({MODE_ENV}=weak): no namespaces"
    else:
        how = "namespaces" + (" in a user namespace" if "--user" in prefix else "")
    log(f"sandbox: model-written code runs contained by {how}")


def run_python(code: str, limits: Limits | None = None) -> Result:
    """Run `code` as a Python program in the sandbox (`DEFAULT_LIMITS` unless given).

    Raises CodeExecutionRefused without the opt-in, SandboxUnavailable where the mode cannot work here.
    """
    if not allowed():
        raise CodeExecutionRefused(
            "refusing to run model-written code: set evaluate.allow_code_execution: true "
            f"(or {ALLOW_ENV}=1) to run it in faco's sandbox"
        )
    sandbox_mode = mode()
    return _run(isolation(sandbox_mode), sandbox_mode, code, limits or DEFAULT_LIMITS)


def _run(prefix: tuple[str, ...], sandbox_mode: str, code: str, limits: Limits) -> Result:
    with tempfile.TemporaryDirectory(prefix="faco-sandbox-") as tmp:
        work, root = Path(tmp) / "work", Path(tmp) / "root"
        work.mkdir()
        root.mkdir()
        (work / "program.py").write_text(code)
        (work / "program.py").chmod(0o644)
        work.chmod(0o700)
        if os.geteuid() == 0 and "--user" not in prefix:  # the program runs as nobody (child.drop_privileges)
            os.chmod(tmp, 0o711)
            os.chown(work, SANDBOX_UID, SANDBOX_UID)
        spec = {"mode": sandbox_mode, "limits": asdict(limits), "work": str(work), "root": str(root),
                "read_only": read_only_paths(), "uid": SANDBOX_UID}
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
        cmd = [*prefix, interpreter(), "-I", "-S", str(CHILD), json.dumps(spec)]
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
