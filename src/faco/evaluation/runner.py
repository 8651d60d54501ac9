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
from faco.evaluation import formats, heldout, results, sandbox, trained
from faco.evaluation.cache import Cache, CacheKey, settings, tree_digest
from faco.evaluation.probes import jsonable, prompt, question
from faco.evaluation.suite import Benchmark, suite
from faco.evaluation.tasks import HUB_DIR, OFFLINE_DIR, render_offline, task_name, uses_twin
from faco.paths import data_dir
from faco.progress import log, track
from faco.registry import ProbeEntry, probe_sets

CHECKPOINTS = "checkpoints"
#: spec fields a cached result does not depend on beyond its task: the format picks the task, and the rendered
#: trained-format task (in its key's task_version) says whether it asks for likelihoods
_NOT_IN_KEY = {"format", "likelihood"}
_EPOCH = re.compile(r"epoch_(\d+)")
_TRAINED_CODE = [Path(trained.__file__), Path(formats.__file__), Path(heldout.__file__).with_name("heldout_task.py")]


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


def _own(bench: Benchmark) -> bool:
    """Whether faco renders the benchmark's task itself in the trained format (`heldout`, `<name>@trained`)."""
    return bench.name == heldout.BENCHMARK or bench.of is not None


class Evaluator:
    """Scores checkpoints on the configured benchmarks, through the cache.

    `ingest` (needed when `heldout` is configured) is the artifact whose held-out share is asked; it
    and every `format: trained` benchmark are asked in the chat format of the tokenizer in
    `tokenizer_dir` (without one, as for `prefetch`, they are not rendered).
    """

    def __init__(self, study: Study, tasks_dir: Path, ingest: Path | None = None,
                 tokenizer_dir: Path | None = None) -> None:
        self.cfg = study.evaluate
        self.specs = [(spec, bench) for spec in self.cfg.benchmarks for bench in formats.asked(spec)]
        self.cache = Cache(self.cfg.cache)
        self.tasks_dir = tasks_dir
        self.data = data_dir(study.ingest.data_dir)
        self.chance: dict[str, dict[str, list[float]]] = {}  # trained-format benchmark -> part -> 1/options
        sources = [suite()[spec.name] for spec in self.cfg.benchmarks if spec.name != heldout.BENCHMARK]
        twins = [b for b in sources if uses_twin(b, self.cfg.offline)]
        overrides = {task_name(b, True): {"repeats": s.repeats} for s, b in self.specs
                     if s.repeats is not None and b in twins}
        render_offline(twins, self.data, tasks_dir, overrides)
        self._manager: Any = None
        if tokenizer_dir is not None:
            self._render_trained(ingest, tokenizer_dir)
        self._versions = self._settings_versions(twins)

    def _render_trained(self, ingest: Path | None, tokenizer_dir: Path) -> None:
        """Write `heldout` (from `ingest`) and every `<name>@trained` task (from its benchmark's documents)."""
        own = [(spec, b) for spec, b in self.specs if _own(b)]
        if not own:
            return
        from lm_eval.tasks import get_task_dict
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        for spec, bench in own:
            if bench.name == heldout.BENCHMARK and ingest is not None:
                self.chance[bench.name] = heldout.render(ingest, tok, self.tasks_dir, spec.max_gen_toks,
                                                         spec.likelihood)
            elif bench.of is not None:
                base = task_name(suite()[bench.of], self.cfg.offline)
                with offline_env(self.cfg.offline):
                    leaves = leaf_tasks(get_task_dict([base], self.manager()))
                self.chance[bench.name] = formats.render(bench, leaves, base, tok, self.tasks_dir, spec)
        self._manager = None  # index the include path again, with the tasks just written

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
        for name in self.chance:
            task = task_name(suite()[name], self.cfg.offline)
            versions[task] = _text_digest(list(self.tasks_dir.glob(f"{task}*")))
        versions["trained_code"] = _text_digest(_TRAINED_CODE)
        return versions

    def fetched_tasks(self) -> list[str]:
        """The lm-eval task of every configured benchmark whose data is fetched, in config order: a trained
        format asks its benchmark's documents; `heldout` asks the study's own data."""
        return [task_name(suite()[s.name], self.cfg.offline) for s in self.cfg.benchmarks
                if s.name != heldout.BENCHMARK]

    def manager(self) -> Any:
        from lm_eval.tasks import TaskManager

        if self._manager is None:
            self._manager = (TaskManager(include_path=str(self.tasks_dir), include_defaults=False)
                             if self.cfg.offline else TaskManager(include_path=str(self.tasks_dir)))
        return self._manager

    def _key(self, ckpt: Checkpoint, spec: BenchmarkSpec, bench: Benchmark, task: str, shots: int) -> CacheKey:
        return CacheKey(
            kind="score", weights=ckpt.digest, task=task,
            settings=settings(shots=shots, spec=spec.model_dump(mode="json", exclude=_NOT_IN_KEY), seed=self.cfg.seed,
                              backend=self.cfg.backend),
            task_version=self._versions.get(task), lm_eval=self._versions["lm_eval"],
            helpers=(self._versions["trained_code"] if _own(bench)
                     else self._versions["helpers"] if uses_twin(bench, self.cfg.offline) else None),
            hub=self._versions["hub"] if (HUB_DIR / f"{task}.yaml").is_file() else None,
        )

    def score(self, ckpt: Checkpoint, label: str) -> tuple[dict[str, Any], dict[str, dict[str, results.Rows]]]:
        """({bench: entry}, {bench: samples}) for one checkpoint, each benchmark from the cache when present."""
        scores: dict[str, Any] = {}
        samples: dict[str, dict[str, results.Rows]] = {}
        for spec, bench in track(self.specs, f"evaluate {label}"):
            if _own(bench) and bench.name not in self.chance:
                raise FacoError(f"benchmark {bench.name!r} needs the model's tokenizer"
                                + (" and the ingest artifact" if bench.name == heldout.BENCHMARK else ""))
            task = task_name(bench, self.cfg.offline)
            shots = bench.shots if spec.shots is None or _own(bench) else spec.shots
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
        if _own(bench):
            _trained_counts(entry, self.chance[bench.name], spec.limit)
        return {"entry": entry, "samples": results.samples(res, task, bench)}

    def probes(self, ckpt: Checkpoint, probes: list[ProbeEntry]) -> list[dict[str, Any]]:
        """Greedy answers to the probes, in the model's chat format where it has one."""
        n = self.cfg.probe_max_new_tokens
        key = CacheKey(kind="probes", weights=ckpt.digest,
                       task=hashlib.sha256(json.dumps(jsonable(probes)).encode()).hexdigest(),
                       settings=settings(max_new_tokens=n, backend=self.cfg.backend))
        cached = self.cache.get(key)
        if cached is not None:
            return list(cached)
        from lm_eval.api.instance import Instance

        lm = ckpt.lm(self.cfg)
        prompts = [prompt(lm.tokenizer, q) for q in probes]
        until = [lm.tokenizer.eos_token] if lm.tokenizer.eos_token else []
        requests = [Instance(request_type="generate_until", doc={"question": question(q)}, idx=0,
                             arguments=(p, {"until": until, "max_gen_toks": n, "do_sample": False}))
                    for q, p in zip(probes, prompts, strict=True)]
        answers = lm.generate_until(requests)
        set_of = {q: name for name, qs in probe_sets().items() for q in qs}
        rows = [{"id": i, "set": set_of.get(q, "custom"), "question": question(q), "prompt": p, "answer": a,
                 "max_new_tokens": n, **({} if isinstance(q, str) else {"system": q.system})}
                for i, (q, p, a) in enumerate(zip(probes, prompts, answers, strict=True))]
        self.cache.put(key, rows)
        return rows


def _trained_counts(entry: dict[str, Any], chance: dict[str, list[float]], limit: int | None) -> None:
    """Add a trained-format entry's chance level (mean 1/options of the items asked) and unparseable-reply count,
    per part too (`chance`: part -> per-document levels; part "" for a single task)."""
    parts = entry.get("subtasks") or {"": entry}
    pooled: list[float] = []
    for name, sub in parts.items():
        levels = chance[name][:limit]
        sub["chance"] = sum(levels) / len(levels)
        sub["unparsed"] = round((sub["metrics"]["unparsed"]["value"] or 0.0) * (sub["n"] or 0))
        pooled.extend(levels)
    entry["chance"] = sum(pooled) / len(pooled) if pooled else None
    entry["unparsed"] = sum(s["unparsed"] for s in parts.values())


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
