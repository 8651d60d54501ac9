"""The CLI contract, met the way users meet it: the installed `faco` executable in a subprocess.

Exit codes (faco.errors): 0 ok, 1 internal, 2 usage, 3 config, 4 input, 5 verification, 6 busy,
130 Ctrl-C. `--out` never replaces a file or a folder faco did not make; one writer per output;
temporaries of dead runs are cleaned.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faco import artifacts, outputs
from faco.errors import EXIT_BUSY, EXIT_CONFIG, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, EXIT_VERIFY

FACO = str(Path(sys.executable).with_name("faco"))  # the console script installed in this venv
ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
ONE_SOURCE = ["--set", "ingest.sources=[{name: openbookqa, split: train}]", "--set", "ingest.per_source_cap=3"]


def faco(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "FACO_CACHE_DIR": str(cwd / ".cache"), **(env or {})}
    if not (env or {}).get("FACO_DEBUG"):
        full.pop("FACO_DEBUG", None)
    return subprocess.run([FACO, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=600)


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def leftovers(root: Path) -> list[str]:
    """faco temporaries and locks anywhere under `root`."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if ".tmp-" in p.name or ".old-" in p.name or p.name.endswith(".lock"))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def fake_splits(path: Path) -> Path:
    """A well-formed `splits` artifact whose meta lacks the ratios every real one has."""
    with artifacts.artifact_dir(path, "splits", [], "hand-made") as tmp:
        (tmp / "cr_0.0.jsonl").write_text("")
    return path


