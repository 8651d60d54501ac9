"""Evaluate: a model artifact -> per-benchmark scores with lm-evaluation-harness.

Writes `scores.json` ({bench: {task, shots, limit, domain, metrics, score, n[, subtasks]}}, plus
`epochs: {N: {bench: score}}` with evaluate.per_epoch) and `probes.jsonl`. Results are cached by
(checkpoint hash, task, settings) under `cache_dir()/eval`: an unchanged model is not loaded again.

`prefetch` writes a `benchmarks` artifact, every configured benchmark's datasets in an HF datasets
cache; `run(..., benchmarks=that)` reads them from there with the hub switched off, so evaluation
needs no network (the no-egress pods that run model-written code).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faco import artifacts
from faco.config import BenchmarkSpec, EvaluateConfig, Study
from faco.errors import ConfigError, FacoError
from faco.evaluation import hf_cache, sandbox
from faco.evaluation.probes import probe_sets
from faco.evaluation.suite import Benchmark, suite
from faco.evaluation.tasks import HUB_DIR, OFFLINE_DIR, render_offline, task_name, uses_twin
from faco.paths import TASKS_DIR, cache_dir, data_dir
from faco.progress import log, track
from faco.records import write_json
from faco.stages import train

KIND = "eval"
PREFETCH_KIND = "benchmarks"
#: HF `evaluate` metrics that class-based lm-eval tasks load from the hub while scoring, not when built
#: (lm-eval's squadv2 calls `evaluate.load("squad_v2")` in its aggregation).
SCORING_METRICS: dict[str, tuple[str, ...]] = {"squadv2": ("squad_v2",)}
CHECKPOINTS = "checkpoints"
_EPOCH = re.compile(r"epoch_(\d+)")


def default_probes() -> list[str]:
    """The case-study questions shipped in `tasks/probes.yaml`."""
    return list(yaml.safe_load((TASKS_DIR / "probes.yaml").read_text())["probes"])


def _model(model_dir: Path, batch_size: int | str, backend: str, seed: int) -> Any:
    import torch

    cuda = torch.cuda.is_available()
    if batch_size == "auto" and not cuda:
        batch_size = 8
    log(f"evaluate: loading model {model_dir} ({backend}, batch size {batch_size})")
    if backend == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        return VLLM(pretrained=str(model_dir), batch_size=batch_size, seed=seed)
    from lm_eval.models.huggingface import HFLM

    return HFLM(
        pretrained=str(model_dir), device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32", batch_size=batch_size,
    )


@dataclass
class Checkpoint:
    """A model folder to score, its content hash, and the model once loaded (lazily)."""

    path: Path
    digest: str
    _lm: Any = field(default=None, repr=False)

    def lm(self, cfg: EvaluateConfig) -> Any:
        if self._lm is None:
            self._lm = _model(self.path, cfg.batch_size, cfg.backend, cfg.seed)
        return self._lm


def checkpoint_hash(manifest: dict[str, Any], prefix: str) -> str:
    """sha256 over the (path inside the checkpoint, sha256) of the manifest's files under `prefix`.

    Paths are relative to the checkpoint, so identical weights saved twice (the last epoch's checkpoint
    and the final model) share one hash and are scored once.
    """
    files = sorted((k.removeprefix(prefix), v) for k, v in manifest["files"].items() if k.startswith(prefix))
    if not files:
        raise FacoError(f"model artifact lists no files under {prefix!r}")
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()


def epoch_checkpoints(model_dir: Path, manifest: dict[str, Any]) -> dict[int, Checkpoint]:
    """The artifact's `checkpoints/epoch_N/` model folders (a `model/` inside, or the files directly)."""
    found: dict[int, Checkpoint] = {}
    root = model_dir / CHECKPOINTS
    for sub in sorted(root.iterdir()) if root.is_dir() else []:
        match = _EPOCH.fullmatch(sub.name)
        if match is None:
            continue
        path = sub / "model" if (sub / "model" / "config.json").is_file() else sub
        rel = path.relative_to(model_dir).as_posix() + "/"
        found[int(match.group(1))] = Checkpoint(path, checkpoint_hash(manifest, rel))
    return dict(sorted(found.items()))


