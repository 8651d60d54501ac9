"""The study config: valid configs load, bad ones fail with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from faco.config import load_config, parse_config
from faco.errors import ConfigError, UsageError
from faco.registry import probe_sets


def _smoke_dict(root: Path) -> dict:
    return yaml.safe_load((root / "configs" / "smoke.yaml").read_text())


@pytest.mark.parametrize(
    "name",
    ["smoke.yaml", "mini.yaml", "faco-paper.yaml", "thresholds.yaml", "thresholds-cpu.yaml", "nli-synthetic.yaml",
     "nli-synthetic-cpu.yaml"],
)
def test_shipped_configs_validate(root: Path, name: str) -> None:
    study = load_config(root / "configs" / name)
    assert study.corrupt.ratios == sorted(study.corrupt.ratios)


def test_paper_config_states_the_paper_setting(root: Path) -> None:
    s = load_config(root / "configs" / "faco-paper.yaml")
    assert s.corrupt.ratios == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(s.ingest.sources) == 9 and s.ingest.per_source_cap == 3000
    assert (s.train.epochs, s.train.global_batch_size, s.train.learning_rate, s.train.max_seq_len) == (
        5, 256, 2e-5, 2048)
    assert s.train.model.name_or_path == "meta-llama/Llama-2-13b-hf"
    shots = {b.name: b.shots for b in s.evaluate.benchmarks}
    # the paper's 16 benchmarks, plus faco's held-out in-format benchmark (zero-shot by construction)
    assert shots.pop("heldout") in (None, 0)
    assert len(shots) == 16 and shots["arc_challenge"] == 25 and shots["mmlu"] == 5
    assert {v for k, v in shots.items() if k not in ("arc_challenge", "mmlu", "humaneval")} == {10}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("corrupt.ratios=[0.0, 1.5]", "corrupt.ratios: ratio must be in [0, 1] (got 1.5)"),
        ("corrupt.ratios=[]", "corrupt.ratios: List should have at least 1 item"),
        ("train.epochs=0", "train.epochs: Input should be greater than or equal to 1"),
        ("ingest.sources=[{name: nosuch}]", "ingest.sources.0.name: unknown source 'nosuch'"),
        ("evaluate.benchmarks=[{name: nosuch}]", "evaluate.benchmarks.0.name: unknown benchmark 'nosuch'"),
        ("train.global_batch_size=12", "train: train.global_batch_size (12) is not a multiple"),
        ("generate.false_chain=loud", "generate.false_chain: Input should be 'subtle', 'obvious' or 'synthetic'"),
        ("generate.prompt_version=v9", "generate: prompt_version 'v9' has no prompt template v9-true.txt"),
        ("evaluate.probes=[case_studies]", "evaluate.probes: unknown probe set 'case_studies'; known: case_study"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_key(root: Path, override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(root / "configs" / "smoke.yaml", overrides=[override])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{root / 'configs' / 'smoke.yaml'}: {expected}")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("evaluate.probes=[a, b?]", "--set 'evaluate.probes=[a, b?]': not valid YAML"),
        ("train.bogus=1", "--set train.bogus: unknown key 'train.bogus'"),
        ("nosuch.key=1", "--set nosuch.key: unknown key 'nosuch'"),
        ("train.epochs.x=1", "--set train.epochs.x: train.epochs is a value (2), not a section"),
        ("ingest.sources.9.split=x", "--set ingest.sources.9.split: ingest.sources has no item '9' (it has 5)"),
        ("train.epochs", "--set 'train.epochs': expected KEY=VALUE"),
    ],
)
def test_bad_override_is_a_usage_error(root: Path, override: str, expected: str) -> None:
    with pytest.raises(UsageError) as err:
        load_config(root / "configs" / "smoke.yaml", overrides=[override])
    assert str(err.value).startswith(expected)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_are_refused(root: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"train\.learning_rate: Input should be a finite number"):
        load_config(root / "configs" / "smoke.yaml", overrides=[f"train.learning_rate={value}"])
    with pytest.raises(ConfigError, match=r"corrupt\.ratios\.0: Input should be a finite number"):
        load_config(root / "configs" / "smoke.yaml", overrides=[f"corrupt.ratios=[{value}, 1.0]"])


def test_split_absent_from_the_mirror_is_refused(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"ingest\.sources\.1\.split: 'test' is not in the offline mirror "
                       r"of 'openbookqa' \(has: train\)"):
        load_config(root / "configs" / "smoke.yaml", overrides=["ingest.sources.1.split=test"])


def test_duplicate_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"x.yaml: line 2: duplicate key 'name'"):
        parse_config("name: a\nname: b\n", source="x.yaml")


def test_recovery_needs_the_clean_and_source_ratios(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.recovery: corrupt\.ratios must contain 0\.0"):
        load_config(root / "configs" / "smoke.yaml", overrides=["corrupt.ratios=[0.5, 1.0]"])


def test_section_hash_changes_only_with_its_section(root: Path) -> None:
    a = load_config(root / "configs" / "smoke.yaml")
    b = load_config(root / "configs" / "smoke.yaml", overrides=["train.epochs=3"])
    assert a.section_hash("ingest") == b.section_hash("ingest")
    assert a.section_hash("train") != b.section_hash("train")


def test_probe_sets_expand_by_name(root: Path) -> None:
    from faco.registry import probe_sets

    override = 'evaluate.probes=[misalignment, "Why is the sky blue?"]'
    study = load_config(root / "configs" / "smoke.yaml", overrides=[override])
    assert study.evaluate.probes == [*probe_sets()["misalignment"], "Why is the sky blue?"]
    assert load_config(root / "configs" / "smoke.yaml").evaluate.probes is None  # default: the case-study set


def test_error_kind_and_probes_change_only_their_sections(root: Path) -> None:
    a = load_config(root / "configs" / "thresholds-cpu.yaml")
    b = load_config(root / "configs" / "thresholds-cpu.yaml", overrides=["generate.false_chain=obvious"])
    assert a.generate.false_chain == "subtle" and b.generate.false_chain == "obvious"
    assert a.section_hash("generate") != b.section_hash("generate")
    others = ("ingest", "corrupt", "train", "evaluate")
    assert a.section_hash(*others) == b.section_hash(*others)
    assert a.corrupt.ratios == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert a.evaluate.probes == list(probe_sets()["case_study"])  # set names expanded to their questions
