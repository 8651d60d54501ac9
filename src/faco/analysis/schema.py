"""The analysis as typed results: what `analysis.json` holds (versioned) and what the report renders.

Ratios are floats everywhere (lists of `{ratio, ...}`, never string keys), and every model is named
by its role (base / grid / recovery, `faco.roles`) and ratio, never by a label. `analysis.json` is
`model_dump` of a `StudyAnalysis` (one split family) or a `KindsAnalysis` (several kinds of false
chain, paper 001); `read` parses it back and refuses another schema version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from faco.analysis.spread import Spread
from faco.errors import ArtifactError
from faco.roles import Role

#: version of analysis.json's layout: 3 has the detector benchmark and the cleaning comparison (2: the typed
#: layout with one loss AUROC per ratio and epoch; 1, unversioned: string ratio keys, model roles implied)
SCHEMA_VERSION = 3
FILE = "analysis.json"

#: a 95 % interval, None where a bound is undefined
Interval = tuple[float | None, float | None]
NO_INTERVAL: Interval = (None, None)
Trend = Literal["falls", "rises", "no significant trend"]


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelRef(Result):
    """A model of the study: its role, its ratio (a recovery model: the ratio it started from; the base
    model: None) and its training seed where known."""

    role: Role
    ratio: float | None = None
    seed: int | None = None


class Cell(Result):
    """One grid model's numbers in a benchmark row."""

    ratio: float
    score: float
    stderr: float | None
    score_ci: Interval | None = Field(description="paired item-bootstrap CI; None without per-item results")
    delta_vs_base: float | None
    delta_ci: Interval = NO_INTERVAL


class BaseScore(Result):
    score: float | None = None
    stderr: float | None = None
    score_ci: Interval | None = None


class RecoveryStderr(Result):
    clean: float | None
    corrupted: float | None
    recovered: float | None


class Recovery(Result):
    """Recovered fraction (recovered − corrupted) / (clean − corrupted), undefined when the gap is noise."""

    from_ratio: float
    clean: float | None
    corrupted: float | None
    recovered: float | None
    recovered_ci: Interval | None = Field(default=None, description="the recovered model's score CI")
    gap: float | None = None
    gap_ci: Interval = NO_INTERVAL
    recovered_fraction: float | None = None
    fraction_ci: Interval = NO_INTERVAL
    status: Literal["all", "none", "partial", "undefined"] = "undefined"
    reason: str | None = "no per-item results to judge the noise"
    stderr: RecoveryStderr


class Threshold(Result):
    """Paper 001's correct-data threshold on the isotonic fit, with its bootstrap interval."""

    fraction: float
    target: float | None = None
    correct_share: float | None = None
    reached: bool = False
    ci: Interval = NO_INTERVAL
    reached_share: float | None = None


class ChanceTest(Result):
    """One-sided exact binomial test of the most corrupted model's items against chance (F2)."""

    ratio: float
    p_below: float | None = None
    correct: int | None = None
    n: int | None = None
    acc: float | None = None
    chance: float | None = None
    seeds: int | None = Field(default=None, description="seeds tested; the least significant is kept")
    unparsed: float | None = None


class SeedScore(Result):
    seed: int | None
    score: float | None


class SeedCell(Result):
    ratio: float
    mean: float
    se: float | None
    n_seeds: int
    per_seed: list[SeedScore]


class SeedTest(Result):
    """Per ratio mean ± s.e. across seeds, and the slope test of the per-seed scores on the ratio."""

    cells: list[SeedCell]
    slope: float | None = None
    slope_stderr: float | None = None
    slope_p: float | None = None
    exceeds_seed_noise: bool | None = None
    n_points: int | None = None


class BenchmarkRow(Result):
    """Table 1's row of one benchmark (or `group/subtask`) with every statistic and its uncertainty."""

    domain: str | None
    metric: str
    chance: float | None
    n_items: int | None
    cells: list[Cell]
    base: BaseScore
    abs: float | None
    abs_ci: Interval
    pearson_r: float | None
    pearson_ci: Interval
    pearson_p: float | None
    trend: Trend | None
    untested: str | None
    threshold: Threshold
    recovery: list[Recovery]
    below_chance_at_max: ChanceTest
    seeds: SeedTest | None

    def cell(self, ratio: float) -> Cell | None:
        return next((c for c in self.cells if c.ratio == ratio), None)

    def scores(self) -> dict[float, float]:
        return {c.ratio: c.score for c in self.cells}

    def score(self, ratio: float) -> float | None:
        c = self.cell(ratio)
        return None if c is None else c.score

    def recovery_from(self, ratio: float) -> Recovery | None:
        return next((r for r in self.recovery if r.from_ratio == ratio), None)


class RatioValue(Result):
    ratio: float
    value: float | None


class EpochValue(Result):
    epoch: int
    value: float | None


class RatioEpochs(Result):
    """Per epoch values of one grid model (its mean benchmark score)."""

    ratio: float
    epochs: list[EpochValue]


class Metric(Result):
    """A value and its 95 % bootstrap interval; None where undefined (one class only)."""

    value: float | None
    ci: Interval


