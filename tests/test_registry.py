"""The low registry the config validates against names what the domain packages have."""

from __future__ import annotations

import pytest

from faco import registry
from faco.evaluation.suite import suite
from faco.generation.prompts import template
from faco.judging import prompts as judge_prompts
from faco.sources import SOURCES
from faco.sources.mirror import MIRROR_FILES


def test_sources_and_mirror_splits_agree_with_faco_sources() -> None:
    assert set(registry.SOURCES) == set(SOURCES)
    assert {s: set(v) for s, v in registry.MIRROR_SPLITS.items()} == {s: set(v) for s, v in MIRROR_FILES.items()}


def test_benchmarks_agree_with_the_suite() -> None:
    """The suite is the registry's benchmarks plus the trained-format variant of each one the registry says has one."""
    own = {name: b for name, b in suite().items() if b.of is None}
    assert registry.benchmarks() == {name: b.offline for name, b in own.items()}
    assert registry.trained_benchmarks() == sorted(b.of for b in suite().values() if b.of is not None)
    assert all(name == f"{b.of}{registry.TRAINED}" for name, b in suite().items() if b.of is not None)
    assert not set(registry.renamed_benchmarks()) & set(suite())  # an old name is no benchmark


def test_prompt_names_are_the_files_the_domain_packages_read() -> None:
    assert template("faco-v1", "false", "obvious") == registry.template_path("faco-v1", "false", "obvious").read_text()
    assert judge_prompts.ASPECTS == registry.JUDGE_ASPECTS
    for aspect in registry.JUDGE_ASPECTS:
        assert judge_prompts.prompt_path("judge-em-v1", aspect).is_file()


def test_config_imports_no_domain_package() -> None:
    """faco.config validates against the registry: importing it loads no source, generation, evaluation
    or judging module (each of them imports the config)."""
    import subprocess
    import sys

    code = ("import sys, faco.config; bad = sorted(m for m in sys.modules if m.startswith(('faco.sources', "
            "'faco.generation', 'faco.evaluation', 'faco.judging'))); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_detector_names_are_the_built_in_detectors() -> None:
    """The config validates detector names against the registry; they are the audit's built-in ones."""
    from faco.audit.detectors import BUILT_IN

    assert tuple(make().name for make in BUILT_IN) == registry.DETECTORS
    with pytest.raises(ValueError, match="unknown detector 'nope'; known: loss, confidence"):
        registry.detector("nope")
