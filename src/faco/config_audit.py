"""The study config's sections for own data and audits: custom sources (`ingest.sources[].custom`),
`audit` and `train.clean` (docs/audit.md). Kept apart from `faco.config`, which uses them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from faco import registry
from faco.records import Domain


class Section(BaseModel):
    """Unknown keys are errors (as every `faco.config` section)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CustomFields(Section):
    """Which column of a custom source holds what; each defaults to its own name."""

    id: str = Field(default="id", description="a unique row id (absent from the file: the row's number)")
    question: str = "question"
    choices: str = Field(default="choices", description="a list of option texts")
    answer: str = Field(default="answer", description="the correct option: its index, letter (A, B, ...) or text")
    explanation: str = Field(default="explanation", description="optional gold explanation")
    messages: str = Field(default="messages", description="chat rows: [{role, content}, ...], user then assistant")
    prompt: str = "prompt"
    response: str = "response"
    is_corrupted: str = Field(default="is_corrupted", description="optional: a known-bad flag (audit benchmarks)")


class CustomSource(Section):
    """Data faco has no adapter for: a local JSONL/JSON/Parquet file or a hub dataset at a pinned revision,
    and which of its fields is what (docs/audit.md)."""

    path: str | None = Field(default=None, description="a local .jsonl, .json or .parquet file")
    hub: str | None = Field(default=None, description="a hub dataset id (needs network and `revision`)")
    hub_name: str | None = Field(default=None, description="the hub dataset's config name")
    revision: str | None = Field(default=None, description="the hub commit or tag that pins the rows")
    format: Literal["mc", "messages", "prompt_response"] = Field(
        default="mc", description="mc: question + choices + answer (+ explanation); messages: chat rows; "
        "prompt_response: a prompt and its response")
    fields: CustomFields = CustomFields()
    domain: Domain = "knowledge"

    @model_validator(mode="after")
    def _one_origin(self) -> CustomSource:
        if (self.path is None) == (self.hub is None):
            raise ValueError("custom: give exactly one of path (a local file) or hub (a hub dataset)")
        if self.hub is not None and not self.revision:
            raise ValueError("custom.revision: a hub dataset needs a pinned revision (a commit or tag)")
        if self.path is not None and Path(self.path).suffix not in (".jsonl", ".json", ".parquet"):
            raise ValueError(f"custom.path: {self.path}: not a .jsonl, .json or .parquet file")
        return self


class AuditJudgeConfig(Section):
    """The LLM-judge detector (the practitioners' baseline): a model asked whether each response is
    correct, through the generation backends (docs/audit.md)."""

    backend: Literal["openai", "transformers"] = "transformers"
    model: str = Field(default="smollm2", description="API model; transformers: smollm2, a dir, a hub id")
    prompt_version: str = Field(default="audit-judge-v1", description="prompts/<version>.txt")
    max_tokens: int = Field(default=16, ge=1, description="reply length cap (API judges)")
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=60.0, gt=0.0)
    max_retries: int = Field(default=4, ge=0)
    cache: bool = True
    cache_path: str | None = Field(default=None, description="default: $FACO_CACHE_DIR/audit-judge.sqlite")

    @field_validator("prompt_version")
    @classmethod
    def _prompt_exists(cls, v: str) -> str:
        from faco.paths import PROMPTS_DIR

        if not (PROMPTS_DIR / f"{v}.txt").is_file():
            raise ValueError(f"no judge prompt {v}.txt in faco's prompts")
        return v


class AuditConfig(Section):
    """`faco audit` and the detector benchmark of a study: which detectors score the samples (docs/audit.md)."""

    detectors: list[str] | None = Field(
        default=None, description="default: every built-in detector whose inputs the audit has (judge: with judge:)")
    folds: int = Field(default=2, ge=1, description="cross-fitting: k models, each trained on all folds but one, "
                       "so every sample is also measured by a model that never saw it (1: one run on everything)")
    rank_by: str = Field(default="heldout_margin", description="the detector ranking.jsonl is sorted by (rows it "
                         "cannot score, e.g. margins of rows without options, follow by heldout_loss, then loss)")
    format: Literal["auto", "mc", "messages", "prompt_response"] = Field(
        default="auto", description="--data files that are not faco splits: their row format (auto: from the first "
        "row's fields)")
    fields: CustomFields = CustomFields()
    judge: AuditJudgeConfig | None = None

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            registry.detector(name)
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError(f"detectors: a non-empty list of distinct names is needed (got {v})")
        return v

    @field_validator("rank_by")
    @classmethod
    def _known_rank_by(cls, v: str) -> str:
        return registry.detector(v)


class CleanConfig(Section):
    """Retrain on the split minus the rows a detector flags most (`faco study` compares it with random and
    oracle removal of as many rows; docs/audit.md)."""

    detector: str
    drop: float | Literal["rate"] = Field(
        description="the share of rows to drop, in (0, 1); `rate`: as many as the split has corrupted rows "
        "(a faco split knows that count; the detector still chooses which)")
    seed: int = Field(default=0, description="the random-removal arm's draw")

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, v: str) -> str:
        return registry.detector(v)

    @field_validator("drop")
    @classmethod
    def _share(cls, v: float | str) -> float | str:
        if isinstance(v, float) and not 0.0 < v < 1.0:
            raise ValueError(f"drop: a share in (0, 1) or 'rate' (got {v})")
        return v
