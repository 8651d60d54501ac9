"""OpenAI-compatible backend (OpenAI, vLLM, llama.cpp, … at any base_url), online or via the Batch API.

Online: asyncio with at most `generate.concurrency` requests in flight, each with a timeout. The
openai client retries transport faults itself (`max_retries`: 408/409/429/5xx, timeouts, dropped
connections; Retry-After honoured, else exponential backoff with jitter); faco asks again only
when a reply arrives empty or unparseable. Every reply goes to the sink the moment it arrives, and
its concurrency slot is freed only after that, so the cache never lags behind what was paid for by
more than the requests in flight.

Batch: requests are written as JSONL lines whose `custom_id` is the hash of the request body,
uploaded, submitted as one batch (tagged with the input's hash), polled, downloaded and mapped
back by `custom_id`; failed lines are resubmitted. Submitted batches are recorded in the cache
before polling, and a batch submitted but not recorded (killed in between) is found again by its
tag, so a rerun resumes the same batch instead of paying for a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import openai

from faco.config import GenerateConfig
from faco.errors import ConfigError
from faco.generation.backends import (
    ChainRequest,
    Completion,
    Failure,
    Logprobs,
    Outcome,
    Sink,
    backend_params,
    request_seed,
)
from faco.generation.cache import ChainCache
from faco.progress import log

_RETRY_STATUS = {408, 409, 429}
_FATAL_STATUS = {401, 403, 404}
_DONE = {"completed", "failed", "expired", "cancelled"}


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before asking again after empty or invalid reply `attempt` (0-based): exponential
    backoff with equal jitter, capped."""
    d = min(cap, base * 2**attempt)
    return d / 2 + rng.uniform(0, d / 2)


def _status_failure(exc: openai.APIStatusError, retries: int) -> Failure:
    """The outcome of an HTTP error the client has given up on (after `retries` retries if retryable)."""
    reason = f"HTTP {exc.status_code}: {exc.message}"[:300]
    if exc.status_code in _RETRY_STATUS or exc.status_code >= 500:
        return Failure(f"{retries + 1} attempts failed; last: {reason}", retryable=True)
    return Failure(reason, retryable=exc.status_code in _FATAL_STATUS)


