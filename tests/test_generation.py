"""Generation through the real `openai` client against a local OpenAI-protocol server with faults."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openai_server import FAULTS, FakeOpenAI, default_responder
from test_sources import study as make_study

from faco.config import GenerateConfig
from faco.errors import ConfigError
from faco.generation.backends import ChainRequest, Completion, TemplateBackend
from faco.generation.cache import ChainCache
from faco.generation.chains import leaks, mentions
from faco.generation.openai_backend import OpenAIBackend, backoff
from faco.generation.pairs import build_pairs
from faco.generation.runner import GenerationError, Generator
from faco.generation.select import get_backend
from faco.records import PairRecord, RejectRecord, SourceRecord, read_jsonl
from faco.stages import generate, ingest

ROOT = Path(__file__).resolve().parents[1]


def cfg_for(srv: FakeOpenAI, tmp: Path, **kw: object) -> GenerateConfig:
    base = {
        "backend": "openai",
        "model": "gpt-4o-mini",
        "base_url": srv.base_url,
        "timeout_s": 0.5,
        "backoff_base_s": 0.01,
        "max_retries": 10,
        "cache_path": str(tmp / "cache.sqlite"),
        "concurrency": 8,
    }
    return GenerateConfig.model_validate({**base, **kw})


def requests(n: int) -> list[ChainRequest]:
    return [
        ChainRequest(f"r{i}", "true", f"Q{i}\n### Ground-truth Answer ###\nA{i}\n###", f"Q{i}", f"A{i}", None)
        for i in range(n)
    ]


def records(n: int = 12) -> list[SourceRecord]:
    st = make_study(cap=n, seed=1)
    recs, _ = ingest.load_source(st, st.ingest.sources[0])
    return ingest.sample(recs, n, 1, "commonsense_qa")


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_is_retried_without_loss_or_double_pay(tmp_path: Path, fault: str) -> None:
    with FakeOpenAI(fault_rate=0.4, faults=(fault,), slow_s=1.0, retry_after_s=0.05, seed=2) as srv:
        gen = Generator(OpenAIBackend(cfg_for(srv, tmp_path)), ChainCache(tmp_path / "cache.sqlite"))
        out = gen.generate(requests(30))
        assert srv.injected[fault] > 0
        assert [o.text for o in out if isinstance(o, Completion)] == [
            default_responder(r.prompt, None, 0) for r in requests(30)
        ]
        assert srv.duplicates() == 0 and sum(srv.paid.values()) == 30
        assert gen.ledger.paid == 30 and gen.ledger.backend_stats["retries"] >= srv.injected[fault]


def test_backoff_before_asking_again() -> None:
    rng = random.Random(0)
    delays = [backoff(a, 1.0, 8.0, rng) for a in range(6)]
    assert all(min(8, 2**a) / 2 <= d <= min(8, 2**a) for a, d in enumerate(delays))
    assert len({round(backoff(3, 1.0, 60, rng), 6) for _ in range(20)}) > 1  # jitter


def test_invalid_replies_are_asked_again_by_faco_not_the_client(tmp_path: Path) -> None:
    """The client retries transport faults; a 200 whose body is no completion is faco's to re-ask."""
    with FakeOpenAI(fault_rate=1.0, faults=("malformed",)) as srv:
        gen = Generator(OpenAIBackend(cfg_for(srv, tmp_path, max_retries=2)), ChainCache(tmp_path / "cache.sqlite"))
        with pytest.raises(GenerationError, match="3 of 3 requests failed after all retries"):
            gen.generate(requests(3))
        stats = gen.ledger.backend_stats
        assert srv.calls == 3 * 3 and stats["invalid reply"] == 9 and stats["retries"] == 6


def test_gives_up_after_max_retries_and_keeps_what_finished(tmp_path: Path) -> None:
    with FakeOpenAI() as srv:
        cfg = cfg_for(srv, tmp_path, max_retries=2)
        cache = ChainCache(tmp_path / "cache.sqlite")
        Generator(OpenAIBackend(cfg), cache).generate(requests(5))
        srv.fault_rate, srv.faults = 1.0, ("500",)
        calls = srv.calls
        with pytest.raises(GenerationError, match="5 of 5 requests failed after all retries"):
            Generator(OpenAIBackend(cfg), cache).generate(requests(10))
        assert srv.calls - calls == 5 * 3
        assert len(cache) == 5


