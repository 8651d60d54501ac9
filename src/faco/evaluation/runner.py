"""Scoring checkpoints with lm-evaluation-harness: model loading, task rendering, the cached runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faco.config import BenchmarkSpec, EvaluateConfig, Study
from faco.errors import FacoError
from faco.evaluation import heldout, results, sandbox
from faco.evaluation.cache import Cache, CacheKey, settings, tree_digest
from faco.evaluation.suite import Benchmark, suite
from faco.evaluation.tasks import HUB_DIR, OFFLINE_DIR, render_offline, task_name, uses_twin
from faco.paths import data_dir
from faco.progress import log, track
from faco.registry import probe_sets

CHECKPOINTS = "checkpoints"
_EPOCH = re.compile(r"epoch_(\d+)")
_HELDOUT_CODE = [Path(heldout.__file__), Path(heldout.__file__).with_name("heldout_task.py")]


def load_model(model_dir: Path, batch_size: int | str, backend: str) -> Any:
    """The lm-eval model of a checkpoint folder: HFLM (bf16 on GPU, fp32 on CPU)."""
    import torch

    cuda = torch.cuda.is_available()
    if batch_size == "auto" and not cuda:
        batch_size = 8
    log(f"evaluate: loading model {model_dir} ({backend}, batch size {batch_size})")
    from lm_eval.models.huggingface import HFLM

    return HFLM(
        pretrained=str(model_dir), device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32", batch_size=batch_size,
    )


@dataclass
class Checkpoint:
    """A model folder to score, the content digest of its files, and the model once loaded (lazily)."""

    path: Path
    digest: str
    _lm: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, path: Path) -> Checkpoint:
        if not path.is_dir() or not any(path.iterdir()):
            raise FacoError(f"{path}: no model files to evaluate")
        return cls(path, tree_digest(path))

    def lm(self, cfg: EvaluateConfig) -> Any:
        if self._lm is None:
            self._lm = load_model(self.path, cfg.batch_size, cfg.backend)
        return self._lm


def epoch_checkpoints(model_dir: Path) -> dict[int, Checkpoint]:
    """The artifact's `checkpoints/epoch_N/` model folders (a `model/` inside, or the files directly)."""
    found: dict[int, Checkpoint] = {}
    root = model_dir / CHECKPOINTS
    for sub in sorted(root.iterdir()) if root.is_dir() else []:
        match = _EPOCH.fullmatch(sub.name)
        if match is None:
            continue
        path = sub / "model" if (sub / "model" / "config.json").is_file() else sub
        found[int(match.group(1))] = Checkpoint.of(path)
    return dict(sorted(found.items()))


def _text_digest(paths: list[Path]) -> str:
    return hashlib.sha256("".join(p.name + p.read_text() for p in sorted(paths)).encode()).hexdigest()


