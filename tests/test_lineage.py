"""`faco lineage`: a real chain (ingest -> generate -> corrupt on the smoke config), verified
locally and through a real S3 server; flipped bytes, swapped parents, edited manifests, copied and
moved studies; exit codes through the installed `faco` executable."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer
from rich.console import Console

from faco import lineage, storage
from faco.artifacts import artifact_dir, manifest_hash, sha256_file
from faco.config import Study, load_config
from faco.errors import EXIT_VERIFY, VerificationError
from faco.lineage import raw
from faco.paths import repo_root
from faco.sources.registry import PARQUET_REVISION, SOURCES
from faco.stages import corrupt, generate, ingest

ROOT = repo_root() or Path(__file__).resolve().parents[1]
FACO = Path(sys.executable).with_name("faco")


@pytest.fixture(scope="module")
def built_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study dir with artifacts/{sources,pairs,splits}, made by the real stages with relative paths."""
    study_dir = tmp_path_factory.mktemp("chain")
    study = load_config(ROOT / "configs" / "smoke.yaml")
    cwd = Path.cwd()
    os.chdir(study_dir)
    try:
        ingest.run(study, Path("artifacts/sources"))
        generate.run(study, Path("artifacts/sources"), Path("artifacts/pairs"))
        corrupt.run(study, Path("artifacts/pairs"), Path("artifacts/splits"))
    finally:
        os.chdir(cwd)
    return study_dir


