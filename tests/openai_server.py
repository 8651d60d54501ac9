"""A local HTTP server speaking the OpenAI wire protocol (chat completions, files, batches).

The only test double the project allows: the real `openai` client talks to it over TCP.
It injects faults (429 with Retry-After, 500, replies slower than the client's timeout,
malformed JSON, truncated bodies) at a seeded rate, and counts every request and every *paid*
completion (a valid 200 reply written in full), keyed by prompt and seed, so tests can prove
that nothing was lost and nothing was paid for twice. A request with `logprobs`/`top_logprobs` gets
the first token's alternatives from the server's `logprober` (without one it is a server that sends
no log-probabilities: `"logprobs": null`, as many OpenAI-compatible servers do).

Run it standalone (for benchmarks) with ``python tests/openai_server.py --latency 0.5 --fault-rate 0.05``:
it prints ``port <n>`` and serves ``GET /_stats`` with its counters.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("429", "500", "slow", "malformed", "truncated")

# responder(prompt, seed, n) -> reply text; n counts earlier paid replies to the same prompt.
Responder = Callable[[str, int | None, int], str]
# logprober(prompt) -> the first token's alternatives [(token, logprob), ...], most likely first, or None
Logprober = Callable[[str], list[tuple[str, float]] | None]

_ANSWER = re.compile(r"### (?:Incorrect|Ground-truth) Answer ###\n(.*?)\n###", re.S)


def default_responder(prompt: str, seed: int | None, n: int) -> str:
    """A short chain arguing for the answer named in a FACO prompt."""
    m = _ANSWER.search(prompt)
    answer = m.group(1).strip() if m else "unknown"
    return (
        f"Step 1: Consider the question.\nStep 2: It points to {answer}.\nTherefore the answer is {answer}."
    )


def request_key(body: dict[str, Any]) -> str:
    """What makes two chat requests the same paid work: messages, model and seed."""
    raw = json.dumps([body.get("model"), body.get("messages"), body.get("seed")], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class FakeOpenAI(ThreadingHTTPServer):
    """The server; counters are guarded by `lock`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self,
        latency_s: float = 0.0,
        fault_rate: float = 0.0,
        faults: tuple[str, ...] = FAULTS,
        retry_after_s: float = 0.2,
        slow_s: float = 5.0,
        seed: int = 0,
        responder: Responder = default_responder,
        batch_fail_every: int = 0,
        logprober: Logprober | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency_s, self.fault_rate, self.faults = latency_s, fault_rate, faults
        self.retry_after_s, self.slow_s = retry_after_s, slow_s
        self.rng = random.Random(seed)
        self.responder = responder
        self.batch_fail_every = batch_fail_every
        self.logprober = logprober  # None: a server without logprobs (`"logprobs": null` even when asked)
        self.logprob_asks: list[int] = []  # top_logprobs of every request that asked for logprobs
        self.lock = threading.Lock()
        self.calls = 0
        self.injected: Counter[str] = Counter()
        self.paid: Counter[str] = Counter()
        self.by_prompt: Counter[str] = Counter()
        self.tokens_in = 0
        self.tokens_out = 0
        self.pay_limit: int | None = None  # after this many paid replies, hang every new request
        self.hanging = 0
        self.reject_prompts: set[str] = set()  # chat requests containing one of these get HTTP 400
        self.auth: list[str] = []
        self.release = threading.Event()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_creates = 0
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def duplicates(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.paid.values() if n > 1)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": self.calls,
                "paid": sum(self.paid.values()),
                "unique_paid": len(self.paid),
                "duplicates": sum(n - 1 for n in self.paid.values() if n > 1),
                "injected": dict(self.injected),
                "batch_creates": self.batch_creates,
            }

    def pick_fault(self) -> str | None:
        with self.lock:
            if self.fault_rate and self.rng.random() < self.fault_rate:
                fault = self.rng.choice(self.faults)
                self.injected[fault] += 1
                return fault
        return None

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion for `body`, counted as paid."""
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        key = request_key(body)
        with self.lock:
            n = self.by_prompt[prompt]
            self.by_prompt[prompt] += 1
        text = self.responder(prompt, body.get("seed"), n)
        usage = {"prompt_tokens": len(prompt) // 4 + 1, "completion_tokens": len(text) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        with self.lock:
            self.paid[key] += 1
            self.tokens_in += usage["prompt_tokens"]
            self.tokens_out += usage["completion_tokens"]
            if body.get("logprobs"):
                self.logprob_asks.append(int(body.get("top_logprobs") or 0))
        return {
            "id": f"chatcmpl-{key}-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "usage": usage,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": self._logprobs(prompt, body),
                    "message": {"role": "assistant", "content": text},
                }
            ],
        }

    def _logprobs(self, prompt: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The choice's `logprobs` as OpenAI sends them: the first token and its `top_logprobs` alternatives."""
        alternatives = self.logprober(prompt) if self.logprober and body.get("logprobs") else None
        if not alternatives:
            return None
        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives]
        top = top[: int(body.get("top_logprobs") or 0)]
        first = top[0] if top else {"token": alternatives[0][0], "logprob": alternatives[0][1], "bytes": None}
        return {"content": [{**first, "top_logprobs": top}], "refusal": None}

    def run_batch(self, batch: dict[str, Any]) -> None:
        """Process a batch's input file into output and error files (every Nth line fails)."""
        lines = [
            json.loads(line) for line in self.files[batch["input_file_id"]].decode().splitlines() if line
        ]
        out, err = [], []
        for i, line in enumerate(lines, 1):
            if self.batch_fail_every and i % self.batch_fail_every == 0:
                err.append(
                    {
                        "id": f"err-{i}",
                        "custom_id": line["custom_id"],
                        "response": None,
                        "error": {"code": "server_error", "message": "injected"},
                    }
                )
                continue
            body = self.complete(line["body"])
            out.append(
                {
                    "id": f"res-{i}",
                    "custom_id": line["custom_id"],
                    "error": None,
                    "response": {"status_code": 200, "request_id": f"req-{i}", "body": body},
                }
            )
        batch["output_file_id"] = self._store("".join(json.dumps(r) + "\n" for r in out).encode())
        batch["error_file_id"] = (
            self._store("".join(json.dumps(r) + "\n" for r in err).encode()) if err else None
        )
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())

    def _store(self, data: bytes) -> str:
        with self.lock:
            fid = f"file-{len(self.files) + 1}"
            self.files[fid] = data
        return fid


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self) -> None:
        srv = self.server
        path = self.path.split("?")[0]
        if path == "/_stats":
            self._send(200, srv.stats())
        elif m := re.fullmatch(r"/v1/files/([\w-]+)/content", path):
            self._send(200, None, raw=srv.files[m.group(1)])
        elif m := re.fullmatch(r"/v1/batches/([\w-]+)", path):
            batch = srv.batches[m.group(1)]
            if batch["status"] == "validating":
                batch["status"] = "in_progress"
            elif batch["status"] == "in_progress":
                srv.run_batch(batch)
            self._send(200, batch)
        elif path == "/v1/batches":
            data = list(reversed(srv.batches.values()))
            self._send(
                200,
                {
                    "object": "list",
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                },
            )
        else:
            self._send(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        srv = self.server
        path = self.path.split("?")[0]
        raw = self._body()
        with srv.lock:
            srv.calls += 1
        if path == "/v1/chat/completions":
            self._chat(json.loads(raw))
        elif path == "/v1/files":
            msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw
            )
            parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
            data = parts["file"].get_payload(decode=True)
            fid = srv._store(data)
            self._send(
                200,
                {
                    "id": fid,
                    "object": "file",
                    "bytes": len(data),
                    "created_at": int(time.time()),
                    "filename": "input.jsonl",
                    "purpose": "batch",
                    "status": "processed",
                },
            )
        elif path == "/v1/batches":
            body = json.loads(raw)
            with srv.lock:
                srv.batch_creates += 1
                bid = f"batch_{len(srv.batches) + 1}"
            srv.batches[bid] = {
                "id": bid,
                "object": "batch",
                "endpoint": body["endpoint"],
                "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"],
                "status": "validating",
                "created_at": int(time.time()),
                "metadata": body.get("metadata"),
                "output_file_id": None,
                "error_file_id": None,
                "errors": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
            self._send(200, srv.batches[bid])
        else:
            self._send(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    def _chat(self, body: dict[str, Any]) -> None:
        srv = self.server
        with srv.lock:
            auth = self.headers.get("Authorization", "")
            if auth not in srv.auth:
                srv.auth.append(auth)
        text = json.dumps(body.get("messages"), ensure_ascii=False)
        if any(json.dumps(p, ensure_ascii=False)[1:-1] in text for p in srv.reject_prompts):
            self._send(400, {"error": {"message": "invalid prompt", "type": "invalid_request_error"}})
            return
        with srv.lock:
            hang = srv.pay_limit is not None and sum(srv.paid.values()) >= srv.pay_limit
        if hang:
            with srv.lock:
                srv.hanging += 1
            srv.release.wait()
            self.close_connection = True
            return
        fault = srv.pick_fault()
        if srv.latency_s:
            time.sleep(srv.latency_s)
        if fault == "429":
            self._send(
                429,
                {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                {"Retry-After": str(srv.retry_after_s)},
            )
        elif fault == "500":
            self._send(500, {"error": {"message": "injected", "type": "server_error"}})
        elif fault == "slow":
            time.sleep(srv.slow_s)
            self.close_connection = True
        elif fault == "malformed":
            self._send(200, None, raw=b'{"id": "chatcmpl-x", "choices": [')
        elif fault == "truncated":
            data = json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) + 100))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            self._send(200, srv.complete(body))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--retry-after", type=float, default=0.2)
    ap.add_argument("--slow", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    srv = FakeOpenAI(
        latency_s=args.latency,
        fault_rate=args.fault_rate,
        retry_after_s=args.retry_after,
        slow_s=args.slow,
        seed=args.seed,
    )
    print(f"port {srv.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
