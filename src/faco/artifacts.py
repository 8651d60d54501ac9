"""Artifact directories: data files plus a `manifest.json` that makes lineage verifiable.

A manifest records the artifact kind, the sha256 of every file, the parents' manifest hashes,
the hash of the config section(s) that made it, and the code version, and is self-hashed (and
signed, with a key in the environment: `faco.lineage.signing`). An artifact holds regular files
only: a symbolic link (which a reader would follow out of it, to bytes no manifest vouches for)
is refused when the manifest is written and a problem when it is verified. Outputs are written to
a temporary sibling directory and renamed into place only when complete, so a failed stage leaves
no half-written artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from faco import __version__
from faco.errors import ArtifactError, VerificationError
from faco.paths import repo_root

MANIFEST = "manifest.json"
SELF_HASH = "self_sha256"
SCHEMA_VERSION = 3  # 2: self-hash, relative parent paths; 3: optional signature, no symbolic links
SELF_HASHED = 2  # manifests of an older schema carry no self-hash: refused unless legacy ones are allowed
#: Set in every KFP task from the pod's `pipeline/runid` label (faco.pipelines._tasks): recorded as meta.kfp_run_id.
KFP_RUN_ID_ENV = "FACO_KFP_RUN_ID"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code_version() -> str:
    """The package version, plus the git commit (and `-dirty`) when run from a checkout."""
    root = repo_root()
    if root is None or not (root / ".git").exists():
        return __version__
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "src"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{rev}{'-dirty' if dirty else ''}"


def read_manifest(path: Path) -> dict[str, Any]:
    mf = path / MANIFEST
    if not mf.is_file():
        raise ArtifactError(f"{path}: not a faco artifact (no {MANIFEST})")
    if mf.is_symlink():
        raise VerificationError(f"{mf}: a symbolic link, not a manifest")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise VerificationError(f"{mf}: unreadable manifest ({e})") from None
    problem = shape_problem(manifest)
    if problem:
        raise VerificationError(f"{mf}: not a faco manifest ({problem})")
    return manifest


def shape_problem(manifest: object) -> str | None:
    """What keeps parsed JSON from being a faco manifest (wrong types of its fields), or None."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return "'files' is not an object of file hashes"
    parents = manifest.get("parents", [])
    if not isinstance(parents, list) or not all(isinstance(rec, dict) for rec in parents):
        return "'parents' is not a list of objects"
    if not isinstance(manifest.get("meta", {}), dict):
        return "'meta' is not an object"
    if not isinstance(manifest.get("schema_version", 1), int):
        return "'schema_version' is not an integer"
    return None


def manifest_hash(path: Path) -> str:
    return sha256_file(path / MANIFEST)


