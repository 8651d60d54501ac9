"""Lineage that cannot be forged (issue 23 items 2-3), through the installed `faco` executable.

A real chain (ingest -> generate -> corrupt on the smoke config) made with a signing key in the
environment; then the attacks of the issue: a symbolic link inside an artifact, a copy whose parent
folder links to the original, a data file edited and every manifest above it re-hashed (and
re-signed with the forger's own key), a parent link removed, a head manifest downgraded to schema 1.
Each still passes the self-consistency checks, or did; each now fails `faco lineage verify` with
exit 5 where the chain is anchored (`--expect`, `--public-key`), and verify says plainly when it is not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from faco import artifact_kinds, artifacts
from faco.config import load_config
from faco.errors import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, EXIT_VERIFY
from faco.lineage import signing
from faco.stages import corrupt, generate, ingest

ROOT = Path(__file__).resolve().parents[1]
FACO = Path(sys.executable).with_name("faco")
CHAIN = ("sources", "pairs", "splits")


def pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def fingerprint(key: Ed25519PrivateKey) -> str:
    return signing.fingerprint(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


@pytest.fixture(scope="module")
def owner_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def signed_chain(tmp_path_factory: pytest.TempPathFactory, owner_key: Ed25519PrivateKey) -> Path:
    """artifacts/{sources,pairs,splits} made by the real stages with FACO_SIGNING_KEY set."""
    study_dir = tmp_path_factory.mktemp("signed")
    study = load_config(ROOT / "configs" / "smoke.yaml")
    cwd, before = Path.cwd(), os.environ.get(signing.KEY_ENV)
    os.chdir(study_dir)
    os.environ[signing.KEY_ENV] = pem(owner_key)
    try:
        ingest.run(study, Path("artifacts/sources"))
        generate.run(study, Path("artifacts/sources"), Path("artifacts/pairs"))
        corrupt.run(study, Path("artifacts/pairs"), Path("artifacts/splits"))
    finally:
        os.chdir(cwd)
        os.environ.pop(signing.KEY_ENV)
        if before is not None:
            os.environ[signing.KEY_ENV] = before
    return study_dir


@pytest.fixture
def chain(signed_chain: Path, tmp_path: Path) -> Iterator[Path]:
    study_dir = tmp_path / "study"
    shutil.copytree(signed_chain, study_dir)
    yield study_dir


def faco(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in (signing.KEY_ENV, signing.TRUST_ENV)}
    return subprocess.run([str(FACO), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**environ, **(env or {})})


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    return proc.stderr.strip()


def reseal(study: Path, forger: Ed25519PrivateKey | None, edit_manifest: dict[str, object] | None = None) -> None:
    """What a forger with write access does: re-hash every file and manifest from the sources up,
    re-pointing each parent link at the new manifest hash, and re-sign with their own key (or none)."""
    previous = None
    for name in CHAIN:
        folder = study / "artifacts" / name
        data = json.loads((folder / "manifest.json").read_text())
        data["files"] = {f: artifacts.sha256_file(folder / f) for f in artifacts.tree_files(folder)}
        for parent in data["parents"]:
            parent["manifest_sha256"] = previous
        if name == "splits" and edit_manifest is not None:
            data.update(edit_manifest)
        data.pop(signing.SIGNATURE, None)
        data.pop(artifacts.SELF_HASH, None)
        if forger is not None:
            data[signing.SIGNATURE] = signing.sign(data, forger)
        data[artifacts.SELF_HASH] = artifacts.self_hash(data)
        (folder / "manifest.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        previous = artifacts.manifest_hash(folder)


def test_intact_signed_chain_says_what_anchors_it(chain: Path, owner_key: Ed25519PrivateKey) -> None:
    head = artifacts.manifest_hash(chain / "artifacts/splits")
    plain = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert plain.returncode == EXIT_OK, plain.stderr
    assert f"manifest sha256 {head}" in plain.stdout and "no key was trusted (pass --public-key)" in plain.stdout
    anchored = faco("lineage", "verify", "artifacts/splits", "--expect", head, "--public-key", fingerprint(owner_key),
                    cwd=chain)
    assert anchored.returncode == EXIT_OK, anchored.stderr
    assert "anchored (manifest sha256 matches --expect) and signed (every manifest by a trusted key)" in anchored.stdout
    public = chain.parent / "owner.pub"
    public.write_bytes(owner_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    by_file = faco("lineage", "verify", "artifacts/splits", cwd=chain, env={signing.TRUST_ENV: str(public)})
    assert by_file.returncode == EXIT_OK and "signed (every manifest by a trusted key)" in by_file.stdout
    for manifest in chain.rglob("manifest.json"):  # the public key is recorded; the private one nowhere
        text = manifest.read_text()
        assert fingerprint(owner_key) in text and "PRIVATE" not in text and pem(owner_key).splitlines()[1] not in text


def test_forged_chain_passes_only_as_self_consistent(chain: Path, owner_key: Ed25519PrivateKey) -> None:
    """Edit a data file, re-hash and re-sign everything above it: the self-checks hold, so verify says the
    chain is self-consistent only; the recorded head hash and the trusted key both catch it."""
    head = artifacts.manifest_hash(chain / "artifacts/splits")
    sources = chain / "artifacts/sources/sources.jsonl"
    sources.write_text(sources.read_text().replace('"answer"', '"answer" ', 1))
    forger = Ed25519PrivateKey.generate()
    reseal(chain, forger)
    unanchored = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert unanchored.returncode == EXIT_OK and "no key was trusted" in unanchored.stdout
    expect = faco("lineage", "verify", "artifacts/splits", "--expect", head, cwd=chain)
    assert expect.returncode == EXIT_VERIFY
    assert f"differs from the expected {head[:12]} (--expect)" in one_line(expect)
    trusted = faco("lineage", "verify", "artifacts/splits", "--public-key", fingerprint(owner_key), cwd=chain)
    assert trusted.returncode == EXIT_VERIFY
    signer = fingerprint(forger)[:19]
    assert f"artifacts/splits/manifest.json: signed by {signer}…, not a trusted key" in one_line(trusted)
    reseal(chain, None)  # signatures dropped: plainly unanchored, and refused with a trusted key
    unsigned = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert unsigned.returncode == EXIT_OK and "self-consistent only" in unsigned.stdout
    refused = faco("lineage", "verify", "artifacts/splits", "--public-key", fingerprint(owner_key), cwd=chain)
    assert refused.returncode == EXIT_VERIFY and "not signed (a trusted key was required)" in one_line(refused)


def test_removed_parent_link_and_edits_after_signing_are_caught(chain: Path, owner_key: Ed25519PrivateKey) -> None:
    trusted = ("--public-key", fingerprint(owner_key))
    head = chain / "artifacts/splits/manifest.json"
    data = json.loads(head.read_text())
    data["parents"] = []  # the parent link removed, self-hash recomputed, the owner's signature kept
    data[artifacts.SELF_HASH] = artifacts.self_hash(data)
    head.write_text(json.dumps(data))
    edited = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert edited.returncode == EXIT_VERIFY
    assert "signature does not match (manifest changed after it was signed)" in one_line(edited)
    reseal(chain, Ed25519PrivateKey.generate(), {"parents": []})  # ... and re-signed by the forger
    assert faco("lineage", "verify", "artifacts/splits", *trusted, cwd=chain).returncode == EXIT_VERIFY


def test_schema_downgrade_of_the_head_is_refused(chain: Path) -> None:
    head = chain / "artifacts/splits/manifest.json"
    data = json.loads(head.read_text())
    data["schema_version"] = 1
    for key in (artifacts.SELF_HASH, signing.SIGNATURE):
        del data[key]
    head.write_text(json.dumps(data))
    bad = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert bad.returncode == EXIT_VERIFY and "schema 1 manifest without self_sha256: refused" in one_line(bad)
    data["schema_version"], data[artifacts.SELF_HASH] = 1, artifacts.self_hash(data)  # a schema-1 claim with a hash
    head.write_text(json.dumps(data))
    bad = faco("lineage", "verify", "artifacts/splits", "--allow-schema-1", cwd=chain)
    assert bad.returncode == EXIT_VERIFY and "(schema downgrade)" in one_line(bad)


def test_symlink_inside_an_artifact_is_a_problem_not_followed(chain: Path) -> None:
    """`checkpoints/epoch_2/model -> the base model`'s twin: a linked folder inside an artifact is never
    hashed as the artifact's own bytes; verify names it, in the study and in a copy."""
    (chain / "artifacts/splits/linked").symlink_to(chain / "artifacts/sources", target_is_directory=True)
    bad = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert bad.returncode == EXIT_VERIFY
    assert f"artifacts/splits/linked: symbolic link to {chain / 'artifacts/sources'}" in one_line(bad)
    copy = chain.parent / "copy"
    shutil.copytree(chain, copy, symlinks=True)
    assert faco("lineage", "verify", "artifacts/splits", cwd=copy).returncode == EXIT_VERIFY
    (chain / "artifacts/splits/linked").unlink()
    split = sorted(artifacts.read_manifest(chain / "artifacts/splits")["files"])[0]
    (chain / "artifacts/splits" / split).rename(chain / "artifacts/splits/real.jsonl")
    (chain / "artifacts/splits" / split).symlink_to("real.jsonl")  # a file link, even pointing inside
    bad = faco("lineage", "verify", "artifacts/splits", cwd=chain)
    assert bad.returncode == EXIT_VERIFY and f"artifacts/splits/{split}: symbolic link to real.jsonl" in bad.stderr


