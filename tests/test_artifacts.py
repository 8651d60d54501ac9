"""Artifacts: manifests with hashes and parents; failures leave nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from faco import artifacts
from faco.errors import ArtifactError


def test_manifest_lists_files_parents_and_detects_tampering(tmp_path: Path) -> None:
    with artifacts.artifact_dir(tmp_path / "a", "sources", [], "h1") as d:
        (d / "x.jsonl").write_text("1\n")
    with artifacts.artifact_dir(tmp_path / "b", "pairs", [tmp_path / "a"], "h2", {"n": 1}) as d:
        (d / "sub").mkdir()
        (d / "sub" / "y.txt").write_text("y")
    m = artifacts.read_manifest(tmp_path / "b")
    assert m["kind"] == "pairs" and m["config_hash"] == "h2" and m["meta"] == {"n": 1}
    assert set(m["files"]) == {"sub/y.txt"}
    assert m["parents"][0]["manifest_sha256"] == artifacts.manifest_hash(tmp_path / "a")
    assert artifacts.verify(tmp_path / "b") == []
    (tmp_path / "b" / "sub" / "y.txt").write_text("z")
    (tmp_path / "b" / "extra").write_text("e")
    problems = artifacts.verify(tmp_path / "b")
    assert any("y.txt: sha256 mismatch" in p for p in problems)
    assert any("extra: not in manifest" in p for p in problems)


def test_failed_stage_leaves_no_artifact_and_keeps_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with artifacts.artifact_dir(out, "sources", [], "h") as d:
        (d / "good").write_text("old")
    with pytest.raises(RuntimeError), artifacts.artifact_dir(out, "sources", [], "h") as d:
        (d / "half").write_text("partial")
        raise RuntimeError("boom")
    assert (out / "good").read_text() == "old" and not (out / "half").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_require_checks_kind(tmp_path: Path) -> None:
    with artifacts.artifact_dir(tmp_path / "a", "sources", [], "h"):
        pass
    with pytest.raises(ArtifactError, match="expected a 'model' artifact, found 'sources'"):
        artifacts.require(tmp_path / "a", "model")
    with pytest.raises(ArtifactError, match="not a faco artifact"):
        artifacts.require(tmp_path, "model")