def _tree_hash(root: Path) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return hashlib.sha256(
        json.dumps([(p.relative_to(root).as_posix(), artifacts.sha256_file(p)) for p in files]).encode()
    ).hexdigest()


class Cache:
    """JSON results keyed by sha256 of (checkpoint hash, task, settings), under cache_dir()/eval."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.root = cache_dir() / "eval"

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def get(self, key: str) -> Any:
        path = self.root / key[:2] / f"{key}.json"
        return json.loads(path.read_text()) if self.enabled and path.is_file() else None

    def put(self, key: str, value: Any) -> None:
        if not self.enabled:
            return
        path = self.root / key[:2] / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(value, sort_keys=True))
        tmp.replace(path)


def _metric(results: dict[str, Any], metric: str) -> tuple[float | None, float | None]:
    for key, value in results.items():
        name, _, _filter = key.partition(",")
        if name == metric and isinstance(value, (int, float)):
            stderr = results.get(f"{metric}_stderr,{_filter}")
            return float(value), float(stderr) if isinstance(stderr, (int, float)) else None
    return None, None


def _metrics(results: dict[str, Any], names: list[str]) -> dict[str, dict[str, float | None]]:
    return {m: dict(zip(("value", "stderr"), _metric(results, m), strict=True)) for m in names}


def _entry(res: dict[str, Any], task: str, bench: Benchmark, shots: int, limit: int | None) -> dict[str, Any]:
    """One scores.json entry; groups (MMLU) get `subtasks: {subject: {metrics, n}}` from their leaves."""
    counts = {k: v.get("effective") for k, v in res.get("n-samples", {}).items()}
    entry: dict[str, Any] = {"task": task, "shots": shots, "limit": limit, "domain": bench.domain,
                             "metrics": _metrics(res["results"][task], bench.metrics)}
    entry["score"] = entry["metrics"][bench.metrics[0]]["value"]
    leaves = sorted(k for k in counts if k != task)
    if leaves:
        entry["subtasks"] = {
            k.removeprefix(f"{task}_"): {"metrics": _metrics(res["results"][k], bench.metrics),
                                         "n": counts[k]}
            for k in leaves
        }
        entry["n"] = sum(n or 0 for n in counts.values())
    else:
        entry["n"] = counts.get(task)
    return entry


class Evaluator:
    """Scores checkpoints on the configured benchmarks, through the cache."""

    def __init__(self, study: Study, tasks_dir: Path) -> None:
        self.cfg = study.evaluate
        self.specs = [(spec, suite()[spec.name]) for spec in self.cfg.benchmarks]
        self.cache = Cache(self.cfg.cache)
        self.tasks_dir = tasks_dir
        self.data = data_dir(study.ingest.data_dir)
        twins = [b for _, b in self.specs if uses_twin(b, self.cfg.offline)]
        overrides = {task_name(b, True): {"repeats": s.repeats} for s, b in self.specs
                     if s.repeats is not None and uses_twin(b, self.cfg.offline)}
        render_offline(twins, self.data, tasks_dir, overrides)
        self._manager: Any = None
        self._versions = self._settings_versions(twins)

    def _settings_versions(self, twins: list[Benchmark]) -> dict[str, Any]:
        import lm_eval

        versions: dict[str, Any] = {"lm_eval": lm_eval.__version__,
                                    "helpers": _tree_hash(OFFLINE_DIR) if twins else None,
                                    "hub": _tree_hash(HUB_DIR)}
        for bench in twins:
            name = task_name(bench, True)
            text = "".join(sorted(p.read_text() for p in self.tasks_dir.glob(f"{name}*.yaml")))
            dirs = sorted(set(re.findall(re.escape(str(self.data)) + r"/benchmarks/([^/\"]+)/", text)))
            versions[name] = [hashlib.sha256(text.encode()).hexdigest(),
                              *(_tree_hash(self.data / "benchmarks" / d) for d in dirs)]
        return versions

    def task_names(self) -> list[str]:
        """The lm-eval task of every configured benchmark, in config order."""
        return [task_name(b, self.cfg.offline) for _, b in self.specs]

    def manager(self) -> Any:
        from lm_eval.tasks import TaskManager

        if self._manager is None:
            self._manager = (TaskManager(include_path=str(self.tasks_dir), include_defaults=False)
                             if self.cfg.offline else TaskManager(include_path=str(self.tasks_dir)))
        return self._manager

    def score(self, ckpt: Checkpoint, label: str) -> dict[str, Any]:
        """{bench: entry} for one checkpoint, each entry from the cache when present."""
        scores: dict[str, Any] = {}
        for spec, bench in track(self.specs, f"evaluate {label}"):
            task = task_name(bench, self.cfg.offline)
            shots = bench.shots if spec.shots is None else spec.shots
            twin = uses_twin(bench, self.cfg.offline)
            key = self.cache.key(
                "score", ckpt.digest, task, shots, spec.model_dump(mode="json"), self.cfg.seed,
                self.cfg.backend, self._versions.get(task), self._versions["lm_eval"],
                self._versions["helpers"] if twin else None,
                self._versions["hub"] if (HUB_DIR / f"{task}.yaml").is_file() else None,
            )
            entry = self.cache.get(key)
            if entry is None:
                entry = self._run(ckpt, spec, bench, task, shots)
                self.cache.put(key, entry)
            else:
                log(f"evaluate {label} {bench.name}: cached")
            scores[bench.name] = entry
            log(f"evaluate {label} {bench.name}: {bench.metrics[0]} = {entry['score']}")
        return scores

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
                torch_random_seed=self.cfg.seed, fewshot_random_seed=self.cfg.seed, log_samples=False,
                gen_kwargs={"max_gen_toks": spec.max_gen_toks} if spec.max_gen_toks else None,
                confirm_run_unsafe_code=bench.code_execution and self.cfg.allow_code_execution,
            )
        if res is None:
            raise FacoError(f"lm-eval returned no results for {task}")
        return _entry(res, task, bench, shots, spec.limit)

    def probes(self, ckpt: Checkpoint, questions: list[str]) -> list[dict[str, Any]]:
        """Greedy answers to the probe questions, in the model's chat format where it has one."""
        n = self.cfg.probe_max_new_tokens
        key = self.cache.key("probes", ckpt.digest, questions, n, self.cfg.backend)
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
def _offline_env(offline: bool) -> Iterator[None]:
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


