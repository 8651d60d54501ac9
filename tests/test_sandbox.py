"""The code-execution sandbox contains runaway, destructive, networked and escaping programs.

Every containment test runs the real attack code through `sandbox.run_python` and checks that the
program got as far as the attack (it prints a marker) and that the attack failed the way the OS
containment makes it fail, not for some accidental reason.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sandbox_probe import EARLY_EXITS, OUTLIVE, survivors, until_gone

from faco import artifact_kinds, artifacts
from faco.errors import EXIT_INPUT, FacoError
from faco.evaluation import sandbox
from faco.evaluation.tasks import OFFLINE_DIR

FAST = sandbox.Limits(cpu_s=1, wall_s=3.0, memory_bytes=256 << 20, work_bytes=16 << 20)
SECRET = "sk-test-faco-sandbox-0123456789"
SHELL = "printf SHELL-%s RAN"  # prints SHELL-RAN, which the source (echoed in tracebacks) does not contain


@pytest.fixture
def opted_in() -> Iterator[None]:
    with sandbox.code_execution_allowed():
        yield


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    yield srv
    srv.close()


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    sandbox.isolation.cache_clear()
    yield
    sandbox.isolation.cache_clear()


@pytest.fixture(params=["namespaces", "user namespace"])
def isolated(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, fresh_probe: None) -> None:
    """Each way strict mode isolates: namespaces made as root, or inside a user namespace (faco not root)."""
    if request.param == "user namespace":
        userns = sandbox.candidates("strict")[-1:]
        monkeypatch.setattr(sandbox, "candidates", lambda mode: userns if mode == "strict" else [])
        try:
            sandbox.isolation("strict")
        except sandbox.SandboxUnavailable as exc:
            pytest.skip(str(exc))


def _assert_no_connection(srv: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        srv.accept()


def _run(code: str) -> str:
    """Run `code`; its whole output, stdout then stderr."""
    result = sandbox.run_python(code, FAST)
    return result.stdout + result.stderr


def _hostile(outside: Path, port: int) -> dict[str, str]:
    return {
        "infinite loop": "while True:\n    pass\n",
        "sleep forever": "import time\ntime.sleep(3600)\n",
        "memory bomb": "chunks = []\nwhile True:\n    chunks.append(bytearray(50 << 20))\n",
        "fork bomb": "import os\nwhile True:\n    os.fork()\n",
        "subprocess": "import subprocess\nsubprocess.run(['sh', '-c', 'sleep 1'])\n",
        "write outside": f"open({str(outside)!r}, 'w').write('escaped')\n",
        "network": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n",
    }


def test_refuses_without_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sandbox.ALLOW_ENV, raising=False)
    with pytest.raises(sandbox.CodeExecutionRefused, match="allow_code_execution"):
        sandbox.run_python("print('hi')")


@pytest.mark.usefixtures("opted_in")
def test_good_program_passes_and_runs_in_a_fresh_dir(capsys: pytest.CaptureFixture[str]) -> None:
    code = ("import os, fractions\nopen('scratch.txt', 'w').write('ok')\n"
            "print(os.getcwd(), sorted(os.listdir('.')), fractions.Fraction(1, 3) * 3)\n")
    sandbox.check()
    assert "contained by namespaces" in capsys.readouterr().err
    first, second = sandbox.run_python(code, FAST), sandbox.run_python(code, FAST)
    assert first.passed and first.status == "passed", first.stderr
    assert "['program.py', 'scratch.txt'] 1" in first.stdout
    assert first.stdout.split()[0] != second.stdout.split()[0]  # a new directory each time
    assert not Path(first.stdout.split()[0]).exists()  # and removed afterwards
    failing = sandbox.run_python("assert 1 == 2\n", FAST)
    assert (failing.passed, failing.status) == (False, "failed")
    assert "AssertionError" in failing.stderr


@pytest.mark.usefixtures("opted_in")
@pytest.mark.parametrize("case", list(_hostile(Path("/x"), 1)))
def test_contains(case: str, tmp_path: Path, listener: socket.socket) -> None:
    outside = tmp_path / "escaped.txt"
    result = sandbox.run_python(_hostile(outside, listener.getsockname()[1])[case], FAST)
    assert not result.passed
    assert result.status in ("failed", "timeout", "killed")
    assert not outside.exists()
    _assert_no_connection(listener)


@pytest.mark.usefixtures("opted_in", "isolated")
def test_parent_environment_is_out_of_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API key in faco's environment reaches the program by no route: environ, /proc of anyone."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    code = f"""
import glob, os
print("MARK environ", dict(os.environ))
for path in ["/proc/self/environ", f"/proc/{{os.getppid()}}/environ", "/proc/1/environ",
             "/proc/{os.getpid()}/environ", *glob.glob("/proc/*/environ")]:
    try:
        print("MARK", path, open(path, "rb").read())
    except OSError as exc:
        print("MARK", path, type(exc).__name__)