def test_copy_whose_parent_folder_links_to_the_original_is_not_verified_through_it(chain: Path) -> None:
    copy = chain.parent / "archive" / "copy"
    shutil.copytree(chain, copy)
    shutil.rmtree(copy / "artifacts/pairs")
    (copy / "artifacts/pairs").symlink_to(chain / "artifacts/pairs", target_is_directory=True)
    bad = faco("lineage", "verify", str(copy / "artifacts/splits"), cwd=chain.parent)
    assert bad.returncode == EXIT_VERIFY
    assert "parent 'pairs' not found" in one_line(bad) and "outside the verified tree" in bad.stderr
    assert faco("lineage", "verify", "artifacts/splits", cwd=chain).returncode == EXIT_OK  # the original is intact


def test_a_stage_refuses_to_write_a_symlink_and_to_read_one(chain: Path, tmp_path: Path) -> None:
    """Writing: an artifact with a link is refused before its manifest (exit 4, nothing left). Reading:
    `faco corrupt` on pairs with a linked folder inside fails its input check (exit 5, one line)."""
    with pytest.raises(artifacts.ArtifactError, match=r"symbolic link to .* in the 'x' artifact being written"), \
            artifacts.artifact_dir(tmp_path / "out", "x", [], "h") as tmp:
        (tmp / "model").symlink_to(chain / "artifacts/sources", target_is_directory=True)
    assert not (tmp_path / "out").exists()
    (chain / "artifacts/pairs/elsewhere").symlink_to(chain / "artifacts/sources", target_is_directory=True)
    bad = faco("corrupt", str(ROOT / "configs" / "smoke.yaml"), "--pairs", "artifacts/pairs", "--out",
               str(tmp_path / "splits"), cwd=chain)
    assert bad.returncode == EXIT_VERIFY and "artifacts/pairs/elsewhere: symbolic link" in one_line(bad)
    assert not (tmp_path / "splits").exists()