class OpenAIBackend:
    """Chat completions against any OpenAI-compatible server."""

    name = "openai"
    cacheable = True

    def __init__(self, cfg: GenerateConfig, cache: ChainCache | None = None) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.cache = cache  # where Batch API jobs are recorded
        self.stats: Counter[str] = Counter()
        self._rng = random.Random()
        key = os.environ.get(cfg.api_key_env)
        if not key and cfg.base_url is None:
            raise ConfigError(f"generate.api_key_env: environment variable {cfg.api_key_env} is not set")
        self._client_kwargs: dict[str, Any] = {
            "api_key": key or "unused",
            "base_url": cfg.base_url,
            "max_retries": cfg.max_retries,
            "timeout": cfg.timeout_s,
        }

    def params(self) -> dict[str, Any]:
        return backend_params(self.cfg)

    def body(self, req: ChainRequest) -> dict[str, Any]:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": req.prompt}],
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
            "seed": request_seed(self.cfg.seed, req.attempt),
        }
        if req.top_logprobs:
            body |= {"logprobs": True, "top_logprobs": req.top_logprobs}
        return body

    def complete(self, requests: Sequence[ChainRequest], sink: Sink) -> None:
        if self.cfg.mode == "batch":
            self._batch(requests, sink)
        else:
            asyncio.run(self._online(requests, sink))

    # -- online ------------------------------------------------------------------------------

    async def _online(self, requests: Sequence[ChainRequest], sink: Sink) -> None:
        sem = asyncio.Semaphore(self.cfg.concurrency)
        async with openai.AsyncOpenAI(**self._client_kwargs) as client:

            async def one(i: int, req: ChainRequest) -> None:
                async with sem:
                    sink(i, await self._call(client, req))

            await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))

    async def _call(self, client: openai.AsyncOpenAI, req: ChainRequest) -> Outcome:
        body = self.body(req)
        retries = self.cfg.max_retries
        reason = ""
        for attempt in range(retries + 1):
            if attempt:
                self.stats["retries"] += 1
                await asyncio.sleep(backoff(attempt - 1, self.cfg.backoff_base_s, self.cfg.backoff_max_s, self._rng))
            try:
                raw = await client.chat.completions.with_raw_response.create(**body)
            except openai.APIStatusError as exc:
                self._count(retries if exc.status_code in _RETRY_STATUS or exc.status_code >= 500 else 0)
                return _status_failure(exc, retries)
            except openai.APIConnectionError as exc:  # timeouts included; the client retried them all
                self._count(retries)
                return Failure(f"{retries + 1} attempts failed; last: {type(exc).__name__}: {exc}"[:300],
                               retryable=True)
            self._count(raw.retries_taken)
            try:
                resp = raw.parse()
            except (ValueError, openai.APIResponseValidationError) as exc:  # a body that is not a completion
                reason = f"invalid reply: {type(exc).__name__}: {exc}"[:300]
                self.stats["invalid reply"] += 1
                continue
            text = resp.choices[0].message.content if resp.choices else None
            if text is None:
                reason = "empty reply (no message content)"
                self.stats["empty reply"] += 1
                continue
            usage = resp.usage
            return Completion(text, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
                              first_token_logprobs(resp.choices[0].model_dump().get("logprobs")))
        return Failure(f"{retries + 1} replies were empty or invalid; last: {reason}", retryable=True)

    def _count(self, client_retries: int) -> None:
        """Record one request the client made `client_retries` retries for."""
        self.stats["calls"] += 1 + client_retries
        self.stats["retries"] += client_retries

    # -- Batch API ---------------------------------------------------------------------------

    def _batch(self, requests: Sequence[ChainRequest], sink: Sink) -> None:
        cache = self.cache or ChainCache(self.cfg.cache_path)
        client = openai.OpenAI(**self._client_kwargs)
        bodies = [self.body(r) for r in requests]
        by_cid = {_digest(json.dumps(b, sort_keys=True)): i for i, b in enumerate(bodies)}
        done: set[int] = set()
        errors: dict[int, str] = {}

        def harvest(batch: Any) -> None:
            for cid, outcome in self._results(client, batch):
                i = by_cid.get(cid)
                if i is None or i in done:
                    continue
                if isinstance(outcome, Completion) or not outcome.retryable:
                    done.add(i)
                    sink(i, outcome)
                else:
                    errors[i] = outcome.reason

        for bid in cache.open_batches():  # submitted by an earlier, interrupted run
            harvest(self._wait(client, bid))
            cache.record_batch(bid, "", status="collected")
        for round_ in range(self.cfg.batch_resubmits + 1):
            todo = [i for i in range(len(bodies)) if i not in done]
            if not todo:
                break
            if round_:
                log(f"generate: resubmitting {len(todo)} failed batch lines (round {round_})")
            lines = "".join(
                json.dumps(
                    {
                        "custom_id": _digest(json.dumps(bodies[i], sort_keys=True)),
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": bodies[i],
                    },
                    sort_keys=True,
                )
                + "\n"
                for i in todo
            )
            input_hash = _digest(lines)
            bid = self._find_remote(client, input_hash) or self._submit(client, lines, input_hash)
            cache.record_batch(bid, input_hash)
            harvest(self._wait(client, bid))
            cache.record_batch(bid, input_hash, status="collected")
        for i in range(len(bodies)):
            if i not in done:
                sink(
                    i,
                    Failure(
                        f"batch: no result after {self.cfg.batch_resubmits + 1} submissions; "
                        f"last: {errors.get(i, 'missing from output')}",
                        retryable=True,
                    ),
                )

    def _find_remote(self, client: openai.OpenAI, input_hash: str) -> str | None:
        """A batch for this exact input submitted earlier but never recorded (the run was killed)."""
        for n, b in enumerate(client.batches.list(limit=100)):
            if n >= 100:
                break
            if (b.metadata or {}).get("faco_input") == input_hash and b.status not in {
                "failed",
                "cancelled",
                "expired",
            }:
                return str(b.id)
        return None

    def _submit(self, client: openai.OpenAI, lines: str, input_hash: str) -> str:
        f = client.files.create(file=("faco-batch.jsonl", lines.encode()), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"faco_input": input_hash},
        )
        self.stats["batches"] += 1
        log(f"generate: submitted batch {b.id} ({lines.count(chr(10))} requests)")
        return str(b.id)

    def _wait(self, client: openai.OpenAI, batch_id: str) -> Any:
        while True:
            b = client.batches.retrieve(batch_id)
            if b.status in _DONE:
                return b
            time.sleep(self.cfg.batch_poll_s)

    def _results(self, client: openai.OpenAI, batch: Any) -> list[tuple[str, Outcome]]:
        out: list[tuple[str, Outcome]] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for line in client.files.content(file_id).text.splitlines():
                if line.strip():
                    row = json.loads(line)
                    out.append((row.get("custom_id", ""), _line_outcome(row)))
        return out


def _line_outcome(row: dict[str, Any]) -> Outcome:
    resp = row.get("response") or {}
    status = resp.get("status_code")
    if status == 200:
        body = resp.get("body") or {}
        choices = body.get("choices") or []
        text = choices[0].get("message", {}).get("content") if choices else None
        if text is None:
            return Failure("empty reply (no message content)")
        usage = body.get("usage") or {}
        return Completion(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                          first_token_logprobs(choices[0].get("logprobs")))
    err = row.get("error") or (resp.get("body") or {}).get("error") or {}
    reason = f"batch line: HTTP {status}: {err.get('message', err.get('code', 'error'))}"
    return Failure(reason, retryable=status is None or status in _RETRY_STATUS or status >= 500)


def first_token_logprobs(logprobs: dict[str, Any] | None) -> Logprobs | None:
    """The first generated token's top alternatives `(token, logprob)` from a choice's `logprobs`
    (`{"content": [{"top_logprobs": [{"token", "logprob"}, ...]}, ...]}`); None when the server sent none."""
    content = (logprobs or {}).get("content") or []
    if not content or not content[0].get("top_logprobs"):
        return None
    return tuple((str(t["token"]), float(t["logprob"])) for t in content[0]["top_logprobs"])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