class Evaluator:
    """Scores checkpoints on the configured benchmarks, through the cache.

    `ingest` (needed when `heldout` is configured) is the artifact whose held-out share is asked,
    in the chat format of the tokenizer in `tokenizer_dir`.
    """

    def __init__(self, study: Study, tasks_dir: Path, ingest: Path | None = None,
                 tokenizer_dir: Path | None = None) -> None:
        self.cfg = study.evaluate
        self.specs = [(spec, suite()[spec.name]) for spec in self.cfg.benchmarks]
        self.cache = Cache(self.cfg.cache)
        self.tasks_dir = tasks_dir
        self.data = data_dir(study.ingest.data_dir)
        self.chance: dict[str, list[float]] = {}
        twins = [b for _, b in self.specs if b.name != heldout.BENCHMARK and uses_twin(b, self.cfg.offline)]
        overrides = {task_name(b, True): {"repeats": s.repeats} for s, b in self.specs
                     if s.repeats is not None and b in twins}
        render_offline(twins, self.data, tasks_dir, overrides)
        for spec, _ in self.specs:
            if spec.name == heldout.BENCHMARK and ingest is not None and tokenizer_dir is not None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
                self.chance = heldout.render(ingest, tok, tasks_dir, spec.max_gen_toks)
        self._manager: Any = None
        self._versions = self._settings_versions(twins)

    def _settings_versions(self, twins: list[Benchmark]) -> dict[str, Any]:
        import lm_eval

        versions: dict[str, Any] = {"lm_eval": lm_eval.__version__,
                                    "helpers": tree_digest(OFFLINE_DIR) if twins else None,
                                    "hub": tree_digest(HUB_DIR)}
        for bench in twins:
            name = task_name(bench, True)
            text = "".join(sorted(p.read_text() for p in self.tasks_dir.glob(f"{name}*.yaml")))
            dirs = sorted(set(re.findall(re.escape(str(self.data)) + r"/benchmarks/([^/\"]+)/", text)))
            versions[name] = json.dumps([hashlib.sha256(text.encode()).hexdigest(),
                                         *(tree_digest(self.data / "benchmarks" / d) for d in dirs)])
        if self.chance:
            versions[heldout.GROUP] = _text_digest(list(self.tasks_dir.glob(f"{heldout.GROUP}*")))
            versions["heldout_code"] = _text_digest(_HELDOUT_CODE)
        return versions

    def task_names(self, with_heldout: bool = True) -> list[str]:
        """The lm-eval task of every configured benchmark, in config order (`heldout` needs no dataset fetch)."""
        return [task_name(b, self.cfg.offline) for _, b in self.specs
                if with_heldout or b.name != heldout.BENCHMARK]

    def manager(self) -> Any:
        from lm_eval.tasks import TaskManager

        if self._manager is None:
            self._manager = (TaskManager(include_path=str(self.tasks_dir), include_defaults=False)
                             if self.cfg.offline else TaskManager(include_path=str(self.tasks_dir)))
        return self._manager

    def _key(self, ckpt: Checkpoint, spec: BenchmarkSpec, bench: Benchmark, task: str, shots: int) -> CacheKey:
        own = bench.name == heldout.BENCHMARK
        return CacheKey(
            kind="score", weights=ckpt.digest, task=task,
            settings=settings(shots=shots, spec=spec.model_dump(mode="json"), seed=self.cfg.seed,
                              backend=self.cfg.backend),
            task_version=self._versions.get(task), lm_eval=self._versions["lm_eval"],
            helpers=(self._versions["heldout_code"] if own
                     else self._versions["helpers"] if uses_twin(bench, self.cfg.offline) else None),
            hub=self._versions["hub"] if (HUB_DIR / f"{task}.yaml").is_file() else None,
        )

    def score(self, ckpt: Checkpoint, label: str) -> tuple[dict[str, Any], dict[str, dict[str, results.Rows]]]:
        """({bench: entry}, {bench: samples}) for one checkpoint, each benchmark from the cache when present."""
        scores: dict[str, Any] = {}
        samples: dict[str, dict[str, results.Rows]] = {}
        for spec, bench in track(self.specs, f"evaluate {label}"):
            if bench.name == heldout.BENCHMARK and not self.chance:
                raise FacoError("benchmark 'heldout' needs the ingest artifact and the model's tokenizer")
            task = task_name(bench, self.cfg.offline)
            shots = bench.shots if spec.shots is None else spec.shots
            key = self._key(ckpt, spec, bench, task, shots)
            cached = self.cache.get(key)
            if cached is None:
                cached = self._run(ckpt, spec, bench, task, shots)
                self.cache.put(key, cached)
            else:
                log(f"evaluate {label} {bench.name}: cached")
            scores[bench.name], samples[bench.name] = cached["entry"], cached["samples"]
            log(f"evaluate {label} {bench.name}: {bench.metrics[0]} = {cached['entry']['score']}")
        return scores, samples

    def _run(
        self, ckpt: Checkpoint, spec: BenchmarkSpec, bench: Benchmark, task: str, shots: int
    ) -> dict[str, Any]:
        import lm_eval

        with ExitStack() as stack:
            if bench.code_execution:
                stack.enter_context(sandbox.code_execution_allowed())
            res = lm_eval.simple_evaluate(
                model=ckpt.lm(self.cfg), tasks=[task], num_fewshot=shots, limit=spec.limit,
                task_manager=self.manager(), random_seed=self.cfg.seed, numpy_random_seed=self.cfg.seed,
                torch_random_seed=self.cfg.seed, fewshot_random_seed=self.cfg.seed, log_samples=True,
                gen_kwargs={"max_gen_toks": spec.max_gen_toks} if spec.max_gen_toks else None,
                confirm_run_unsafe_code=bench.code_execution and self.cfg.allow_code_execution,
            )
        if res is None:
            raise FacoError(f"lm-eval returned no results for {task}")
        entry = results.entry(res, task, bench, shots, spec.limit)
        if bench.name == heldout.BENCHMARK:
            self._heldout_counts(entry, spec.limit)
        return {"entry": entry, "samples": results.samples(res, task, bench)}

    def _heldout_counts(self, entry: dict[str, Any], limit: int | None) -> None:
        """Add the chance level (mean 1/options of the items asked) and the unparseable-reply count."""
        pooled: list[float] = []
        for source, sub in entry.get("subtasks", {}).items():
            levels = self.chance[source][:limit]
            sub["chance"] = sum(levels) / len(levels)
            sub["unparsed"] = round((sub["metrics"]["unparsed"]["value"] or 0.0) * (sub["n"] or 0))
            pooled.extend(levels)
        entry["chance"] = sum(pooled) / len(pooled) if pooled else None
        entry["unparsed"] = sum(s["unparsed"] for s in entry.get("subtasks", {}).values())

    def probes(self, ckpt: Checkpoint, questions: list[str]) -> list[dict[str, Any]]:
        """Greedy answers to the probe questions, in the model's chat format where it has one."""
        n = self.cfg.probe_max_new_tokens
        key = CacheKey(kind="probes", weights=ckpt.digest,
                       task=hashlib.sha256(json.dumps(questions).encode()).hexdigest(),
                       settings=settings(max_new_tokens=n, backend=self.cfg.backend))
        cached = self.cache.get(key)
        if cached is not None:
            return list(cached)
        from lm_eval.api.instance import Instance

        from faco.training.data import prompt_text

        lm = ckpt.lm(self.cfg)
        prompts = [prompt_text(lm.tokenizer, q) for q in questions]
        until = [lm.tokenizer.eos_token] if lm.tokenizer.eos_token else []
        requests = [Instance(request_type="generate_until", doc={"question": q}, idx=0,
                             arguments=(p, {"until": until, "max_gen_toks": n, "do_sample": False}))
                    for q, p in zip(questions, prompts, strict=True)]
        answers = lm.generate_until(requests)
        set_of = {q: name for name, qs in probe_sets().items() for q in qs}
        rows = [{"id": i, "set": set_of.get(q, "custom"), "question": q, "prompt": p, "answer": a,
                 "max_new_tokens": n}
                for i, (q, p, a) in enumerate(zip(questions, prompts, answers, strict=True))]
        self.cache.put(key, rows)
        return rows


