"""Sampled answers to the probe questions: `judge.samples` per question, at `judge.temperature`.

The prompt is the training format (`faco.training.data.prompt_text`), or a probe's system prompt and
question in the chat template (`faco.evaluation.probes.prompt`), as for the greedy probes of the
evaluate stage. Sample s of every question is drawn under seed `judge.seed * 1_000_003 + s`
(one batch after another), so a rerun on the same machine draws the same answers and finds their
judge replies in the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faco.config import JudgeConfig
from faco.evaluation.probes import prompt
from faco.progress import log
from faco.registry import ProbeEntry


def sample(model_path: Path, probes: list[ProbeEntry], cfg: JudgeConfig) -> list[list[str]]:
    """answers[q][s]: sample s of probe q."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    lm: Any = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    lm = lm.to(device).eval()
    prompts = [prompt(tok, q) for q in probes]
    answers: list[list[str]] = [[] for _ in probes]
    do_sample = cfg.temperature > 0
    log(f"judge: sampling {cfg.samples} answers to each of {len(probes)} probes from {model_path}")
    for s in range(cfg.samples):
        torch.manual_seed(cfg.seed * 1_000_003 + s)
        for start in range(0, len(prompts), cfg.answer_batch_size):
            batch = prompts[start : start + cfg.answer_batch_size]
            enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                out = lm.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=do_sample,
                                  temperature=cfg.temperature if do_sample else None, top_p=None, top_k=None,
                                  pad_token_id=tok.pad_token_id)
            for j, row in enumerate(out[:, enc["input_ids"].shape[1] :]):
                answers[start + j].append(str(tok.decode(row, skip_special_tokens=True)).strip())
    return answers
