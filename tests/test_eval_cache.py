"""The evaluation cache serves only entries bound to what they claim (issue 23 item 3), through the
installed `faco evaluate` on a tiny random llama and the offline COPA twin (and `Cache` itself for
the cases that need no model).

An entry edited without its digest, filed under another key, or (with a signing key set) re-digested
without the secret is a logged miss and is evaluated afresh; a cache folder that is a file, or an
entry that is a folder, is a one-line error naming the path (exit 4), with nothing written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from faco import artifact_kinds, artifacts
from faco.config import ModelSpec
from faco.errors import EXIT_INPUT, EXIT_OK, FacoError
from faco.evaluation import cache
from faco.lineage import signing
from faco.training.models import tiny_model

ROOT = Path(__file__).resolve().parents[1]
FACO = Path(sys.executable).with_name("faco")
SETS = ['evaluate.benchmarks=[{"name": "copa", "shots": 0, "limit": 4}]', "evaluate.probes=[]"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "cr_0.0"
    spec = ModelSpec.model_validate({"source": "tiny-random",
                                     "tiny": {"hidden_size": 32, "layers": 1, "heads": 2, "vocab_size": 300}})
    with artifacts.artifact_dir(out, artifact_kinds.MODEL, [], "x", {"ratio": 0.0, "tag": "cr_0.0"}) as tmp:
        lm, tok = tiny_model(spec, ["The quick brown fox jumps over the lazy dog."] * 20, seed=0)
        lm.save_pretrained(tmp / "model")
        tok.save_pretrained(tmp / "model")
    return out


def evaluate(model: Path, out: Path, cache_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in (signing.KEY_ENV, signing.KEY_FILE_ENV)}
    sets = [a for s in SETS for a in ("--set", s)]
    return subprocess.run([str(FACO), "evaluate", str(ROOT / "configs" / "smoke.yaml"), "--model", str(model),
                           "--out", str(out), *sets], capture_output=True, text=True, timeout=600,
                          env={**environ, "FACO_CACHE_DIR": str(cache_dir), **env})


def score(out: Path) -> Any:
    return json.loads((out / "scores.json").read_text())["copa"]


def entries(cache_dir: Path) -> list[Path]:
    """The score entries (the probes' answers have theirs too)."""
    found = sorted((cache_dir / "eval").rglob("*.json"))
    return [p for p in found if json.loads(p.read_text())["key"]["kind"] == "score"]


def forge(path: Path) -> None:
    """Claim a perfect score, re-digested as an unkeyed sha256 (all a forger without the secret can do)."""
    entry = json.loads(path.read_text())
    entry["value"]["entry"]["score"] = 1.0
    entry["binding"], entry["digest"] = "sha256", cache._digest(entry["key"], entry["value"], None)
    path.write_text(json.dumps(entry))


def test_forged_and_misfiled_entries_are_misses(model: Path, tmp_path: Path) -> None:
    first = evaluate(model, tmp_path / "e1", tmp_path / "cache")
    assert first.returncode == EXIT_OK, first.stderr
    (entry,) = entries(tmp_path / "cache")
    honest = score(tmp_path / "e1")
    assert honest["score"] != 1.0

    data = json.loads(entry.read_text())
    data["value"]["entry"]["score"] = 1.0  # edited, digest left as it was
    entry.write_text(json.dumps(data))
    edited = evaluate(model, tmp_path / "e2", tmp_path / "cache")
    assert edited.returncode == EXIT_OK, edited.stderr
    assert f"evaluation cache: ignoring {entry}: digest mismatch (edited or forged)" in edited.stderr
    assert score(tmp_path / "e2") == honest  # evaluated afresh, and the entry rewritten



def test_with_a_signing_key_a_recomputed_digest_is_not_enough(model: Path, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    assert evaluate(model, tmp_path / "e1", tmp_path / "cache", FACO_SIGNING_KEY=key).returncode == EXIT_OK
    honest = score(tmp_path / "e1")
    (entry,) = entries(tmp_path / "cache")
    assert json.loads(entry.read_text())["binding"] == "hmac-sha256"
    forge(entry)
    forged = evaluate(model, tmp_path / "e2", tmp_path / "cache", FACO_SIGNING_KEY=key)
    assert forged.returncode == EXIT_OK and "bound by 'sha256', 'hmac-sha256' required" in forged.stderr
    assert score(tmp_path / "e2") == honest
    assert key.splitlines()[1] not in forged.stderr + entry.read_text()


def test_a_cache_folder_that_is_a_file_is_a_one_line_error(model: Path, tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "eval").write_text("not a folder")
    bad = evaluate(model, tmp_path / "e1", tmp_path / "cache")
    assert bad.returncode == EXIT_INPUT
    assert bad.stderr.strip().splitlines()[-1] == (f"error: {tmp_path / 'cache' / 'eval'}: not a folder; "
                                                   "the evaluation cache needs one there (remove the file)")
    assert bad.stderr.count("error:") == 1 and not (tmp_path / "e1").exists()


KEY = cache.CacheKey(kind="score", weights="w" * 64, task="t", settings="{}")


def test_misfiled_corrupt_and_folder_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Another key's valid entry under this key's name, or a file that is no JSON, is a logged miss;
    a folder where the entry belongs is an error naming it (exit 4)."""
    monkeypatch.setenv("FACO_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(signing.KEY_ENV, raising=False)
    store = cache.Cache(enabled=True)
    other = cache.CacheKey(kind="score", weights="v" * 64, task="t", settings="{}")
    store.put(other, {"entry": {"score": 1.0}})
    assert store.get(other) == {"entry": {"score": 1.0}}
    path = store._path(KEY)
    path.parent.mkdir(parents=True)
    shutil.copy(store._path(other), path)
    assert store.get(KEY) is None and "filed under another key" in capsys.readouterr().err
    path.write_text('{"entry": {"score": 1.0}}')  # the format before entries were bound
    assert store.get(KEY) is None and "not a faco cache entry" in capsys.readouterr().err
    path.write_bytes(b"\xff\xfe")
    assert store.get(KEY) is None and "unreadable (UnicodeDecodeError)" in capsys.readouterr().err
    path.unlink()
    path.mkdir()
    with pytest.raises(FacoError, match="a folder where an evaluation cache entry belongs") as err:
        store.get(KEY)
    assert err.value.exit_code == EXIT_INPUT and str(path) in str(err.value)
