"""Generation throughput: sequential vs concurrent requests through the cache, against a local
OpenAI-protocol server (separate process) that answers after 500 ms and injects 5 % faults.

    .venv/bin/python benchmarks/generation.py [--requests 2000] [--concurrency 64]

Last line: ``speedup: <X>x lost: <n> duplicates: <n>`` (target: speedup >= 30, lost 0, duplicates 0).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from faco.config import GenerateConfig
from faco.generation.backends import ChainRequest, Completion
from faco.generation.cache import ChainCache
from faco.generation.openai_backend import OpenAIBackend
from faco.generation.runner import GenerationError, Generator

ROOT = Path(__file__).resolve().parents[1]


def requests(tag: str, n: int) -> list[ChainRequest]:
    return [
        ChainRequest(
            f"{tag}{i}",
            "true",
            f"{tag} question {i}\n### Ground-truth Answer ###\nA{i}\n###",
            f"{tag}{i}",
            f"A{i}",
            None,
        )
        for i in range(n)
    ]


def run(cfg: GenerateConfig, reqs: list[ChainRequest], cache_path: Path) -> tuple[float, int]:
    """(requests per second, lost) for one pass through a fresh cache."""
    with ChainCache(cache_path) as cache:
        gen = Generator(OpenAIBackend(cfg), cache)
        start = time.perf_counter()
        try:
            out = gen.generate(reqs)
            lost = sum(not isinstance(o, Completion) for o in out)
        except GenerationError as e:
            print(e)
            lost = len(reqs) - len(cache.get_many(gen.key(r) for r in reqs))
        elapsed = time.perf_counter() - start
        stored = len(cache.get_many(gen.key(r) for r in reqs))
        print(
            f"  {len(reqs)} requests, concurrency {cfg.concurrency}: {elapsed:.1f} s, "
            f"{len(reqs) / elapsed:.1f} req/s, cached {stored}, stats {dict(gen.ledger.backend_stats)}"
        )
        return len(reqs) / elapsed, lost + (len(reqs) - stored)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--sequential", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "openai_server.py"),
            "--latency",
            "0.5",
            "--fault-rate",
            "0.05",
            "--retry-after",
            "0.5",
            "--slow",
            "3",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}"
        cfg = GenerateConfig(
            backend="openai",
            model="bench",
            base_url=f"{base}/v1",
            timeout_s=2.0,
            backoff_base_s=0.25,
            max_retries=12,
        )
        with tempfile.TemporaryDirectory() as tmp:
            print("sequential:")
            seq_rate, seq_lost = run(
                cfg.model_copy(update={"concurrency": 1}),
                requests("seq", args.sequential),
                Path(tmp) / "seq.sqlite",
            )
            print("concurrent:")
            con_rate, con_lost = run(
                cfg.model_copy(update={"concurrency": args.concurrency}),
                requests("con", args.requests),
                Path(tmp) / "con.sqlite",
            )
        with urllib.request.urlopen(f"{base}/_stats") as resp:
            stats = json.load(resp)
        print(f"server: {stats}")
        lost, dups = seq_lost + con_lost, stats["duplicates"]
        print(f"speedup: {con_rate / seq_rate:.1f}x lost: {lost} duplicates: {dups}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
