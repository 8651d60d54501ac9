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
from terminal import default_sigint

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

    fake_splits(tmp_path / "fake")  # a manifest without a field every reader needs: exit 5, not a crash
    missing = faco("train", SMOKE, "--splits", "fake", "--ratio", "0", "--out", "m", cwd=tmp_path)
    assert missing.returncode == EXIT_VERIFY, missing.stderr[-2000:]
    assert last_line(missing) == ("error: fake/manifest.json: not a faco manifest (meta.ratios, the ratios of its "
                                  "splits, is missing)")

    # a bug (here: a stage that raises KeyError), met through faco's entry point in a subprocess
    bug = ("import sys, faco.stages.ingest as s, faco.cli\n"
           "def run(*a): raise KeyError('ratios')\n"
           "s.run = run; sys.argv[0] = 'faco'; faco.cli.main()")
    for debug in ("0", "1"):
        internal = subprocess.run([sys.executable, "-c", bug, "ingest", SMOKE, "--out", "m"], cwd=tmp_path,
                                  env={**os.environ, "FACO_DEBUG": debug}, capture_output=True, text=True)
        assert internal.returncode == EXIT_INTERNAL, internal.stderr[-2000:]
        assert last_line(internal) == "faco: internal error: KeyError: 'ratios' (FACO_DEBUG=1 shows the traceback)"
        assert ("Traceback (most recent call last)" in internal.stderr) == (debug == "1")
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


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged mount namespaces (unshare)")
def test_a_full_cache_disk_is_named_not_the_output(tmp_path: Path) -> None:
    """The generation cache fills its disk while --out has room: the line names the cache file."""
    from openai_server import FakeOpenAI

    assert faco("ingest", SMOKE, "--out", "src", *ONE_SOURCE, cwd=tmp_path).returncode == 0
    disk = tmp_path / "cache"
    disk.mkdir()
    with FakeOpenAI() as srv:
        sets = ["generate.backend=openai", "generate.model=gpt-4o-mini", f"generate.base_url={srv.base_url}"]
        args = " ".join(f"--set '{a}'" for a in sets)
        script = (f'mount -t tmpfs -o size=12k none "{disk}" && "{FACO}" generate "{SMOKE}" --sources src --out pairs '
                  f'{args}; rc=$?; exit $rc')
        env = {**os.environ, "FACO_CACHE_DIR": str(disk), "OPENAI_API_KEY": "sk-test"}
        env.pop("FACO_DEBUG", None)
        proc = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script], cwd=tmp_path,
                              capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == EXIT_INPUT, proc.stderr[-2000:]
    assert last_line(proc) == f"error: {disk}/generation.sqlite: generation cache: No space left on device"
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "pairs").exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged mount namespaces (unshare)")
def test_a_disk_filling_up_during_training_is_one_last_line(tmp_path: Path) -> None:
    """A checkpoint that no longer fits: exit 4 naming the output, the Trainer's progress bar closed
    before the line (not redrawn after it), and nothing left on the disk, not even the torn checkpoint."""
    splits = tmp_path / "splits"
    with artifacts.artifact_dir(splits, "splits", [], "hand-made", {"ratios": [0.0]}) as tmp:
        rows = [{"id": f"x:{i}", "source": "openbookqa", "domain": "commonsense", "prompt": f"Question {i}?",
                 "response": f"Answer {i}.", "is_corrupted": False} for i in range(16)]
        (tmp / "cr_0.0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f'mount -t tmpfs -o size=256k none "{disk}" && "{FACO}" train "{SMOKE}" --splits "{splits}" '
              f'--ratio 0.0 --out "{disk}/m" --set train.checkpoint_steps=1; rc=$?; ls -A "{disk}"; exit $rc')
    env = {**os.environ, "FACO_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("FACO_DEBUG", None)
    proc = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == EXIT_INPUT, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.endswith(last_line(proc) + "\n")
    assert last_line(proc).startswith(f"error: {disk}/m: "), last_line(proc)
    assert "%|" in proc.stderr  # the bar was drawn, and closed before the last line
    assert proc.stdout.strip() == ""


def _as_nobody_works() -> bool:
    try:
        return os.geteuid() == 0 and subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                                     "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _as_nobody_works(), reason="needs root and setpriv to run faco as nobody")
def test_a_folder_faco_may_not_write_is_one_line_naming_it(tmp_path: Path) -> None:
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="faco-nobody-"))  # outside pytest's root-only folder
    try:
        home.chmod(0o777)
        (home / "locked").mkdir(mode=0o555)
        env = {**os.environ, "FACO_CACHE_DIR": str(home / "cache"), "HOME": str(home)}
        env.pop("FACO_DEBUG", None)
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", FACO, "ingest", SMOKE,
                               "--out", "locked/src", *ONE_SOURCE], cwd=home, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == EXIT_INPUT, proc.stderr[-2000:]
        assert last_line(proc) == "error: locked/src.lock: Permission denied"
        assert list((home / "locked").iterdir()) == []
    finally:
        subprocess.run(["rm", "-rf", str(home)], check=True)