def test_cache_makes_a_rerun_free(tmp_path: Path) -> None:
    with FakeOpenAI() as srv:
        cfg = cfg_for(srv, tmp_path)
        first = Generator(OpenAIBackend(cfg), ChainCache(cfg.cache_path)).generate(
            requests(20) + requests(20)
        )
        assert sum(srv.paid.values()) == 20  # identical requests within a call are sent once
        again = Generator(OpenAIBackend(cfg), ChainCache(cfg.cache_path))
        assert again.generate(requests(20)) == first[:20]
        assert sum(srv.paid.values()) == 20 and again.ledger.cache_hits == 20 and again.ledger.paid == 0
        hotter = Generator(
            OpenAIBackend(cfg.model_copy(update={"temperature": 1.0})), ChainCache(cfg.cache_path)
        )
        hotter.generate(requests(3))
        assert sum(srv.paid.values()) == 23  # other parameters, other key


def test_api_key_only_from_the_named_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACO_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="FACO_TEST_KEY is not set"):
        get_backend(GenerateConfig(backend="openai", model="gpt-4o", api_key_env="FACO_TEST_KEY"))
    monkeypatch.setenv("FACO_TEST_KEY", "sk-test-123")
    with FakeOpenAI() as srv:
        Generator(OpenAIBackend(cfg_for(srv, tmp_path, api_key_env="FACO_TEST_KEY")), None).generate(
            requests(1)
        )
        assert srv.auth == ["Bearer sk-test-123"]


def _question_echo(prompt: str, seed: int | None, n: int) -> str:
    """False chains on the first attempt (seed 0) repeat the options, so they name the correct answer."""
    if "Incorrect Answer" in prompt and seed == 0:
        return "Step 1: " + prompt.split("### Question ###")[1].split("###")[0].replace("\n", " ")
    return default_responder(prompt, seed, n)


def test_leaking_false_chains_are_regenerated(tmp_path: Path) -> None:
    recs = records()
    with FakeOpenAI(responder=_question_echo) as srv:
        cfg = cfg_for(srv, tmp_path)
        pairs, rejects = build_pairs(recs, Generator(OpenAIBackend(cfg), ChainCache(cfg.cache_path)), cfg)
        assert len(pairs) == len(recs) and not rejects
        assert all(not mentions(p.false.reasoning, p.answer) and p.false.answer != p.answer for p in pairs)
        assert sum(srv.paid.values()) == 3 * len(recs)  # true + leaking false + regenerated false


def test_always_leaking_false_chains_are_rejected(tmp_path: Path) -> None:
    recs = records(5)
    with FakeOpenAI(responder=lambda p, s, n: _question_echo(p, 0, n)) as srv:
        cfg = cfg_for(srv, tmp_path, max_false_retries=2)
        pairs, rejects = build_pairs(recs, Generator(OpenAIBackend(cfg), ChainCache(cfg.cache_path)), cfg)
        assert not pairs
        assert [r.reason for r in rejects] == ["false chain: names the correct answer after 3 attempts"] * 5
        assert sum(srv.paid.values()) == 5 * (1 + 3)


def test_wrong_answer_marker_rejects_the_record(tmp_path: Path) -> None:
    recs = records(6)
    disputed = recs[2].question

    def responder(prompt: str, seed: int | None, n: int) -> str:
        if "Ground-truth Answer" in prompt and disputed in prompt:
            return "Step 1: The label does not fit.\n*WRONG ANSWER*"
        return default_responder(prompt, seed, n)

    with FakeOpenAI(responder=responder) as srv:
        cfg = cfg_for(srv, tmp_path)
        pairs, rejects = build_pairs(recs, Generator(OpenAIBackend(cfg), ChainCache(cfg.cache_path)), cfg)
        assert [r.row for r in rejects] == [recs[2].id] and "*WRONG ANSWER*" in rejects[0].reason
        assert len(pairs) == 5 and sum(srv.paid.values()) == 6 + 5  # no false chain paid for the disputed one


