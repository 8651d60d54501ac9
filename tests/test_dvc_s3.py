"""DVC with a real S3 remote: the repository's own dvc.yaml runs ingest -> generate -> corrupt,
`dvc push` sends the outputs to a moto S3 server (real S3 protocol, 127.0.0.1, ephemeral port),
cache and outputs are wiped, `dvc pull` restores them, and every file round-trips byte for byte;
the restored manifest chain still verifies."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from faco import lineage

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["ingest", "generate", "corrupt"]
BUCKET = f"faco-dvc-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 server; or a real one (MinIO) at $FACO_TEST_S3_ENDPOINT with credentials from env."""
    external = os.environ.get("FACO_TEST_S3_ENDPOINT")
    if external:
        yield external
        return
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def tree_digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_study_repo(dest: Path) -> list[str]:
    """A git+DVC repo with the project's dvc.yaml and params.yaml and the source deps of STAGES."""
    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stages = {name: dvc_yaml["stages"][name] for name in STAGES}
    produced = {out for body in stages.values() for out in body["outs"]}
    for body in stages.values():
        for dep in body["deps"]:
            if dep not in produced:
                src, target = ROOT / dep, dest / dep
                target.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    skip = shutil.ignore_patterns("__pycache__")
                    shutil.copytree(src, target, dirs_exist_ok=True, ignore=skip)
                else:
                    shutil.copy2(src, target)
    shutil.copy2(ROOT / "dvc.yaml", dest / "dvc.yaml")
    shutil.copy2(ROOT / "params.yaml", dest / "params.yaml")
    for extra in yaml.safe_load((ROOT / "dvc.yaml").read_text()).get("vars", []):  # files dvc.yaml's vars name
        if isinstance(extra, str):
            (dest / extra).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / extra.split(":")[0], dest / extra.split(":")[0])
    return sorted(produced)


@pytest.mark.slow
def test_dvc_push_pull_round_trips_every_artifact_byte_for_byte(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "study"
    repo.mkdir()
    outs = make_study_repo(repo)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def run(*cmd: str) -> str:
        result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "remote", "add", "-d", "store", f"s3://{BUCKET}/dvcstore")
    run("dvc", "remote", "modify", "store", "endpointurl", s3_endpoint)
    run("dvc", "repro", *STAGES)
    before = {out: tree_digests(repo / out) for out in outs}
    assert all(before.values()) and "manifest.json" in before["artifacts/splits"]

    run("dvc", "push", *STAGES)
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint)
            .list_objects_v2(Bucket=BUCKET, Prefix="dvcstore/")["Contents"]]
    assert len(keys) >= sum(len(files) for files in before.values())

    shutil.rmtree(repo / ".dvc" / "cache")
    for out in outs:
        shutil.rmtree(repo / out)
    run("dvc", "pull", *STAGES)
    after = {out: tree_digests(repo / out) for out in outs}
    assert after == before
    assert "up to date" in run("dvc", "status", *STAGES).lower()

    monkeypatch.chdir(repo)
    node = lineage.trace("artifacts/splits")
    assert node.all_problems() == []
    assert [n.kind for n in node.walk()] == ["splits", "pairs", "sources"]
    assert node.dvc is not None and node.dvc["stage"] == "corrupt" and node.dvc["md5"].endswith(".dir")
