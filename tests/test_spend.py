"""The spend cap `generate.max_cost_usd`, through the installed `faco generate` and the real openai
client against the local OpenAI-protocol server: refused before anything is sent when the estimate
exceeds it; stopped before the next wave when the ledger does, with every finished reply cached."""

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


def _faco(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FACO), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={"OPENAI_API_KEY": "sk-test", "PATH": "/usr/bin:/bin"})


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