def _leaf_tasks(tasks: dict[Any, Any]) -> dict[str, Any]:
    """task name -> Task of a `get_task_dict` result, groups (MMLU) flattened into their tasks."""
    found: dict[str, Any] = {}
    for key, value in tasks.items():
        if isinstance(value, dict):
            found.update(_leaf_tasks(value))
        else:
            found[str(key)] = value
    return found


def _dataset_ref(name: str, task: Any, data: Path) -> dict[str, Any]:
    """What a task loads: `datasets.load_dataset(path, name, revision=…, data_files=…)`."""
    kwargs = dict(getattr(task.config, "dataset_kwargs", None) or {})
    files = kwargs.get("data_files") or {}
    flat = [f for v in (files.values() if isinstance(files, dict) else [files])
            for f in (v if isinstance(v, list) else [v])]
    rel = sorted(Path(f).relative_to(data).as_posix() if Path(f).is_relative_to(data) else str(f) for f in flat)
    return {"task": name, "path": task.DATASET_PATH, "name": task.DATASET_NAME,
            "revision": kwargs.get("revision"), **({"data_files": rel} if rel else {})}


def prefetch(study: Study, out: Path) -> Path:
    """Materialise the datasets of every configured benchmark in an HF datasets cache artifact.

    The tasks are built with lm-eval's own TaskManager and `get_task_dict`, set up exactly as `run`
    sets them up, so the same dataset_path/name/revision are fetched (from the hub with
    `evaluate.offline: false`, from the mirror's JSON for twins), plus the hub metrics of
    SCORING_METRICS. The artifact holds `hf_datasets/` (prepared Arrow files; raw downloads and
    locks dropped) and `hf_modules/`; its manifest meta lists the tasks and datasets.
    """
    cfg = study.evaluate
    meta: dict[str, Any] = {"offline": cfg.offline}
    with artifacts.artifact_dir(out, PREFETCH_KIND, [], study.section_hash("evaluate"), meta) as tmp, \
            tempfile.TemporaryDirectory(prefix="faco-tasks-") as tasks_dir, \
            hf_cache.use_cache(tmp, offline=cfg.offline):
        from lm_eval.tasks import get_task_dict

        evaluator = Evaluator(study, Path(tasks_dir))
        names = evaluator.task_names()
        log(f"prefetch: building {', '.join(names)} ({'offline twins' if cfg.offline else 'hub'})")
        leaves = _leaf_tasks(get_task_dict(names, evaluator.manager()))
        metrics = sorted({m for n in names for m in SCORING_METRICS.get(n, ())})
        if metrics:
            import evaluate as hf_evaluate

            for metric in metrics:
                hf_evaluate.load(metric)
        hf_cache.prune(tmp)
        meta.update(tasks=names, metrics=metrics,
                    datasets=[_dataset_ref(n, t, evaluator.data) for n, t in sorted(leaves.items())])
        log(f"prefetch: {len(leaves)} tasks, {len(metrics)} hub metrics -> {out}")
    return out


