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
- its own session; when `run_python` returns (at the wall-clock timeout or earlier) every process
  of the run is killed: the process group, and every descendant found under /proc (the program can
  make no new session, group or process); the parent-death signal kills it when faco dies;
- a pass only when the program returned: the child writes a per-run secret sentinel after the
  program's last statement, so `sys.exit(0)` or `os._exit(0)` before the checks is a failure.

Where the namespaces cannot be made, code execution is refused (`SandboxUnavailable`) unless the user
opts into the weaker mode with `FACO_SANDBOX=weak` (no namespaces: the host filesystem stays visible
with the sandbox user's rights, or only the interpreter and libraries under Landlock; the mode a
Kubernetes pod runs, docs/evaluation.md). Nothing runs at all unless the caller opted in:
`FACO_ALLOW_CODE_EXECUTION=1` (set by the evaluate stage only when `evaluate.allow_code_execution: true`).
This package imports only the standard library and `faco.errors` (it runs in a bare Python image too).
"""

from __future__ import annotations

import json
import math
import os
import secrets
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

ALLOW_ENV = "FACO_ALLOW_CODE_EXECUTION"
MODE_ENV = "FACO_SANDBOX"
MODES = ("strict", "weak", "auto")
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
    status: str  # passed | failed | exited (before its end, e.g. sys.exit(0)) | timeout | killed
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


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, read from /proc (children before grandchildren)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(0), [])
        out += children
        todo += children
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`'s process group and every process below `pid`, wherever its group or session."""
    below = descendants(pid)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in below:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)


def _tail(path: Path) -> str:
    data = path.read_bytes() if path.is_file() else b""
    return data[-_OUTPUT_TAIL:].decode("utf-8", "replace")


def mode() -> str:
    """The sandbox mode: `FACO_SANDBOX` (strict, weak, or auto: strict where it works, else weak)."""
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


def _reaper() -> tuple[str, ...]:
    """`setpriv --pdeathsig KILL` where util-linux has it: the outermost process dies with faco."""
    exe = shutil.which("setpriv")
    return () if exe is None else (exe, "--pdeathsig", "KILL")


Way = tuple[tuple[str, ...], str]  # a command prefix and the mode the child confines itself in


def candidates(sandbox_mode: str) -> list[Way]:
    """The ways to run `sandbox_mode`, best first: namespaces as root, in a user namespace, then (weak,
    auto) none; the weak child arms its own parent-death signal."""
    exe, reaper = shutil.which("unshare"), _reaper()
    strict = [] if exe is None else [((*reaper, exe, *NAMESPACES), "strict"),
                                     ((*reaper, exe, "--user", "--map-root-user", *NAMESPACES), "strict")]
    weak: list[Way] = [((), "weak")]
    return {"strict": strict, "weak": weak}.get(sandbox_mode, strict + weak)


@cache
def isolation(sandbox_mode: str) -> Way:
    """The first of `candidates` that works here, found by running a probe program through it.

    Raises SandboxUnavailable (with the reason) where none does; only success is cached.
    """
    reasons = {"strict": "no unshare on PATH"}
    for prefix, way in candidates(sandbox_mode):
        result = _run(prefix, way, PROBE, Limits(wall_s=60.0))
        if result.passed:
            return prefix, way
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        reasons[way] = (lines[-1] if lines else f"probe {result.status}")[:300]
    weak = reasons.get("weak", "") + (f" (user nobody must be able to read {sys.base_prefix})"
                                      if os.geteuid() == 0 else "")
    if sandbox_mode == "weak":
        raise SandboxUnavailable(f"faco sandbox ({MODE_ENV}=weak): cannot run model-written code here: {weak}")
    if sandbox_mode == "auto":
        raise SandboxUnavailable(f"faco sandbox ({MODE_ENV}=auto): cannot run model-written code here: "
                                 f"strict: {reasons['strict']}; weak: {weak}")
    raise SandboxUnavailable(
        f"faco sandbox: cannot isolate model-written code here ({reasons['strict']}); set {MODE_ENV}=weak to run it "
        "without namespaces, with the host filesystem visible (docs/evaluation.md#code-execution-sandbox)"
    )


def landlock_abi() -> int:
    """The kernel's Landlock ABI version here (0: none, or forbidden by this container's seccomp)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return max(int(libc.syscall(444, None, 0, 1)), 0)  # landlock_create_ruleset(NULL, 0, VERSION)


def describe() -> str:
    """How model-written code is contained here (raises like `isolation` where it cannot be)."""
    sandbox_mode = mode()
    prefix, way = isolation(sandbox_mode)
    abi = landlock_abi()
    if way == "weak":
        how = f"weak mode ({MODE_ENV}={sandbox_mode}): no namespaces"
        how += f", Landlock ABI {abi}" if abi else ", user nobody"
    else:
        how = "namespaces" + (" in a user namespace" if "--user" in prefix else "")
    return f"sandbox: model-written code runs contained by {how}"


def check() -> None:
    """Raise SandboxUnavailable (or ConfigError for a bad FACO_SANDBOX) unless code can run here; log how."""
    from faco.progress import log

    log(describe())


def run_python(code: str, limits: Limits | None = None) -> Result:
    """Run `code` as a Python program in the sandbox (`DEFAULT_LIMITS` unless given).

    Raises CodeExecutionRefused without the opt-in, SandboxUnavailable where the mode cannot work here.
    """
    if not allowed():
        raise CodeExecutionRefused(
            "refusing to run model-written code: set evaluate.allow_code_execution: true "
            f"(or {ALLOW_ENV}=1) to run it in faco's sandbox"
        )
    prefix, way = isolation(mode())
    return _run(prefix, way, code, limits or DEFAULT_LIMITS)


def _status(returncode: int | None, finished: bool) -> str:
    if returncode is None:
        return "timeout"
    if returncode == 0:
        return "passed" if finished else "exited"
    return "killed" if returncode < 0 or returncode > 128 else "failed"


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
        sentinel = f"faco-sandbox-returned-{secrets.token_hex(16)}"
        spec = {"mode": sandbox_mode, "limits": asdict(limits), "work": str(work), "root": str(root),
                "read_only": read_only_paths(), "uid": SANDBOX_UID, "sentinel": sentinel}
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
        cmd = [*prefix, interpreter(), "-I", "-S", str(CHILD)]
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    start_new_session=True)
            try:
                assert proc.stdin is not None
                with suppress(BrokenPipeError), proc.stdin:  # not argv: /proc/*/cmdline is readable
                    proc.stdin.write(json.dumps(spec).encode())
                returncode: int | None = proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                returncode = None
            finally:
                kill_tree(proc.pid)
                proc.wait()
        stdout, marker = _tail(out_path), f"\n{sentinel}\n"
        finished = stdout.endswith(marker)
        status = _status(returncode, finished)
        return Result(status == "passed", status, returncode, stdout.removesuffix(marker), _tail(err_path))


def pass_at_k(n: int, correct: int, k: int) -> float:
    """The unbiased pass@k estimator of Chen et al. (2021) from n samples with `correct` passing."""
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)