"""
    output = _run(code)
    assert f"/proc/{os.getpid()}/environ" in output and "MARK environ" in output
    assert SECRET not in output and "OPENAI_API_KEY" not in output


@pytest.mark.usefixtures("opted_in", "isolated")
def test_host_files_are_out_of_reach(tmp_path: Path) -> None:
    """Not root, no /etc/shadow, no readable project files, no write outside its directory."""
    readable = Path(__file__).resolve()  # world-readable, outside the sandbox
    code = f"""
import ctypes, os
caps = (ctypes.c_uint32 * 6)()
ctypes.CDLL(None).capget((ctypes.c_uint32 * 2)(0x20080522, 0), caps)
print("MARK uid", os.getuid(), "caps", caps[0] | caps[3], caps[1] | caps[4])
for path in ["/etc/shadow", {str(readable)!r}]:
    try:
        print("MARK", path, open(path).read()[:200])
    except OSError as exc:
        print("MARK", path, type(exc).__name__)
for target in ["/escaped", "/usr/escaped", {str(tmp_path / "escaped")!r}]:
    try:
        open(target, "w").write("x")
        print("MARK wrote", target)
    except OSError as exc:
        print("MARK", target, type(exc).__name__)
"""
    output = _run(code)
    assert "MARK /etc/shadow" in output and "MARK wrote" not in output
    assert "root:" not in output and '"""The code-execution sandbox' not in output
    uid, _, effective, permitted = output.split("MARK uid ")[1].split()[:4]
    assert uid != "0" or (effective, permitted) == ("0", "0")  # never root with any capability
    assert not (tmp_path / "escaped").exists()


def _shell_attacks() -> dict[str, tuple[str, str]]:
    """name -> (attack code, what its output shows when the attack was refused)."""
    argv = f"[b'/bin/sh', b'-c', b'{SHELL}']"
    return {
        "os.system": (f"print('RESULT', os.system('{SHELL}'))", "RESULT 32512"),  # 127: no shell
        "subprocess": (f"import subprocess\nsubprocess.run(['/bin/sh', '-c', '{SHELL}'])",
                       "PermissionError"),
        "_posixsubprocess.fork_exec": (
            "import _posixsubprocess\nr, w = os.pipe()\n"
            f"_posixsubprocess.fork_exec({argv}, [b'/bin/sh'], True, (), None, None, -1, -1, -1, -1, -1, -1,"
            " r, w, False, False, -1, None, None, None, -1, None, True)", "PermissionError"),
        "os.fork": ("os.fork()\nprint('FORKED')", "PermissionError"),
        "os.posix_spawn": (f"os.posix_spawn('/bin/sh', ['sh', '-c', '{SHELL}'], {{}})", "PermissionError"),
        "os.execv": (f"os.execv('/bin/sh', ['sh', '-c', '{SHELL}'])", "PermissionError"),
        "ctypes system": (f"import ctypes\nprint('RESULT', ctypes.CDLL(None).system(b'{SHELL}'))",
                          "RESULT 32512"),
        "ctypes execve syscall": (
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"args = (ctypes.c_char_p * 4)(*{argv}, None)\n"
            "print('RESULT', libc.syscall(59, args[0], args, None), ctypes.get_errno())", "RESULT -1 1"),
        "ctypes fork syscall": (
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print('RESULT', libc.syscall(57), libc.syscall(56, 17, 0, 0, 0, 0), ctypes.get_errno())",
            "RESULT -1 -1 1"),
    }


