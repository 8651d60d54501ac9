"""Generation paid once, through the installed `faco generate` and the real openai client against
the local OpenAI-protocol server. The spend cap `generate.max_cost_usd`: refused before anything is
sent when the estimate exceeds it; stopped before the next wave when the ledger does, with every
finished reply cached. A chain cache in S3 (moto's server on 127.0.0.1): a second pod with an
empty local disk pays for nothing."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from openai_server import FakeOpenAI
from test_sources import study as make_study

from faco.stages import generate, ingest

FACO = Path(sys.executable).parent / "faco"
#: Prices large enough that every reply moves the cost well past the estimate's 4-decimal rounding.
PRICES = {"gpt-4o-mini": {"input_per_mtok": 1000.0, "output_per_mtok": 4000.0}}


def _config(tmp: Path, srv: FakeOpenAI, **generate_cfg: object) -> Path:
    st = make_study(cap=12, seed=1)
    data = st.model_dump(mode="json")
    data["generate"] = {"backend": "openai", "model": "gpt-4o-mini", "base_url": srv.base_url, "timeout_s": 5,
                        "backoff_base_s": 0.01, "cache_path": str(tmp / "cache.sqlite"), "concurrency": 4,
                        "prices": PRICES, **generate_cfg}
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _faco(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FACO), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={"OPENAI_API_KEY": "sk-test", "PATH": "/usr/bin:/bin", **env})


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT COUNT(*) FROM chains").fetchone()[0])


def _estimate(config: Path, sources: Path) -> float:
    done = _faco("generate", config, "--sources", sources, "--dry-run")
    assert done.returncode == 0, done.stderr
    from faco.config import load_config

    est = generate.dry_run(load_config(config), sources)
    assert est.cost_usd is not None
    return est.cost_usd


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    return ingest.run(make_study(cap=12, seed=1), tmp_path / "sources")


def test_an_estimate_over_the_cap_is_refused_before_anything_is_sent(tmp_path: Path, sources: Path) -> None:
    with FakeOpenAI() as srv:
        cost = _estimate(_config(tmp_path, srv), sources)
        config = _config(tmp_path, srv, max_cost_usd=round(cost / 2, 4))
        done = _faco("generate", config, "--sources", sources, "--out", tmp_path / "pairs")
        assert done.returncode == 4, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: generate: estimated cost $") and "exceeds generate.max_cost_usd" in line
        assert sum(srv.paid.values()) == 0 and not (tmp_path / "pairs").exists()


def test_a_ledger_over_the_cap_stops_cleanly_and_the_rerun_pays_only_the_rest(tmp_path: Path, sources: Path) -> None:
    with FakeOpenAI() as srv:
        # the estimate assumes 1-token replies, the server's are longer: the ledger passes the
        # estimate part-way through, and the cap sits at the estimate
        cost = _estimate(_config(tmp_path, srv, est_output_tokens=1), sources)
        config = _config(tmp_path, srv, est_output_tokens=1, max_cost_usd=cost)
        done = _faco("generate", config, "--sources", sources, "--out", tmp_path / "pairs")
        assert done.returncode == 4, done.stderr
        lines = done.stderr.strip().splitlines()  # progress lines, then the one error line
        assert [x for x in lines if x.startswith("error")] == lines[-1:]
        assert lines[-1].startswith("error: generate: stopped at the spend cap: spent $")
        assert not (tmp_path / "pairs").exists()  # no artifact
        paid = sum(srv.paid.values())
        assert 0 < paid < 24  # 12 questions x 2 chains: stopped part-way
        assert _rows(tmp_path / "cache.sqlite") == paid  # every finished reply is kept
        done = _faco("generate", _config(tmp_path, srv, est_output_tokens=1), "--sources", sources,
                     "--out", tmp_path / "pairs")
        assert done.returncode == 0, done.stderr
        assert srv.duplicates() == 0 and sum(srv.paid.values()) == 24
        ledger = json.loads((tmp_path / "pairs" / "ledger.json").read_text())
        assert (ledger["cache_hits"], ledger["paid"]) == (paid, 24 - paid)


def test_a_chain_cache_in_s3_makes_another_pods_rerun_free(tmp_path: Path, sources: Path) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
        import boto3

        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="chains")
        with FakeOpenAI() as srv:
            config = _config(tmp_path, srv, cache_path="s3://chains/faco/generation.sqlite")
            first = _faco("generate", config, "--sources", sources, "--out", tmp_path / "a",
                          FACO_CACHE_DIR=str(tmp_path / "pod1"), **aws)
            assert first.returncode == 0, first.stderr
            assert sum(srv.paid.values()) == 24
            s3.download_file("chains", "faco/generation.sqlite", str(tmp_path / "in-s3.sqlite"))
            assert _rows(tmp_path / "in-s3.sqlite") == 24  # uploaded after the run
            # another pod: nothing on its local disk; the dry run and the run find every chain in S3
            pod2 = {"FACO_CACHE_DIR": str(tmp_path / "pod2"), **aws}
            dry = _faco("generate", config, "--sources", sources, "--dry-run", **pod2)
            assert dry.returncode == 0 and "(24 cached, 0 to send)" in dry.stdout, dry.stdout + dry.stderr
            second = _faco("generate", config, "--sources", sources, "--out", tmp_path / "b", **pod2)
            assert second.returncode == 0, second.stderr
            assert sum(srv.paid.values()) == 24 and srv.duplicates() == 0
            ledger = json.loads((tmp_path / "b" / "ledger.json").read_text())
            assert (ledger["cache_hits"], ledger["paid"]) == (24, 0)
            assert (tmp_path / "a" / "pairs.jsonl").read_text() == (tmp_path / "b" / "pairs.jsonl").read_text()
    finally:
        server.stop()