def test_bad_request_rejects_only_that_record(tmp_path: Path) -> None:
    recs = records(4)
    with FakeOpenAI() as srv:
        srv.reject_prompts = {recs[1].question}
        cfg = cfg_for(srv, tmp_path)
        pairs, rejects = build_pairs(recs, Generator(OpenAIBackend(cfg), ChainCache(cfg.cache_path)), cfg)
        assert len(pairs) == 3 and rejects[0].row == recs[1].id
        assert rejects[0].reason.startswith("true chain: generation failed: HTTP 400")


def test_generate_stage_writes_ledger_and_dry_run_matches(tmp_path: Path) -> None:
    st = make_study(cap=10, sources=[{"name": "commonsense_qa"}, {"name": "mbpp"}])
    src = ingest.run(st, tmp_path / "sources")
    with FakeOpenAI(fault_rate=0.1, faults=("500", "429"), retry_after_s=0.01) as srv:
        st.generate = cfg_for(srv, tmp_path)
        before = generate.dry_run(st, src)
        assert (before.questions, before.requests, before.cached, before.to_send) == (20, 40, 0, 40)
        price = st.generate.prices["gpt-4o-mini"]
        assert before.cost_usd_max is not None and before.cost_usd is not None
        assert before.cost_usd <= before.cost_usd_max
        assert before.cost_usd_max == pytest.approx(
            (before.tokens_in * price.input_per_mtok + before.tokens_out_max * price.output_per_mtok) / 1e6,
            abs=1e-4,
        )
        out = generate.run(st, src, tmp_path / "pairs")
        ledger = json.loads((out / "ledger.json").read_text())
        assert ledger["paid"] == sum(srv.paid.values()) == 40 and srv.duplicates() == 0
        assert (ledger["tokens_in"], ledger["tokens_out"]) == (srv.tokens_in, srv.tokens_out)
        assert ledger["cost_usd"] == pytest.approx(
            (srv.tokens_in * price.input_per_mtok + srv.tokens_out * price.output_per_mtok) / 1e6, abs=1e-6
        )
        assert len(list(read_jsonl(out / "pairs.jsonl", PairRecord))) == 20
        after = generate.dry_run(st, src)
        assert (after.cached, after.to_send, after.cost_usd) == (40, 0, 0.0)