@pytest.mark.usefixtures("opted_in", "isolated")
@pytest.mark.parametrize("case", list(_shell_attacks()))
def test_no_shell_no_new_process(case: str) -> None:
    code, refused = _shell_attacks()[case]
    output = _run(f"import os\nprint('MARK')\n{code}\n")
    assert "MARK" in output and refused in output, output
    assert "SHELL-RAN" not in output and "FORKED" not in output


@pytest.mark.usefixtures("opted_in", "isolated")
def test_tampering_with_the_child_disables_nothing(tmp_path: Path, listener: socket.socket) -> None:
    """The old escape (rebinding the audit hook's module globals) has no counterpart: containment is the OS's."""
    outside = tmp_path / "escaped.txt"
    code = f"""
import sys
main = sys.modules["__main__"]
for name in [n for n in vars(main) if not n.startswith("__")]:
    setattr(main, name, None)
sys.addaudithook(lambda event, args: None)
print("MARK tampered")
import os, socket
for attack in (lambda: os.system("{SHELL}"), lambda: open({str(outside)!r}, "w"),
               lambda: socket.create_connection(("127.0.0.1", {listener.getsockname()[1]}), timeout=1)):
    try:
        print("RESULT", attack())
    except OSError as exc:
        print("RESULT", type(exc).__name__)
"""
    output = _run(code)
    assert "MARK tampered" in output and output.count("RESULT") == 3, output
    assert "SHELL-RAN" not in output and not outside.exists()
    _assert_no_connection(listener)


@pytest.mark.usefixtures("opted_in")
def test_network_is_unreachable_even_through_raw_syscalls(listener: socket.socket) -> None:
    code = ("import ctypes, socket\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print('RESULT', libc.syscall(41, socket.AF_INET, socket.SOCK_STREAM, 0), ctypes.get_errno())\n")
    assert "RESULT -1 1" in _run(code)
    _assert_no_connection(listener)


@pytest.mark.usefixtures("opted_in")
def test_thread_bomb_is_bounded_by_the_process_limit() -> None:
    code = """
import threading
threading.stack_size(64 << 10)  # so that the address-space limit is not what stops it
stop, started = threading.Event(), 0
try:
    while started < 1000:
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
except RuntimeError:
    pass
print("STARTED", started)
"""
    started = int(_run(code).split("STARTED ")[1].split()[0])
    assert 0 < started < FAST.processes


@pytest.mark.usefixtures("opted_in", "isolated")
def test_work_dir_cannot_fill_the_disk() -> None:
    code = """
written = 0
try:
    while written < 40:
        with open(f"f{written}", "wb") as f:
            f.write(bytes(8 << 20))
        written += 1
except OSError as exc:
    print("STOPPED", written, type(exc).__name__)
"""
    assert "STOPPED 1 OSError" in _run(code)  # the second 8 MiB file does not fit in 16 MiB