def test_bad_keys_are_one_line_errors_naming_the_setting(chain: Path, tmp_path: Path) -> None:
    usage = faco("lineage", "verify", "artifacts/splits", "--expect", "abc", cwd=chain)
    assert usage.returncode == EXIT_USAGE and "--expect 'abc': not a sha256" in one_line(usage)
    usage = faco("lineage", "verify", "artifacts/splits", "--public-key", str(tmp_path / "none.pem"), cwd=chain)
    assert usage.returncode == EXIT_USAGE and "neither sha256:<64 hex> nor a readable PEM" in one_line(usage)
    secret = "not-a-key-0123456789"
    bad = faco("corrupt", str(ROOT / "configs" / "smoke.yaml"), "--pairs", "artifacts/pairs", "--out",
               str(tmp_path / "splits"), cwd=chain, env={signing.KEY_ENV: secret})
    assert bad.returncode == EXIT_CONFIG and f"{signing.KEY_ENV}: not an unencrypted PEM private key" in one_line(bad)
    assert secret not in bad.stderr and not (tmp_path / "splits").exists()


def test_evaluate_refuses_a_model_whose_checkpoint_links_to_another_model(tmp_path: Path) -> None:
    """The issue's attack: `checkpoints/epoch_2/model -> the base model` added to a model artifact; the
    "epoch 2" score would be the base model's. `faco evaluate` fails its input check first (exit 5)."""
    base, model = tmp_path / "base", tmp_path / "model"
    for out in (base, model):
        with artifacts.artifact_dir(out, artifact_kinds.MODEL, [], "x", {"ratio": 0.0, "tag": "cr_0.0"}) as tmp:
            (tmp / "model").mkdir()
            (tmp / "model" / "config.json").write_text("{}\n")
    (model / "checkpoints" / "epoch_2").mkdir(parents=True)
    (model / "checkpoints" / "epoch_2" / "model").symlink_to(base / "model", target_is_directory=True)
    bad = faco("evaluate", str(ROOT / "configs" / "smoke.yaml"), "--model", str(model), "--out",
               str(tmp_path / "eval"), "--set", "evaluate.probes=[]", cwd=tmp_path,
               env={"FACO_CACHE_DIR": str(tmp_path / "cache")})
    assert bad.returncode == EXIT_VERIFY
    assert f"{model}/checkpoints/epoch_2/model: symbolic link to {base / 'model'}" in one_line(bad)
    assert not (tmp_path / "eval").exists()
