"""The code-execution sandbox contains runaway, destructive and networked programs."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from faco.evaluation import sandbox
from faco.evaluation.tasks import OFFLINE_DIR

FAST = sandbox.Limits(cpu_s=2, wall_s=6.0, memory_bytes=512 << 20)


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


def _assert_no_connection(srv: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        srv.accept()


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
def test_good_program_passes_and_runs_in_a_fresh_dir(tmp_path: Path) -> None:
    code = "import os\nopen('scratch.txt', 'w').write('ok')\nprint(os.getcwd(), sorted(os.listdir('.')))\n"
    first, second = sandbox.run_python(code, FAST), sandbox.run_python(code, FAST)
    assert first.passed and first.status == "passed"
    assert "['program.py', 'scratch.txt']" in first.stdout
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
    hostile = ["    " + line for code in _hostile(outside, listener.getsockname()[1]).values()
               for line in [code.replace("\n", "\n    ").rstrip()]]
    samples = [doc["prompt"] + body for body in [*hostile, "    return a + b\n"]]
    scores = _task_utils().humaneval_process_results(doc, [samples])
    assert scores == {"pass@1": pytest.approx(1 / len(samples))}  # 8 samples: no pass@10
    assert not outside.exists()
    _assert_no_connection(listener)


def test_pass_at_k() -> None:
    assert sandbox.pass_at_k(10, 0, 1) == 0.0
    assert sandbox.pass_at_k(10, 10, 10) == 1.0
    assert sandbox.pass_at_k(20, 2, 1) == pytest.approx(0.1)
    assert sandbox.pass_at_k(20, 1, 10) == pytest.approx(0.5)