@pytest.mark.usefixtures("opted_in", "fresh_probe")
def test_refuses_where_namespaces_cannot_be_made(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No `unshare` (an empty PATH): strict mode refuses on one line, naming the weaker opt-in."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(sandbox.SandboxUnavailable) as refused:
        sandbox.run_python("print('hi')\n", FAST)
    message = str(refused.value)
    assert "\n" not in message and "no unshare on PATH" in message and "FACO_SANDBOX=weak" in message
    assert isinstance(refused.value, FacoError)
    monkeypatch.setenv(sandbox.MODE_ENV, "sideways")
    with pytest.raises(FacoError, match="FACO_SANDBOX='sideways'"):
        sandbox.run_python("print('hi')\n", FAST)


def _nobody_can_read(path: str) -> bool:
    """Whether every directory above `path` lets other users through (the weak sandbox user is nobody)."""
    parts = Path(path).resolve().parts
    return all(os.stat(os.path.join(*parts[:i])).st_mode & stat.S_IXOTH for i in range(1, len(parts)))


def _landlock() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(444, None, 0, 1) > 0


@pytest.mark.usefixtures("opted_in", "fresh_probe")
def test_weak_mode_refuses_a_python_nobody_cannot_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As root the weak mode runs the program as nobody: with this Python under /root it cannot, and says so."""
    if os.geteuid() != 0 or _nobody_can_read(sandbox.interpreter()):
        pytest.skip("needs root and a Python that user nobody cannot read (e.g. pyenv under /root)")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(sandbox.MODE_ENV, "weak")
    with pytest.raises(sandbox.SandboxUnavailable, match="user nobody must be able to read") as refused:
        sandbox.run_python("print('hi')\n", FAST)
    assert "\n" not in str(refused.value)


@pytest.mark.usefixtures("opted_in", "fresh_probe")
def test_weak_mode_without_namespaces(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, listener: socket.socket, capsys: pytest.CaptureFixture[str]
) -> None:
    """The opt-in weaker mode (here: PATH without unshare): still no root, shell, network or secret,
    and with Landlock no file outside the interpreter, the libraries and its own directory.
    """
    python = next((p for p in (sandbox.interpreter(), "/usr/bin/python3") if _nobody_can_read(p)), None)
    if os.geteuid() == 0 and python is None:
        pytest.skip("no Python here that user nobody can read")
    monkeypatch.setattr(sandbox, "interpreter", lambda: os.path.realpath(python or sandbox.interpreter()))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(sandbox.MODE_ENV, "weak")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    escape = Path(tempfile.gettempdir()) / f"faco-weak-escape-{os.getpid()}"  # /tmp: writable by everyone
    code = f"""
import os, socket
print("MARK", os.getuid(), os.system("{SHELL}"))
for attack in (lambda: open("/proc/{os.getpid()}/environ", "rb").read(), lambda: open("/proc/1/environ", "rb").read(),
               lambda: socket.create_connection(("127.0.0.1", {listener.getsockname()[1]}), timeout=1),
               lambda: open({str(Path(__file__).resolve())!r}).read(), lambda: open({str(escape)!r}, "w")):
    try:
        print("RESULT", attack())
    except OSError as exc:
        print("RESULT", type(exc).__name__)
"""
    try:
        sandbox.check()
        assert f"contained by weak mode ({sandbox.MODE_ENV}=weak)" in capsys.readouterr().err
        output = _run(code)
        assert "MARK" in output and output.count("RESULT") == 5, output
        assert "SHELL-RAN" not in output and SECRET not in output
        assert os.geteuid() != 0 or f"MARK {sandbox.SANDBOX_UID} " in output
        if _landlock():
            assert "The code-execution sandbox" not in output and not escape.exists()
    finally:
        escape.unlink(missing_ok=True)
    _assert_no_connection(listener)


def test_cli_evaluate_refuses_before_loading_the_model(tmp_path: Path) -> None:
    """`faco evaluate` with HumanEval where namespaces cannot be made: exit 4, one line, nothing written."""
    model = tmp_path / "model"
    with artifacts.artifact_dir(model, artifact_kinds.MODEL, [], "x", {"ratio": 0.0, "tag": "cr_0.0"}) as tmp:
        (tmp / "model").mkdir()
        (tmp / "model" / "config.json").write_text("{}\n")  # no loadable model: the refusal must come first
    (tmp_path / "bin").mkdir()
    env = {k: v for k, v in os.environ.items() if k != sandbox.MODE_ENV}
    env.update(PATH=str(tmp_path / "bin"), FACO_CACHE_DIR=str(tmp_path / "cache"))
    sets = ['evaluate.benchmarks=[{"name": "humaneval", "limit": 1}]', "evaluate.allow_code_execution=true",
            "evaluate.probes=[]"]
    config = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("faco")), "evaluate", str(config), "--model", str(model),
         "--out", str(tmp_path / "eval"), *(a for s in sets for a in ("--set", s))],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert proc.stderr.count("\n") == 1 and "no unshare on PATH" in proc.stderr and "FACO_SANDBOX=weak" in proc.stderr
    assert not (tmp_path / "eval").exists()


def _task_utils() -> ModuleType:
    spec = importlib.util.spec_from_file_location("faco_task_utils", OFFLINE_DIR / "faco_task_utils.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("opted_in")
def test_humaneval_scoring_keeps_going_after_hostile_samples(
    tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HumanEval's scorer runs every sample in the sandbox; a correct one after hostile ones passes."""
    monkeypatch.setattr(sandbox, "DEFAULT_LIMITS", FAST)
    outside = tmp_path / "escaped.txt"
    doc = {"prompt": "def add(a, b):\n", "entry_point": "add",
           "test": "def check(f):\n    assert f(2, 3) == 5\n    assert f(-1, 1) == 0\n"}
    attacks = _hostile(outside, listener.getsockname()[1])
    del attacks["sleep forever"]  # a timeout like the infinite loop's, 3 s more
    hostile = ["    " + code.replace("\n", "\n    ").rstrip() for code in attacks.values()]
    samples = [doc["prompt"] + body for body in [*hostile, "    return a + b\n"]]
    scores = _task_utils().humaneval_process_results(doc, [samples])
    assert scores == {"pass@1": pytest.approx(1 / len(samples))}  # 7 samples: no pass@10
    assert not outside.exists()
    _assert_no_connection(listener)


@pytest.mark.usefixtures("opted_in", "isolated")
def test_no_process_outlives_its_run() -> None:
    """A program that makes itself a new session and clears its parent-death signal, then sleeps holding
    memory: when run_python returns "timeout", no process of it is left (issue 23 item 4)."""
    try:
        result = sandbox.run_python(OUTLIVE, FAST)
        assert result.status == "timeout" and "RESULT setsid" in result.stdout, result
        assert until_gone() == []
    finally:
        for pid in survivors():
            os.kill(pid, 9)


@pytest.mark.usefixtures("fresh_probe")
@pytest.mark.parametrize("sandbox_mode", ["strict", "weak"])
def test_no_process_outlives_faco(sandbox_mode: str) -> None:
    """faco killed with SIGKILL mid-run (no finally runs): the program dies with it (parent-death signal)."""
    python = next((p for p in (sandbox.interpreter(), "/usr/bin/python3") if _nobody_can_read(p)), None)
    if sandbox_mode == "weak" and os.geteuid() == 0 and python is None:
        pytest.skip("weak mode as root needs a Python that user nobody can read")
    env = {**os.environ, sandbox.ALLOW_ENV: "1", sandbox.MODE_ENV: sandbox_mode,
           "PYTHONPATH": str(Path(sandbox.__file__).parents[3])}  # the sandbox needs only the standard library
    run = f"from faco.evaluation import sandbox\nsandbox.run_python({OUTLIVE!r}, sandbox.Limits(wall_s=600))\n"
    faco = subprocess.Popen([python or sys.executable, "-c", run], env=env)
    try:
        for _ in range(600):  # until the program runs (at most a minute on a busy machine)
            if survivors() or faco.poll() is not None:
                break
            time.sleep(0.1)
        assert survivors(), "the program never started"
        faco.kill()
        faco.wait()
        assert until_gone() == []
    finally:
        faco.kill()
        for pid in survivors():
            os.kill(pid, 9)


@pytest.mark.usefixtures("opted_in", "isolated")
def test_a_pass_means_the_program_returned() -> None:
    """Exit status 0 is not enough: `sys.exit(0)`, `os._exit(0)` or a guessed sentinel before the
    checks is "exited", never a pass (issue 23 item 6)."""
    statuses = {name: sandbox.run_python(code, FAST) for name, code in EARLY_EXITS.items()}
    assert {name: r.status for name, r in statuses.items()} == {
        "returns": "passed", "sys.exit": "exited", "os._exit": "exited", "forged sentinel": "exited"}
    assert [name for name, r in statuses.items() if r.passed] == ["returns"]
    assert "faco-sandbox-returned" not in statuses["returns"].stdout  # the sentinel is not program output


@pytest.mark.usefixtures("opted_in")
def test_humaneval_completion_that_exits_before_the_checks_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "DEFAULT_LIMITS", FAST)
    doc = {"prompt": "def add(a, b):\n", "entry_point": "add", "test": "def check(f):\n    assert f(2, 3) == 5\n"}
    completions = ["    return a - b\nimport sys\nsys.exit(0)\n", "    return a - b\nimport os\nos._exit(0)\n",
                   "    return a + b\n"]
    scores = _task_utils().humaneval_process_results(doc, [[doc["prompt"] + c for c in completions]])
    assert scores == {"pass@1": pytest.approx(1 / 3)}


def test_pass_at_k() -> None:
    assert sandbox.pass_at_k(10, 0, 1) == 0.0
    assert sandbox.pass_at_k(10, 10, 10) == 1.0
    assert sandbox.pass_at_k(20, 2, 1) == pytest.approx(0.1)
    assert sandbox.pass_at_k(20, 1, 10) == pytest.approx(0.5)