@contextmanager
def _prefetched(study: Study, benchmarks: Path) -> Iterator[None]:
    """Read benchmark data only from a `prefetch` artifact (a private working copy), offline."""
    meta = artifacts.require(benchmarks, PREFETCH_KIND)["meta"]
    cfg = study.evaluate
    names = [task_name(suite()[s.name], cfg.offline) for s in cfg.benchmarks]
    missing = [n for n in names if n not in meta.get("tasks", [])]
    if missing:
        raise ConfigError(
            f"{benchmarks}: the prefetched benchmarks lack {', '.join(missing)}; prefetch with this "
            "config (`faco benchmarks fetch`)"
        )
    log(f"evaluate: benchmark data from {benchmarks} (hub offline)")
    with tempfile.TemporaryDirectory(prefix="faco-hf-cache-") as work, \
            hf_cache.use_cache(hf_cache.working_copy(benchmarks, Path(work) / "cache"), offline=True):
        yield


def run(study: Study, model_dir: Path, out: Path, benchmarks: Path | None = None) -> Path:
    """Score the model artifact (and, with per_epoch, each epoch checkpoint) on every configured benchmark.

    `benchmarks`: a `prefetch` artifact to read every dataset from, with the hub switched off.
    """
    model_manifest = artifacts.require(model_dir, train.KIND)
    cfg = study.evaluate
    needs_code = [s.name for s in cfg.benchmarks if suite()[s.name].code_execution]
    if needs_code and not cfg.allow_code_execution:
        raise ConfigError(
            f"evaluate.benchmarks: {', '.join(needs_code)} run model-written code; set "
            "evaluate.allow_code_execution: true to run it in faco's sandbox (docs/evaluation.md)"
        )
    final = Checkpoint(model_dir / "model", checkpoint_hash(model_manifest, "model/"))
    epochs = epoch_checkpoints(model_dir, model_manifest) if cfg.per_epoch else {}
    if cfg.per_epoch and not epochs:
        log(f"evaluate: per_epoch is set but {model_dir} has no {CHECKPOINTS}/epoch_N/")
    m = model_manifest["meta"]
    meta: dict[str, Any] = {k: m[k] for k in ("ratio", "tag", "start_ratio") if k in m}
    tag = model_dir.name  # the model's name in logs: cr_050, recovery_from_cr_100
    parents = [model_dir] if benchmarks is None else [model_dir, benchmarks]
    with _offline_env(cfg.offline) if benchmarks is None else _prefetched(study, benchmarks), \
            artifacts.artifact_dir(out, KIND, parents, study.section_hash("evaluate"), meta) as tmp, \
            tempfile.TemporaryDirectory(prefix="faco-tasks-") as tasks_dir:
        evaluator = Evaluator(study, Path(tasks_dir))
        scores: dict[str, Any] = evaluator.score(final, tag)
        if epochs:
            scores["epochs"] = {
                str(n): {b: e["score"] for b, e in
                         (scores if ck.digest == final.digest else evaluator.score(ck, f"{tag} epoch {n}")).items()}
                for n, ck in epochs.items()
            }
            for ck in epochs.values():
                ck._lm = None
        probes = evaluator.probes(final, cfg.probes if cfg.probes is not None else default_probes())
        write_json(tmp / "scores.json", scores)
        with (tmp / "probes.jsonl").open("w") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in probes)
        meta["scores"] = {k: v["score"] for k, v in scores.items() if k != "epochs"}
    return out