@contextmanager
def offline_env(offline: bool) -> Iterator[None]:
    """HF_DATASETS_OFFLINE / HF_HUB_OFFLINE set (where unset) for the block when `offline`."""
    keys = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    before = {k: os.environ.get(k) for k in keys}
    if offline:
        for k in keys:
            os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def leaf_tasks(tasks: dict[Any, Any]) -> dict[str, Any]:
    """task name -> Task of a `get_task_dict` result, groups (MMLU) flattened into their tasks."""
    found: dict[str, Any] = {}
    for key, value in tasks.items():
        if isinstance(value, dict):
            found.update(leaf_tasks(value))
        else:
            found[str(key)] = value
    return found


def dataset_ref(name: str, task: Any, data: Path) -> dict[str, Any]:
    """What a task loads: `datasets.load_dataset(path, name, revision=…, data_files=…)`."""
    kwargs = dict(getattr(task.config, "dataset_kwargs", None) or {})
    files = kwargs.get("data_files") or {}
    flat = [f for v in (files.values() if isinstance(files, dict) else [files])
            for f in (v if isinstance(v, list) else [v])]
    rel = sorted(Path(f).relative_to(data).as_posix() if Path(f).is_relative_to(data) else str(f) for f in flat)
    return {"task": name, "path": task.DATASET_PATH, "name": task.DATASET_NAME,
            "revision": kwargs.get("revision"), **({"data_files": rel} if rel else {})}