class Detection(Result):
    """One detector's performance on one split (a ratio of a study) after one epoch (None: the end):
    AUROC, average precision and precision at the corruption rate (`faco.analysis.detection`)."""

    detector: str
    ratio: float | None = None
    kind: str | None = Field(default=None, description="the kind of false chain (corrupt.kinds), where several")
    epoch: int | None = None
    n: int
    corrupted: int
    auroc: Metric
    average_precision: Metric
    precision_at_k: Metric


class Arm(Result):
    """One cleaning arm's score on the paired items, with its bootstrap interval, and the rows it left out."""

    arm: str
    score: float
    ci: Interval
    dropped: int | None = None


class Recovered(Result):
    """Share of the oracle's gain an arm wins back; None (with the reason) when undefined."""

    arm: str
    fraction: float | None
    ci: Interval
    reason: str | None = None


class Cleaning(Result):
    """The four arms on one split (`faco.analysis.cleaning`), the oracle's gain and what the detector and
    random removal recover."""

    ratio: float
    detector: str
    benchmark: str
    metric: str
    n_items: int
    arms: list[Arm]
    gain: float
    gain_ci: Interval
    recovered: list[Recovered]


class SubjectTest(Result):
    acc: float
    n: int
    p_below: float
    p_holm: float
    q_bh: float


class OverallTest(Result):
    acc: float
    n: int
    p_below: float


class SubjectsBelowChance(Result):
    """MMLU per subject of one model: binomial tests against 1/k, raw and Holm / BH adjusted."""

    model: ModelRef
    overall: OverallTest
    subjects: dict[str, SubjectTest]
    tests: int
    significantly_below: list[str]
    raw_below: list[str]


class TrainLoss(Result):
    """The final training loss per ratio and the trend of the per-sample loss with the ratio (F3)."""

    step_loss: list[RatioValue] = []
    sample_loss: list[RatioValue] = []
    pearson_r: float | None = None
    pearson_ci: Interval = NO_INTERVAL
    pearson_p: float | None = None
    n_samples: int | None = None
    trend: Trend | None = None


class RecoverySet(Result):
    from_ratio: float
    benchmarks: dict[str, Recovery]


class Probe(Result):
    """One model's greedy answer to a probe question (the paper's Table 2)."""

    model: ModelRef
    set: str
    question: str
    answer: str


class Finding(Result):
    """One sentence of the Findings, with its claim and the numbers behind it."""

    id: str
    benchmark: str | None
    claim: str | dict[str, int]
    sentence: str
    statistic: dict[str, Any]


class Findings(Result):
    headline: list[str]
    alpha: float
    findings: list[Finding]


class StudyAnalysis(Result):
    """The analysis of one split family: Table 1 and every statistic, the Findings (and papers 001/002)."""

    schema_version: Literal[3] = 3
    layout: Literal["single"] = "single"
    ratios: list[float]
    seeds: list[int]
    has_base: bool
    alpha: float
    bootstrap: int
    table: dict[str, BenchmarkRow]
    domain_average: dict[str, list[RatioValue]]
    recovery: list[RecoverySet]
    below_chance: list[SubjectsBelowChance]
    final_train_loss: TrainLoss
    detection: list[Detection] = Field(description="the detector benchmark: the grid models' per-sample loss "
                                       "(grid_loss) per ratio and epoch, and every audit's detectors")
    cleaning: list[Cleaning] = Field(default=[], description="train.clean: the cleaning comparison per ratio")
    epoch_average: list[RatioEpochs]
    probes: list[Probe]
    findings: Findings
    spread: Spread | None = Field(default=None, description="out-of-distribution benchmarks in the training format "
                                  "(faco.analysis.spread)")
    nli_gap: dict[str, Any] | None = Field(default=None, description="paper 002 (faco.analysis.nli_gap)")
    misalignment: dict[str, Any] | None = Field(default=None, description="paper 001 (faco.analysis.misalignment)")


class KindFindings(Result):
    headline: list[str]
    thresholds: list[str]


class KindsAnalysis(Result):
    """Several kinds of false chain (paper 001): each kind's analysis, the thresholds side by side."""

    schema_version: Literal[3] = 3
    layout: Literal["kinds"] = "kinds"
    kinds: list[str]
    ratios: list[float]
    seeds: list[int]
    has_base: bool
    alpha: float
    bootstrap: int
    base_domain_average: dict[str, float]
    by_kind: dict[str, StudyAnalysis]
    thresholds: dict[str, dict[str, Threshold]] = Field(description="benchmark -> kind -> threshold")
    headline: list[str]
    findings: KindFindings
    misalignment: dict[str, Any] | None = None
    cleaning: list[Cleaning] = Field(default=[], description="train.clean: the cleaning comparison per ratio")


Analysis = Annotated[StudyAnalysis | KindsAnalysis, Field(discriminator="layout")]


def dump(analysis: StudyAnalysis | KindsAnalysis) -> dict[str, Any]:
    """The JSON-ready form written to analysis.json."""
    return analysis.model_dump(mode="json")


def read(analysis_dir: Path) -> StudyAnalysis | KindsAnalysis:
    """The analysis of an analysis artifact, through the model; another schema version is an ArtifactError."""
    path = analysis_dir / FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    version = data.get("schema_version", 1) if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ArtifactError(f"{path}: analysis schema version {version}, this faco reads {SCHEMA_VERSION}; "
                            "rerun `faco analyze`")
    try:
        return TypeAdapter(Analysis).validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise ArtifactError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