@pytest.fixture
def chain(built_chain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the chain; cwd is its study dir."""
    study_dir = tmp_path / "study"
    shutil.copytree(built_chain, study_dir)
    monkeypatch.chdir(study_dir)
    return study_dir


def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def run_verify(target: str) -> tuple[int, str]:
    """(0, printed text) when intact, (5, the error's one line) otherwise."""
    console = Console(record=True, width=400)
    try:
        code = lineage.verify(target, console=console)
    except VerificationError as e:
        return e.exit_code, str(e)
    return code, console.export_text()


def faco(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `faco` executable, as a user or a CI step runs it."""
    return subprocess.run([str(FACO), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_intact_chain_verifies_back_to_the_sources(chain: Path) -> None:
    code, out = run_verify("artifacts/splits")
    assert code == 0, out
    assert "3 artifacts" in out

    node = lineage.trace("artifacts/splits")
    assert [n.kind for n in node.walk()] == ["splits", "pairs", "sources"]
    assert node.all_problems() == []


def test_flipped_byte_upstream_names_the_upstream_file(chain: Path) -> None:
    flip_byte(chain / "artifacts/sources/sources.jsonl")
    code, out = run_verify("artifacts/splits")
    assert code == EXIT_VERIFY
    assert "artifacts/sources/sources.jsonl: sha256 mismatch" in out
    node = lineage.trace("artifacts/splits")
    assert node.problems == [], "the downstream artifact itself is intact"
    assert node.all_problems()[0].startswith("artifacts/sources/sources.jsonl: sha256 mismatch")


def test_flipped_byte_downstream_names_the_downstream_file(chain: Path) -> None:
    flip_byte(chain / "artifacts/splits/cr_0.5.jsonl")
    code, out = run_verify("artifacts/splits")
    assert code == EXIT_VERIFY
    assert "lineage mismatch: artifacts/splits/cr_0.5.jsonl: sha256 mismatch" in out


def test_missing_and_extra_files_are_mismatches(chain: Path) -> None:
    (chain / "artifacts/pairs/ledger.json").unlink()
    (chain / "artifacts/pairs/stray.txt").write_text("x")
    problems = lineage.trace("artifacts/splits").all_problems()
    assert "artifacts/pairs/ledger.json: missing" in problems
    assert "artifacts/pairs/stray.txt: not in manifest" in problems


def test_parent_with_a_different_manifest_is_a_mismatch(chain: Path) -> None:
    """Re-running ingest with another seed replaces the parent: the child no longer descends from it."""
    study = load_config(ROOT / "configs" / "smoke.yaml", overrides=["ingest.seed=7"])
    ingest.run(study, Path("artifacts/sources"))
    code, out = run_verify("artifacts/splits")
    assert code == EXIT_VERIFY
    assert "artifacts/sources/manifest.json: manifest sha256" in out
    assert "recorded by artifacts/pairs" in out


def test_tampered_parent_manifest_is_a_mismatch(chain: Path) -> None:
    mf = chain / "artifacts/pairs/manifest.json"
    data = json.loads(mf.read_text())
    data["meta"]["note"] = "edited"
    mf.write_text(json.dumps(data))
    problems = lineage.trace("artifacts/splits").all_problems()
    assert problems[0].startswith("artifacts/pairs/manifest.json: manifest sha256")
    assert any(p.startswith("artifacts/pairs/manifest.json: self_sha256 mismatch") for p in problems)


def test_moved_chain_is_found_from_anywhere(
    chain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parents are recorded relative to the child: a moved study verifies from anywhere."""
    moved = tmp_path / "elsewhere" / "deep"
    shutil.move(str(chain), moved)
    monkeypatch.chdir(tmp_path)
    node = lineage.trace(str(moved / "artifacts/splits"))
    assert node.all_problems() == []
    assert [link.found_by for link in node.parents] == ["relative path"]


def test_renamed_parent_is_found_by_manifest_hash(chain: Path) -> None:
    (chain / "artifacts/sources").rename(chain / "artifacts/sources-v1")
    node = lineage.trace("artifacts/splits")
    assert node.all_problems() == []
    pairs = node.parents[0].node
    assert pairs is not None
    assert pairs.parents[0].found_by == "manifest sha256"
    assert pairs.parents[0].node is not None and pairs.parents[0].node.uri == "artifacts/sources-v1"


def test_missing_parent_is_named(chain: Path) -> None:
    shutil.rmtree(chain / "artifacts/sources")
    code, out = run_verify("artifacts/pairs")
    assert code == EXIT_VERIFY
    assert "artifacts/pairs: parent 'sources' not found (recorded path ../sources" in out


def test_json_links_dvc_lock_and_kfp_run(chain: Path) -> None:
    with artifact_dir(Path("artifacts/eval"), "eval", [Path("artifacts/splits")], "cfg",
                      {"kfp_run_id": "run-1234"}) as tmp:
        (tmp / "scores.json").write_text("{}")
    (chain / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  corrupt:\n    cmd: faco corrupt\n    outs:\n"
        "    - path: artifacts/splits\n      hash: md5\n      md5: 0123abcd.dir\n"
    )
    console = Console(record=True, width=400)
    assert lineage.show("artifacts/eval", as_json=True, console=console) == 0
    doc = json.loads(console.export_text())
    assert doc["kind"] == "eval" and doc["kfp_run_id"] == "run-1234" and doc["ok"]
    splits = doc["parents"][0]["artifact"]
    assert splits["dvc"] == {"stage": "corrupt", "md5": "0123abcd.dir"}
    assert splits["manifest_sha256"] == manifest_hash(chain / "artifacts/splits")
    assert splits["parents"][0]["artifact"]["parents"][0]["artifact"]["kind"] == "sources"

    tree = Console(record=True, width=400)
    lineage.show("artifacts/eval", console=tree)
    text = tree.export_text()
    assert "kfp run run-1234" in text and "dvc.lock corrupt md5 0123abcd.dir" in text


def test_verify_exit_codes_through_the_installed_faco(chain: Path) -> None:
    """0 only when intact; 5 (one line, naming the place) on a flipped byte, a missing file, a
    missing folder, a missing parent, an edited head manifest; show --json prints and still fails."""
    ok = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert ok.returncode == 0, ok.stderr
    assert "lineage ok: artifacts/splits: 3 artifacts" in ok.stdout

    head = chain / "artifacts/splits/manifest.json"
    original = head.read_text()
    data = json.loads(original)
    name = sorted(data["files"])[0]
    data["files"][name] = "0" * 64  # a forged hash in the head's own manifest
    head.write_text(json.dumps(data))
    bad = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert bad.returncode == EXIT_VERIFY
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert "artifacts/splits/manifest.json: self_sha256 mismatch" in bad.stderr
    head.write_text(original)

    flip_byte(chain / "artifacts/pairs/pairs.jsonl")
    bad = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert bad.returncode == EXIT_VERIFY
    assert "artifacts/pairs/pairs.jsonl: sha256 mismatch" in bad.stderr
    shown = faco("lineage", "show", "artifacts/splits", "--json", cwd=chain)
    assert shown.returncode == EXIT_VERIFY and json.loads(shown.stdout)["parents"][0]["artifact"]["ok"] is False
    flip_byte(chain / "artifacts/pairs/pairs.jsonl")

    (chain / "artifacts/splits/stats.json").unlink()
    bad = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert bad.returncode == EXIT_VERIFY and "artifacts/splits/stats.json: missing" in bad.stderr

    missing = faco("lineage", "verify", "artifacts/no-such-folder", cwd=chain)
    assert missing.returncode == EXIT_VERIFY and "artifacts/no-such-folder: not a faco artifact" in missing.stderr

    shutil.rmtree(chain / "artifacts/sources")
    bad = faco("lineage", "verify", "artifacts/pairs", cwd=chain)
    assert bad.returncode == EXIT_VERIFY and "parent 'sources' not found" in bad.stderr


def test_copied_study_is_verified_as_the_copy(chain: Path, tmp_path: Path) -> None:
    """Tampering in a copy fails the copy's audit (the intact original is never consulted), and
    the original still verifies; a parent missing from the copy is not borrowed from the original."""
    copy = tmp_path / "archive" / "study-copy"
    shutil.copytree(chain, copy)
    flip_byte(copy / "artifacts/sources/sources.jsonl")
    bad = faco("lineage", "verify", str(copy / "artifacts/splits"), cwd=tmp_path)
    assert bad.returncode == EXIT_VERIFY
    assert "archive/study-copy/artifacts/sources/sources.jsonl: sha256 mismatch" in bad.stderr
    assert faco("lineage", "verify", "artifacts/splits", cwd=chain).returncode == 0

    flip_byte(copy / "artifacts/sources/sources.jsonl")
    shutil.rmtree(copy / "artifacts/pairs")
    bad = faco("lineage", "verify", str(copy / "artifacts/splits"), cwd=tmp_path)
    assert bad.returncode == EXIT_VERIFY
    assert "parent 'pairs' not found" in bad.stderr and "--allow-outside" in bad.stderr
    node = lineage.trace(str(copy / "artifacts/splits"), allow_outside=True)
    assert node.all_problems() == [] and node.parents[0].found_by == "uri"
    original = json.loads((copy / "artifacts/splits/manifest.json").read_text())["parents"][0]["uri"]
    tree = os.path.commonpath([str(copy), original.removeprefix("file://")])
    wider = faco("lineage", "verify", str(copy / "artifacts/splits"), "--root", tree, cwd=tmp_path)
    assert wider.returncode == 0, wider.stderr  # a tree that holds the original too: its pairs are used


def test_schema_1_manifests_verify_only_when_allowed(chain: Path) -> None:
    """Manifests written by faco 0.1 (paths relative to the run's cwd, no self-hash) are refused as a
    downgrade (anyone can rewrite one), and verify as before with --allow-schema-1."""
    previous = None
    for name in ("sources", "pairs", "splits"):
        mf = chain / "artifacts" / name / "manifest.json"
        data = json.loads(mf.read_text())
        data["schema_version"] = 1
        del data["self_sha256"]
        for parent in data["parents"]:
            parent.pop("relative_path")
            parent.pop("uri")
            parent["manifest_sha256"] = previous
        mf.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        previous = manifest_hash(chain / "artifacts" / name)
    refused = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert refused.returncode == EXIT_VERIFY and "schema 1 manifest without self_sha256: refused" in refused.stderr
    allowed = faco("lineage", "verify", "artifacts/splits", "--allow-schema-1", cwd=chain)
    assert allowed.returncode == 0, allowed.stderr
    node = lineage.trace("artifacts/splits", policy=lineage.Policy(legacy=True))
    assert node.all_problems() == []
    assert [link.found_by for link in node.parents] == ["recorded path"]
    flip_byte(chain / "artifacts/sources/sources.jsonl")
    assert faco("lineage", "verify", "artifacts/splits", "--allow-schema-1", cwd=chain).returncode == EXIT_VERIFY


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 endpoint (moto) on 127.0.0.1 with an ephemeral port; env points boto3 at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for key, value in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield url
    finally:
        server.stop()


def test_s3_chain_verifies_and_names_the_s3_object(chain: Path, s3_server: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="faco")
    storage.upload_dir(s3, chain / "artifacts", storage.S3Uri("faco", "study-1/artifacts"))
    monkeypatch.chdir(tmp_path)

    code, out = run_verify("s3://faco/study-1/artifacts/splits")
    assert code == 0, out
    node = lineage.trace("s3://faco/study-1/artifacts/splits")
    assert [n.uri for n in node.walk()] == [
        "s3://faco/study-1/artifacts/splits", "s3://faco/study-1/artifacts/pairs",
        "s3://faco/study-1/artifacts/sources",
    ]

    flip_byte(chain / "artifacts/sources/sources.jsonl")
    key = "study-1/artifacts/sources/sources.jsonl"
    s3.upload_file(str(chain / "artifacts/sources/sources.jsonl"), "faco", key)
    code, out = run_verify("s3://faco/study-1/artifacts/splits")
    assert code == EXIT_VERIFY
    assert "s3://faco/study-1/artifacts/sources/sources.jsonl: sha256 mismatch" in out


def test_s3_parent_under_another_prefix_is_found_by_hash(chain: Path, s3_server: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="faco")
    storage.upload_dir(s3, chain / "artifacts/splits", storage.S3Uri("faco", "runs/r1/splits"))
    storage.upload_dir(s3, chain / "artifacts/pairs", storage.S3Uri("faco", "runs/r1/pairs-x"))
    storage.upload_dir(s3, chain / "artifacts/sources", storage.S3Uri("faco", "runs/sources-y"))
    node = lineage.trace("s3://faco/runs/r1/splits")
    assert [n.uri for n in node.walk()][1:] == ["s3://faco/runs/r1/pairs-x"]
    assert node.all_problems() == [
        "s3://faco/runs/r1/pairs-x: parent 'sources' not found (recorded path ../sources, manifest sha256 "
        f"{manifest_hash(chain / 'artifacts/sources')[:12]}); one is outside the verified tree s3://faco/runs/r1 "
        "at s3://faco/runs/sources-y (pass --allow-outside to use it)"
    ], "runs/sources-y is outside the tree the chain spans"
    node = lineage.trace("s3://faco/runs/r1/splits", allow_outside=True)
    assert node.all_problems() == []
    assert [n.uri for n in node.walk()][1:] == ["s3://faco/runs/r1/pairs-x", "s3://faco/runs/sources-y"]
    assert node.parents[0].found_by == "manifest sha256"


def test_s3_target_that_is_not_an_artifact(s3_server: str) -> None:
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="faco")
    with pytest.raises(VerificationError, match="s3://faco/nothing/here: not a faco artifact"):
        lineage.verify("s3://faco/nothing/here")


def _study_with(**ingest: object) -> Study:
    data = load_config(ROOT / "configs" / "smoke.yaml").model_dump(mode="json")
    data["ingest"].update(ingest)
    return Study.model_validate(data)


def test_raw_mirror_file_is_recorded_and_a_changed_one_is_caught(tmp_path: Path) -> None:
    """The ingest manifest pins the mirror file it read; verify re-hashes it and names it when changed."""
    mirror = tmp_path / "data"
    (mirror / "sources" / "qasc").mkdir(parents=True)
    raw_file = mirror / "sources" / "qasc" / "dev.jsonl"
    shutil.copy(ROOT / "data" / "sources" / "qasc" / "dev.jsonl", raw_file)
    study = _study_with(data_dir=str(mirror), sources=[{"name": "qasc", "split": "validation"}])
    out = ingest.run(study, tmp_path / "study" / "sources")
    raw_inputs = json.loads((out / "manifest.json").read_text())["meta"]["raw_inputs"]
    assert raw_inputs == [{"source": "qasc", "split": "validation", "path": str(raw_file.resolve()),
                           "size": raw_file.stat().st_size, "sha256": sha256_file(raw_file)}]
    ok = faco("lineage", "verify", str(out), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "1 raw inputs verified" in ok.stdout

    with raw_file.open("a") as fh:
        fh.write('{"id": "injected"}\n')
    bad = faco("lineage", "verify", str(out), cwd=tmp_path)
    assert bad.returncode == EXIT_VERIFY
    assert f"{raw_file.resolve()}: raw input of study/sources (qasc/validation) changed" in bad.stderr


def test_hub_sources_record_their_pinned_revision() -> None:
    study = load_config(ROOT / "configs" / "faco-paper.yaml")
    entries = raw.ingest_inputs(study)
    assert len(entries) == len(study.ingest.sources)
    for entry in entries:
        assert entry["hub"] == SOURCES[entry["source"]].hub_path
        assert re.fullmatch(r"[0-9a-f]{40}", str(entry["revision"])) or entry["source"] == "conala", entry
    conala = next(e for e in entries if e["source"] == "conala")
    assert conala["revision"] == PARQUET_REVISION and conala["config"] == "curated"


def test_conala_reads_the_hub_parquet_conversion(tmp_path: Path) -> None:
    """CoNaLa's hub copy is a loading script: the adapter reads its Parquet conversion, whose rows
    (hub schema: question_id, intent, rewritten_intent, snippet) normalise as the mirror's do."""
    adapter = SOURCES["conala"]
    assert adapter.parquet_files("train", None) == (
        "hf://datasets/neulab/conala@refs%2Fconvert%2Fparquet/curated/train/*.parquet")
    rows = [{"question_id": 41067960, "intent": "How to join ints?", "rewritten_intent": "join list `x` of ints",
             "snippet": "int(''.join(map(str, x)))"},
            {"question_id": 3207219, "intent": "List files in a folder", "rewritten_intent": None,
             "snippet": "os.listdir('.')"},
            {"question_id": 1, "intent": "", "rewritten_intent": None, "snippet": "x"}]
    path = tmp_path / "conala-train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    source = {"name": "conala", "split": "train", "data_files": str(path)}
    study = _study_with(origin="hub", sources=[source])
    out = ingest.run(study, tmp_path / "sources")
    records = [json.loads(line) for line in (out / "sources.jsonl").read_text().splitlines()]
    assert [(r["id"], r["question"], r["answer"]) for r in records] == [
        ("conala:41067960-0", "join list `x` of ints", "int(''.join(map(str, x)))"),
        ("conala:3207219-1", "List files in a folder", "os.listdir('.')"),
    ]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["intent: empty"]
    meta = json.loads((out / "manifest.json").read_text())["meta"]
    assert meta["raw_inputs"][0]["sha256"] == sha256_file(path)