def test_each_outcome_has_its_exit_code(tmp_path: Path) -> None:
    ok = faco("validate", SMOKE, cwd=tmp_path)
    assert ok.returncode == 0 and "ok (study 'smoke'" in ok.stdout, ok.stderr
    assert faco("validate", cwd=tmp_path).returncode == EXIT_USAGE
    assert faco("validate", SMOKE, "--set", "nosuch.key=1", cwd=tmp_path).returncode == EXIT_USAGE
    assert faco("validate", SMOKE, "--set", "train.learning_rate=.inf", cwd=tmp_path).returncode == EXIT_CONFIG
    (tmp_path / "out.txt").write_text("keep")
    assert faco("ingest", SMOKE, "--out", "out.txt", cwd=tmp_path).returncode == EXIT_INPUT

    made = faco("ingest", SMOKE, "--out", "src", *ONE_SOURCE, cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    verified = faco("lineage", "verify", "src", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    data = tmp_path / "src" / "sources.jsonl"
    data.write_bytes(data.read_bytes().replace(b"?", b"!", 1))
    tampered = faco("lineage", "verify", "src", cwd=tmp_path)
    assert tampered.returncode == EXIT_VERIFY and "src/sources.jsonl" in tampered.stdout + tampered.stderr

    fake_splits(tmp_path / "fake")
    internal = faco("train", SMOKE, "--splits", "fake", "--ratio", "0", "--out", "m", cwd=tmp_path)
    assert internal.returncode == EXIT_INTERNAL
    assert last_line(internal) == "faco: internal error: KeyError: 'ratios' (FACO_DEBUG=1 shows the traceback)"
    assert "Traceback" not in internal.stderr
    debug = faco("train", SMOKE, "--splits", "fake", "--ratio", "0", "--out", "m", cwd=tmp_path,
                 env={"FACO_DEBUG": "1"})
    assert debug.returncode == EXIT_INTERNAL and "Traceback (most recent call last)" in debug.stderr
    assert not (tmp_path / "m").exists() and leftovers(tmp_path) == []


def test_out_never_replaces_what_faco_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF user file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("1,2\n")
    for out in ("report.pdf", "mine"):
        proc = faco("ingest", SMOKE, "--out", out, *ONE_SOURCE, cwd=tmp_path)
        assert proc.returncode == EXIT_INPUT and last_line(proc).startswith(f"error: {out}: "), proc.stderr
    assert (tmp_path / "report.pdf").read_bytes() == b"%PDF user file"
    assert (tmp_path / "mine" / "data.csv").read_text() == "1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".cache") == ["mine", "report.pdf"]

    (tmp_path / "empty").mkdir()
    assert faco("ingest", SMOKE, "--out", "empty", *ONE_SOURCE, cwd=tmp_path).returncode == 0
    first = artifacts.read_manifest(tmp_path / "empty")
    again = faco("ingest", SMOKE, "--out", "empty", *ONE_SOURCE, "--set", "ingest.per_source_cap=2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]  # a faco artifact is replaced, whole
    second = artifacts.read_manifest(tmp_path / "empty")
    assert second["config_hash"] != first["config_hash"] and artifacts.verify(tmp_path / "empty") == []
    assert leftovers(tmp_path) == []

    study = faco("study", SMOKE, "--out", "mine", cwd=tmp_path)
    assert study.returncode == EXIT_INPUT and "mine: folder is not empty and not a faco study" in last_line(study)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["data.csv"]


def test_temporaries_and_locks_of_dead_runs_are_cleaned(tmp_path: Path) -> None:
    pid, mine = dead_pid(), os.getpid()
    for name in (f".src.tmp-{pid}-abc", f".src.old-{pid}-def", f".src.tmp-{mine}-live", f".other.tmp-{pid}-x"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "half.jsonl").write_text("{")
    (tmp_path / "src.lock").write_text(json.dumps({"pid": pid, "host": "h", "started": "then"}))
    proc = faco("ingest", SMOKE, "--out", "src", *ONE_SOURCE, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"src: taking over the stale lock src.lock of faco pid {pid} on h" in proc.stderr
    assert f"removed .src.tmp-{pid}-abc, left by faco pid {pid}" in proc.stderr
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".cache")
    # a live process's temporary and another output's are not ours to remove
    assert names == [f".other.tmp-{pid}-x", f".src.tmp-{mine}-live", "src"]


def test_a_run_killed_mid_swap_gets_its_old_artifact_back(tmp_path: Path) -> None:
    assert faco("ingest", SMOKE, "--out", "src", *ONE_SOURCE, cwd=tmp_path).returncode == 0
    old = artifacts.read_manifest(tmp_path / "src")
    pid = dead_pid()  # as if killed -9 after moving src aside, before moving the new one in
    (tmp_path / f".src.old-{pid}-a").mkdir()
    (tmp_path / "src").rename(tmp_path / f".src.old-{pid}-a" / "old")
    (tmp_path / "src.lock").write_text("")  # killed before it wrote its pid
    verify = faco("lineage", "verify", "src", cwd=tmp_path)
    assert verify.returncode == EXIT_VERIFY
    again = faco("ingest", SMOKE, "--out", "src", *ONE_SOURCE, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"src: restored the artifact that faco pid {pid} had moved aside to .src.old-{pid}-a" in again.stderr
    assert artifacts.read_manifest(tmp_path / "src")["config_hash"] == old["config_hash"]
    assert leftovers(tmp_path) == []


def test_a_user_file_where_the_lock_goes_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "src.lock").write_text("my notes on locks\n")
    proc = faco("ingest", SMOKE, "--out", "src", *ONE_SOURCE, cwd=tmp_path)
    assert proc.returncode == EXIT_INPUT and last_line(proc) == (
        "error: src.lock: exists and is not a faco lock; refusing to overwrite it (move it away)")
    assert (tmp_path / "src.lock").read_text() == "my notes on locks\n" and not (tmp_path / "src").exists()


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "--map-root-user", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged mount namespaces (unshare)")
@pytest.mark.parametrize(("options", "message"), [("ro,size=1m", "Read-only file system"),
                                                  ("size=16k", "No space left on device")])
def test_read_only_or_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, options: str, message: str) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f'mount -t tmpfs -o {options} none "{disk}" && "{FACO}" ingest "{SMOKE}" --out "{disk}/src" ' \
             f'{" ".join(repr(a) for a in ONE_SOURCE)}; rc=$?; ls -A "{disk}"; exit $rc'
    env = {**os.environ, "FACO_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == EXIT_INPUT, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert last_line(proc).startswith(f"error: {disk}/src") and last_line(proc).endswith(message)
    assert proc.stdout.strip() == ""  # nothing left on the disk


def test_concurrent_study_is_busy_and_ctrl_c_exits_130_leaving_no_temporaries(tmp_path: Path) -> None:
    env = {**os.environ, "FACO_CACHE_DIR": str(tmp_path / ".cache")}
    env.pop("FACO_DEBUG", None)
    out = tmp_path / "study"
    first = subprocess.Popen([FACO, "study", SMOKE, "--out", str(out)], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (out / ".faco.lock").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        second = faco("study", SMOKE, "--out", str(out), cwd=tmp_path)
        assert second.returncode == EXIT_BUSY, second.stderr[-2000:]
        assert last_line(second).startswith(f"error: {out}: busy: faco pid {first.pid} on ")
        assert "Traceback" not in second.stderr
        while not list(out.rglob(".*.tmp-*")) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # Ctrl-C while a stage is writing its artifact
        assert first.poll() is None, first.communicate()[1][-2000:]
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=300)  # a loaded machine can take long to unwind a stage
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == EXIT_INTERRUPTED, err[-2000:]
    assert err.splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert leftovers(out) == [] and not (out / "report").exists()
    assert (out / ".faco-study").is_file()
    assert all(artifacts.verify(m.parent) == [] for m in out.rglob("manifest.json"))  # whatever finished is whole


def test_a_busy_train_leaves_the_running_one_s_checkpoints_alone(tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    with artifacts.artifact_dir(splits, "splits", [], "hand-made", {"ratios": [0.0, 1.0]}) as tmp:
        row = {"id": "x:1", "source": "openbookqa", "domain": "commonsense", "prompt": "Q?", "response": "A.",
               "is_corrupted": False}
        (tmp / "cr_0.0.jsonl").write_text(json.dumps(row) + "\n")
        (tmp / "cr_1.0.jsonl").write_text(json.dumps({**row, "is_corrupted": True}) + "\n")
    work = tmp_path / ".m.work"  # the running train's resumable state, made for another ratio
    (work / "trainer" / "checkpoint-5").mkdir(parents=True)
    (work / "trainer" / "checkpoint-5" / "optimizer.pt").write_bytes(b"state")
    (work / "fingerprint.json").write_text('{"ratio": 0.0}\n')
    with outputs.lock(outputs.lock_path(tmp_path / "m"), tmp_path / "m"):  # as a live `faco train --out m` does
        proc = faco("train", SMOKE, "--splits", "splits", "--ratio", "1.0", "--out", "m", cwd=tmp_path)
    assert proc.returncode == EXIT_BUSY, proc.stderr[-2000:]
    assert last_line(proc).startswith(f"error: m: busy: faco pid {os.getpid()} on ")
    assert (work / "trainer" / "checkpoint-5" / "optimizer.pt").read_bytes() == b"state"
    assert (work / "fingerprint.json").read_text() == '{"ratio": 0.0}\n'