_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from faco.config import GenerateConfig
from faco.stages import generate
import test_sources as t
st = t.study(cap=40, sources=[{{"name": "commonsense_qa"}}])
st.generate = GenerateConfig.model_validate({cfg!r})
generate.run(st, Path({src!r}), Path({out!r}))
"""


def _driver(tmp: Path, cfg: GenerateConfig, src: Path) -> list[str]:
    code = _DRIVER.format(
        tests=str(ROOT / "tests"), cfg=cfg.model_dump(mode="json"), src=str(src), out=str(tmp / "pairs")
    )
    return [sys.executable, "-c", code]


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return int(con.execute("SELECT COUNT(*) FROM chains").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_kill_9_mid_run_then_rerun_pays_nothing_twice(tmp_path: Path) -> None:
    st = make_study(cap=40)
    src = ingest.run(st, tmp_path / "sources")
    with FakeOpenAI(latency_s=0.05) as srv:
        cfg = cfg_for(srv, tmp_path, timeout_s=30, concurrency=8)
        srv.pay_limit = 25  # then every new request hangs: the kill lands with requests in flight
        proc = subprocess.Popen(_driver(tmp_path, cfg, src), cwd=ROOT)
        deadline = time.time() + 120
        while _rows(Path(cfg.cache_path or "")) < 25 or srv.hanging < cfg.concurrency:
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (tmp_path / "pairs").exists()
        srv.pay_limit = None
        srv.release.set()
        subprocess.run(_driver(tmp_path, cfg, src), cwd=ROOT, check=True)
        pairs = list(read_jsonl(tmp_path / "pairs" / "pairs.jsonl", PairRecord))
        rejects = list(read_jsonl(tmp_path / "pairs" / "rejects.jsonl", RejectRecord))
        assert len(pairs) + len(rejects) == 40 and not rejects  # nothing lost
        assert srv.duplicates() == 0  # nothing paid twice
        assert sum(srv.paid.values()) == 80 == _rows(Path(cfg.cache_path or ""))


def test_batch_api_maps_results_and_resubmits_failed_lines(tmp_path: Path) -> None:
    with FakeOpenAI(batch_fail_every=4) as srv:
        cfg = cfg_for(srv, tmp_path, mode="batch", batch_poll_s=0.01)
        out = Generator(OpenAIBackend(cfg), ChainCache(cfg.cache_path)).generate(requests(20))
        assert [o.text for o in out if isinstance(o, Completion)] == [
            default_responder(r.prompt, None, 0) for r in requests(20)
        ]
        assert srv.batch_creates == 3  # 20 lines, then the 5 failed, then the 1 failed of those
        assert srv.duplicates() == 0 and sum(srv.paid.values()) == 20


def test_batch_resumes_after_kill_instead_of_paying_again(tmp_path: Path) -> None:
    st = make_study(cap=40)
    src = ingest.run(st, tmp_path / "sources")
    with FakeOpenAI() as srv:
        cfg = cfg_for(srv, tmp_path, mode="batch", batch_poll_s=60.0)
        proc = subprocess.Popen(_driver(tmp_path, cfg, src), cwd=ROOT)
        deadline = time.time() + 120
        while not srv.batches or not any(b["status"] == "in_progress" for b in srv.batches.values()):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Also forget the local record of the batch: it must be found again by its tag on the server.
        with sqlite3.connect(cfg.cache_path or "") as con:
            con.execute("DELETE FROM batches")
        fast = cfg.model_copy(update={"batch_poll_s": 0.01})
        subprocess.run(_driver(tmp_path, fast, src), cwd=ROOT, check=True)
        assert srv.batch_creates == 2  # true chains once, false chains once: no second true-chain batch
        assert srv.duplicates() == 0 and sum(srv.paid.values()) == 80
        assert len(list(read_jsonl(tmp_path / "pairs" / "pairs.jsonl", PairRecord))) == 40


def test_template_backend_is_not_cached(tmp_path: Path) -> None:
    cache = ChainCache(tmp_path / "c.sqlite")
    gen = Generator(TemplateBackend(), cache)
    gen.generate(requests(3))
    assert len(cache) == 0 and gen.ledger.paid == 3


def test_options_the_question_names_are_not_leaks() -> None:
    """Winogrande's sentence holds both candidates: a false chain restating it must not be rejected."""
    st = make_study(cap=8, sources=[{"name": "winogrande", "split": "validation"}])
    recs, _ = ingest.load_source(st, st.ingest.sources[0])
    recs = ingest.sample(recs, 8, 0, "winogrande")
    assert all(mentions(r.question, r.answer) for r in recs)
    pairs, rejects = build_pairs(recs, Generator(TemplateBackend(), None), GenerateConfig())
    assert len(pairs) == 8 and not rejects
    assert all(p.false.answer != p.answer for p in pairs)
    # where the question does not name it, naming the correct answer still is a leak
    csqa = records(1)[0]
    assert not mentions(csqa.question, csqa.answer)
    assert leaks(csqa, f"Clearly the answer is {csqa.answer}.") and not leaks(csqa, "No option fits.")


def test_step_labels_are_not_leaks() -> None:
    """A step-by-step false chain's "Step 4:" does not name the answer "4"; saying it does."""
    rec = SourceRecord.model_validate({
        "id": "aqua_rat:93", "source": "aqua_rat", "domain": "reasoning", "kind": "mc",
        "question": "A fair coin is tossed 6 times. If heads appears on the first 2 tosses, then what is the "
                    "total number of heads we would expect after all 6 tosses.",
        "choices": ["2", "3", "4", "5", "6"], "answer": "4", "answer_index": 2})
    chain = "Step 1: Two heads are already in.\nStep 2: Each later toss adds a head.\nStep 3: So 6.\nStep 4: 6."
    assert not leaks(rec, chain)
    assert leaks(rec, chain + "\nStep 5: Strictly speaking, 4 is expected.")
    pairs, rejects = build_pairs([rec], Generator(TemplateBackend(), None), GenerateConfig())
    assert len(pairs) == 1 and not rejects
