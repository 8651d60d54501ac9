"""The release workflow's cluster submit, run as written with `--dry-run` appended (no network)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from faco import kfp_cli
from faco.errors import FacoError

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
SECRETS = {"KFP_HOST": "https://kfp.invalid/pipeline", "KFP_TOKEN": "fake-token-5d1e", "KFP_NAMESPACE": "faco-ci"}
DIGEST = "sha256:" + "ab" * 32


def _step(job: dict, name: str) -> dict:
    (step,) = [s for s in job["steps"] if s.get("name") == name]
    return step


def _env(values: dict[str, str]) -> dict[str, str]:
    """A step's env with the `${{ ... }}` expressions GitHub would fill in replaced by test values."""
    out = {}
    for key, value in values.items():
        value = str(value)
        if "${{ secrets." in value:
            value = SECRETS[key]
        elif "${{ needs.images.outputs." in value:
            value = DIGEST
        assert "${{" not in value, f"{key}: unhandled expression {value}"
        out[key] = value
    return out


def test_release_workflow_submits_a_named_config_that_can_start(tmp_path: Path) -> None:
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["submit"]
    compile_cmd = _step(job, "Compile the pipeline with images pinned by digest")["run"]
    submit = _step(job, "Submit the corruption study")
    assert "${{" not in compile_cmd + submit["run"]
    sha = "0123456789abcdef0123456789abcdef01234567"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "GITHUB_SHA": sha,
           "RUNNER_TEMP": str(tmp_path), **_env(job["env"]), **_env(submit["env"])}
    done = subprocess.run(["bash", "-ec", compile_cmd], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run(["bash", "-ec", submit["run"] + " --dry-run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    req = json.loads(done.stdout)
    config = ROOT / submit["env"]["STUDY_CONFIG"]
    assert req["arguments"]["config_yaml"] == config.read_text()  # the named config from the repo
    assert req["run_name"] == f"faco-paper-{sha[:12]}"
    assert (req["experiment_name"], req["host"], req["namespace"]) == ("faco-main", SECRETS["KFP_HOST"], "faco-ci")
    package = Path(req["pipeline_package_path"])
    assert package == tmp_path / "pipelines" / "corruption_study.yaml"
    assert req["pipeline_package_sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
    assert DIGEST in package.read_text()  # the images the images job pushed, pinned
    # every pipeline parameter without a default has an argument: the run can start
    spec = next(iter(yaml.safe_load_all(package.read_text())))
    params = spec["root"]["inputDefinitions"]["parameters"]
    required = {n for n, p in params.items() if "defaultValue" not in p and not p.get("isOptional")}
    assert required and required <= set(req["arguments"])
    assert SECRETS["KFP_TOKEN"] not in done.stdout


def test_a_request_missing_a_required_argument_is_refused(tmp_path: Path) -> None:
    """The recovery pipeline needs model_uri and splits_uri, which a config alone does not give."""
    with pytest.raises(FacoError, match=r"needs argument.*model_uri"):
        kfp_cli.submit_request("https://kfp.invalid", ROOT / "configs" / "smoke.yaml",
                               ROOT / "pipelines" / "recovery.yaml", pipeline="recovery")
