"""Verify before use: a stage re-hashes its inputs against their manifests (stat cache as a fast
path, `FACO_NO_VERIFY=1` as the escape), tested through the installed `faco` executable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faco import artifacts, integrity
from faco.errors import EXIT_VERIFY, VerificationError

FACO = Path(sys.executable).with_name("faco")
ROOT = Path(__file__).resolve().parents[1]


def faco(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FACO), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@pytest.fixture
def pairs(tmp_path: Path, smoke_pairs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the smoke pairs artifact; the verified-stat cache is private too."""
    monkeypatch.setenv("FACO_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "pairs"
    shutil.copytree(smoke_pairs, copy)
    return copy


def test_hand_edited_pairs_make_corrupt_fail_with_one_line(pairs: Path, tmp_path: Path) -> None:
    lines = (pairs / "pairs.jsonl").read_text().splitlines(keepends=True)
    row = json.loads(lines[0])
    row["true"]["answer"] = "something else"
    (pairs / "pairs.jsonl").write_text(json.dumps(row) + "\n" + "".join(lines[1:]))
    cache = str(tmp_path / "cache")
    done = faco("corrupt", str(ROOT / "configs/smoke.yaml"), "--pairs", "pairs", "--out", "splits", cwd=tmp_path,
                FACO_CACHE_DIR=cache)
    assert done.returncode == EXIT_VERIFY, done.stderr
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert f"{pairs / 'pairs.jsonl'}: sha256 mismatch" in error or "pairs/pairs.jsonl: sha256 mismatch" in error
    assert "FACO_NO_VERIFY=1" in error
    assert not (tmp_path / "splits").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".splits")], "no partial artifact"

    forced = faco("corrupt", str(ROOT / "configs/smoke.yaml"), "--pairs", "pairs", "--out", "splits",
                  cwd=tmp_path, FACO_CACHE_DIR=cache, FACO_NO_VERIFY="1")
    assert forced.returncode == 0, forced.stderr
    assert artifacts.read_manifest(tmp_path / "splits")["kind"] == "splits"


def test_added_and_deleted_files_and_edited_manifest_fail_require(pairs: Path) -> None:
    artifacts.require(pairs, "pairs")
    (pairs / "extra.txt").write_text("x")
    with pytest.raises(VerificationError, match=r"extra\.txt: not in manifest"):
        artifacts.require(pairs, "pairs")
    (pairs / "extra.txt").unlink()
    (pairs / "ledger.json").unlink()
    with pytest.raises(VerificationError, match=r"ledger\.json: missing"):
        artifacts.require(pairs, "pairs")


def test_forged_manifest_hash_is_caught(pairs: Path) -> None:
    """Editing a file and its hash in the manifest breaks the manifest's self-hash."""
    (pairs / "stats.json").write_text("{}\n")
    mf = pairs / artifacts.MANIFEST
    data = json.loads(mf.read_text())
    data["files"]["stats.json"] = artifacts.sha256_file(pairs / "stats.json")
    mf.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    with pytest.raises(VerificationError, match="self_sha256 mismatch"):
        artifacts.require(pairs, "pairs")


def test_stat_cache_vouches_only_for_unchanged_files(pairs: Path) -> None:
    digest = artifacts.manifest_hash(pairs)
    names = sorted(artifacts.read_manifest(pairs)["files"])
    assert not integrity.known_good(pairs, digest, names), "nothing recorded for it in a fresh cache"
    artifacts.require(pairs, "pairs")
    assert integrity.known_good(pairs, digest, names)

    target = pairs / "pairs.jsonl"
    before = target.stat()
    data = bytearray(target.read_bytes())
    data[5] ^= 0x01
    target.write_bytes(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same mtime: ctime still moved
    assert not integrity.known_good(pairs, digest, names)
    with pytest.raises(VerificationError, match=r"pairs\.jsonl: sha256 mismatch"):
        artifacts.require(pairs, "pairs")


def test_a_fresh_artifact_is_vouched_for_without_rehashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write_manifest records the stats it hashed, and the atomic rename keeps them."""
    monkeypatch.setenv("FACO_CACHE_DIR", str(tmp_path / "cache"))
    with artifacts.artifact_dir(tmp_path / "a", "thing", [], "cfg") as tmp:
        (tmp / "data.txt").write_text("hello\n")
    assert integrity.known_good(tmp_path / "a", artifacts.manifest_hash(tmp_path / "a"), ["data.txt"])