def test_concurrent_study_is_busy_and_ctrl_c_exits_130_leaving_no_temporaries(tmp_path: Path) -> None:
    env = {**os.environ, "FACO_CACHE_DIR": str(tmp_path / ".cache")}
    env.pop("FACO_DEBUG", None)
    out = tmp_path / "study"
    # long training (the smoke study alone can finish while the busy checks below run on a fast machine):
    # the Ctrl-C then always falls inside a stage
    first = subprocess.Popen([FACO, "study", SMOKE, "--out", str(out), "--set", "train.epochs=40"], cwd=tmp_path,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 300
        while not (out / ".faco.lock").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        second = faco("study", SMOKE, "--out", str(out), cwd=tmp_path)
        assert second.returncode == EXIT_BUSY, second.stderr[-2000:]
        assert last_line(second).startswith(f"error: {out}: busy: faco pid {first.pid} on ")
        assert "Traceback" not in second.stderr
        stage = faco("ingest", SMOKE, "--out", str(out / "ingest"), "--force", cwd=tmp_path)  # into the running one
        assert stage.returncode == EXIT_BUSY, stage.stderr[-2000:]
        assert last_line(stage).startswith(f"error: {out / 'ingest'}: inside a running study: faco pid {first.pid} ")
        while not list(out.rglob(".*.tmp-*")) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # Ctrl-C while a stage writes its artifact
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


def _ingest_artifact(tmp_path: Path, out: str) -> dict[str, object]:
    made = faco("ingest", SMOKE, "--out", out, *ONE_SOURCE, cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    return artifacts.read_manifest(tmp_path / out)


def test_an_artifact_of_another_kind_is_replaced_only_with_force(tmp_path: Path) -> None:
    fake_splits(tmp_path / "model")  # as if a trained model sat where a mistyped --out points
    before = artifacts.read_manifest(tmp_path / "model")
    refused = faco("ingest", SMOKE, "--out", "model", *ONE_SOURCE, cwd=tmp_path)
    assert refused.returncode == EXIT_INPUT, refused.stderr[-2000:]
    assert last_line(refused) == ("error: model: holds a faco 'splits' artifact and this command writes 'sources'; "
                                  "replacing it needs --force")
    assert artifacts.read_manifest(tmp_path / "model") == before and leftovers(tmp_path) == []
    forced = faco("ingest", SMOKE, "--out", "model", *ONE_SOURCE, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert artifacts.read_manifest(tmp_path / "model")["kind"] == "sources"


def test_a_finished_study_s_artifact_is_replaced_only_with_force(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    (study / ".faco-study").touch()
    first = _ingest_artifact(tmp_path, "study/ingest")  # a new artifact in a finished study: allowed
    again = faco("ingest", SMOKE, "--out", "study/ingest", *ONE_SOURCE, "--set", "ingest.per_source_cap=2",
                 cwd=tmp_path)
    assert again.returncode == EXIT_INPUT, again.stderr[-2000:]
    assert last_line(again).startswith(f"error: study/ingest: is an artifact of the study {study}; replacing it "
                                       "breaks that study's lineage")
    assert artifacts.read_manifest(study / "ingest") == first
    forced = faco("ingest", SMOKE, "--out", "study/ingest", *ONE_SOURCE, "--set", "ingest.per_source_cap=2",
                  "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert artifacts.read_manifest(study / "ingest")["config_hash"] != first["config_hash"]


def test_nothing_is_written_inside_a_running_study_even_with_force(tmp_path: Path) -> None:
    study = tmp_path / "study"
    with outputs.study_lock(study):  # held by this (live) process, as a running `faco study` holds it
        for extra in ([], ["--force"]):
            proc = faco("ingest", SMOKE, "--out", "study/ingest", *ONE_SOURCE, *extra, cwd=tmp_path)
            assert proc.returncode == EXIT_BUSY, proc.stderr[-2000:]
            assert last_line(proc).startswith(f"error: study/ingest: inside a running study: faco pid {os.getpid()} ")
            assert f"holds {study / '.faco.lock'}" in last_line(proc)
        nested = faco("study", SMOKE, "--out", "study/sub", cwd=tmp_path)
        assert nested.returncode == EXIT_BUSY and "inside a running study" in last_line(nested)
    assert sorted(p.name for p in study.iterdir()) == [".faco-study"]


@pytest.mark.parametrize("lock", ["src.lock", "study/.faco.lock", "study/.faco-study"])
def test_lock_and_marker_files_are_never_followed_through_a_symlink(tmp_path: Path, lock: str) -> None:
    target = tmp_path / "precious"
    target.write_text("root's file\n")
    (tmp_path / "study").mkdir()
    (tmp_path / lock).symlink_to(target)
    args = ["ingest", SMOKE, "--out", "src", *ONE_SOURCE] if lock == "src.lock" else ["study", SMOKE, "--out", "study"]
    proc = faco(*args, cwd=tmp_path)
    assert proc.returncode == EXIT_INPUT, proc.stderr[-2000:]
    assert last_line(proc).startswith(f"error: {lock}: is a symbolic link"), last_line(proc)
    assert target.read_text() == "root's file\n" and (tmp_path / lock).is_symlink()
    dangling = tmp_path / "gone"
    (tmp_path / lock).unlink()
    (tmp_path / lock).symlink_to(dangling)  # a dangling link: faco must not create its target either
    assert faco(*args, cwd=tmp_path).returncode == EXIT_INPUT and not dangling.exists()


def test_an_empty_out_is_a_usage_error(tmp_path: Path) -> None:
    for out in ("", ".", ".."):
        proc = faco("ingest", SMOKE, "--out", out, *ONE_SOURCE, cwd=tmp_path)
        assert proc.returncode == EXIT_USAGE and "names no folder" in last_line(proc), proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