def self_hash(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a manifest without its `self_sha256` field."""
    body = {k: v for k, v in manifest.items() if k != SELF_HASH}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def self_problem(path: Path, manifest: dict[str, Any], legacy: bool = False) -> str | None:
    """The problem with a manifest's own integrity (self-hash, signature), or None when it holds.

    A manifest of schema 1 (faco before 0.2) carries no self-hash: anyone can rewrite one, so it is
    refused (a downgrade) unless `legacy` allows it. A signature, when present, must be valid.
    """
    from faco.lineage import signing

    mf = path / MANIFEST
    recorded = manifest.get(SELF_HASH)
    version = int(manifest.get("schema_version", 1))
    if version < SELF_HASHED and (recorded is not None or signing.SIGNATURE in manifest):
        return f"{mf}: claims schema {version} but carries a {SELF_HASH} or signature (schema downgrade)"
    if version < SELF_HASHED:
        return None if legacy else (f"{mf}: schema {version} manifest without {SELF_HASH}: refused (anyone can "
                                    "rewrite one; a downgrade); re-run the stage, or verify with --allow-schema-1")
    if recorded is None:
        return f"{mf}: no {SELF_HASH} (manifest edited)"
    actual = self_hash(manifest)
    if recorded != actual:
        return (f"{mf}: {SELF_HASH} mismatch (recorded {str(recorded)[:12]}, "
                f"found {actual[:12]}; manifest edited)")
    bad = signing.signature_problem(manifest)
    return f"{mf}: {bad}" if bad else None


def ancestors(path: Path, prune: Callable[[dict[str, Any]], bool] = lambda m: False
              ) -> Iterator[tuple[Path, dict[str, Any]]]:
    """`path` and every artifact above it by the parents' recorded relative paths, each once with its
    manifest; one for which `prune(manifest)` holds is yielded but not climbed past."""
    todo, seen = [path.resolve()], set()
    while todo:
        p = todo.pop()
        if p in seen or not (p / MANIFEST).is_file():
            continue
        seen.add(p)
        m = read_manifest(p)
        yield p, m
        if not prune(m):
            todo += [(p / e["relative_path"]).resolve() for e in m["parents"] if e.get("relative_path")]


def require(path: Path, kind: str, *others: str) -> dict[str, Any]:
    """Read an input artifact's manifest, check its kind (`kind` or one of `others`), and verify its
    files before use.

    Verification re-hashes the files unless the stat cache vouches for them (`faco.integrity`);
    a mismatch raises VerificationError. `FACO_NO_VERIFY=1` skips it.
    """
    manifest = read_manifest(path)
    if manifest.get("kind") not in (kind, *others):
        wanted = " or ".join(repr(k) for k in (kind, *others))
        raise ArtifactError(f"{path}: expected a {wanted} artifact, found {manifest.get('kind')!r}")
    check_intact(path)
    return manifest


def check_intact(path: Path) -> None:
    """Raise VerificationError naming the first problem of artifact `path` (unless opted out).

    Uses the stat cache (`faco.integrity`) when it vouches for every file; otherwise re-hashes and,
    when intact, refreshes the cache.
    """
    from faco import integrity
    from faco.lineage import signing

    if integrity.disabled():
        return
    manifest = read_manifest(path)
    names = sorted(manifest.get("files", {}))
    digest = manifest_hash(path)
    present, odd = tree_entries(path)
    untrusted = signing.trust_problem(path / MANIFEST, manifest, signing.trusted_keys([]))
    if not odd and not untrusted and present == names and integrity.known_good(path, digest, names):
        return
    problems = verify(path)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VerificationError(
            f"{problems[0]}{more}: {path} changed after its manifest was written; "
            f"re-run the stage that made it (or set {integrity.NO_VERIFY_ENV}=1 to use it anyway)"
        )
    integrity.remember(path, digest, names)


def tree_entries(root: Path) -> tuple[list[str], list[str]]:
    """(regular files, everything else: symbolic links, FIFOs, sockets, devices) below `root`, as
    sorted POSIX paths relative to it, without the artifact's own manifest. Never follows a link:
    a linked folder is listed, not entered."""
    files, odd = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            entry = here / name
            mode = os.lstat(entry).st_mode
            rel = entry.relative_to(root).as_posix()
            if stat.S_ISREG(mode) and rel != MANIFEST:
                files.append(rel)
            elif not stat.S_ISDIR(mode) and rel != MANIFEST:
                odd.append(rel)
    return sorted(files), sorted(odd)


def tree_files(root: Path) -> list[str]:
    """Every regular file below `root` except the manifest, as sorted POSIX paths relative to `root`."""
    return tree_entries(root)[0]


def _odd(root: Path, name: str) -> str:
    entry = root / name
    return f"symbolic link to {os.readlink(entry)}" if entry.is_symlink() else "not a regular file"


def _hash_tree(root: Path) -> dict[str, str]:
    return {name: sha256_file(root / name) for name in tree_files(root)}


def file_problems(path: Path, files: dict[str, str], shown: str) -> list[str]:
    """Re-hash `path` against its manifest's `files`: changed, missing, extra and non-regular entries
    (symbolic links are never followed), each named as `shown/NAME`."""
    present, odd = tree_entries(path)
    problems = [f"{shown}/{name}: {_odd(path, name)} (an artifact holds regular files only)" for name in odd]
    for name, digest in sorted(files.items()):
        if name not in present:
            if name not in odd:
                problems.append(f"{shown}/{name}: missing")
            continue
        actual = sha256_file(path / name)
        if actual != digest:
            problems.append(f"{shown}/{name}: sha256 mismatch (recorded {digest[:12]}, found {actual[:12]})")
    problems.extend(f"{shown}/{name}: not in manifest" for name in sorted(set(present) - files.keys()))
    return problems


def parent_entry(parent: Path, child: Path) -> dict[str, Any]:
    """How a manifest records a parent: kind, manifest sha256, the path relative to the child
    (the way lineage finds it), an absolute URI (a fallback hint) and the path as given."""
    parent_abs, child_abs = parent.resolve(), child.resolve()
    return {
        "kind": read_manifest(parent)["kind"],
        "path": str(parent),
        "relative_path": Path(os.path.relpath(parent_abs, child_abs)).as_posix(),
        "uri": parent_abs.as_uri(),
        "manifest_sha256": manifest_hash(parent),
    }


def write_manifest(
    path: Path, kind: str, parents: list[Path], config_hash: str, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Hash the files of `path` and write its manifest (self-hashed), recording `parents`.

    `path` is the artifact's final location or a sibling of it (parents' relative paths are the
    same from both).
    """
    from faco import integrity
    from faco.lineage import signing

    odd = tree_entries(path)[1]
    if odd:
        raise ArtifactError(f"{odd[0]}: {_odd(path, odd[0])} in the {kind!r} artifact being written; an artifact "
                            "holds regular files only (a reader would follow a link to bytes no manifest vouches for)")
    key = signing.signing_key()
    manifest: dict[str, Any] = {
        "kind": kind,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "config_hash": config_hash,
        "parents": [parent_entry(p, path) for p in parents],
        "meta": {**({"kfp_run_id": run} if (run := os.environ.get(KFP_RUN_ID_ENV)) else {}), **(meta or {})},
        "files": _hash_tree(path),
    }
    if key is not None:
        manifest[signing.SIGNATURE] = signing.sign(manifest, key)
    manifest[SELF_HASH] = self_hash(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    integrity.remember(path, manifest_hash(path), sorted(manifest["files"]))
    return manifest


def verify(path: Path) -> list[str]:
    """Re-hash an artifact's files and check its manifest (self-hash, signature, and the signer when
    `FACO_PUBLIC_KEY` names trusted keys); problems (empty when intact)."""
    from faco.lineage import signing

    manifest = read_manifest(path)
    problems = [p for p in [self_problem(path, manifest), signing.trust_problem(path / MANIFEST, manifest,
                                                                                 signing.trusted_keys([]))] if p]
    return problems + file_problems(path, manifest["files"], str(path))


def refuse_overlap(out: Path, parents: list[Path]) -> None:
    """An output may not be one of its inputs, inside one, or hold one: writing it would destroy them."""
    target = out.resolve()
    for parent in parents:
        source = Path(parent).resolve()
        if target == source or source in target.parents or target in source.parents:
            raise ArtifactError(f"{out}: overlaps the input {parent}; writing there would destroy it "
                                f"(choose another --out)")


@contextmanager
def artifact_dir(
    out: Path, kind: str, parents: list[Path], config_hash: str, meta: dict[str, Any] | None = None
) -> Iterator[Path]:
    """Yield a temporary directory; on success write its manifest and move it to `out` atomically.

    `meta` may be mutated inside the block (e.g. to add counts); it is written at the end.
    `out` must be absent, empty or a faco artifact, and is locked while the block runs
    (`faco.outputs.replacing`).
    """
    from faco.outputs import replacing

    refuse_overlap(Path(out), parents)
    with replacing(Path(out), kind) as tmp:
        yield tmp
        write_manifest(tmp, kind, parents, config_hash, meta)
