"""Ed25519 signatures on manifests: an anchor for the chain that whoever edits the tree cannot forge.

A manifest's self-hash catches an edited manifest, but anyone who can write the artifact can
recompute it. With a signing key in the environment (`FACO_SIGNING_KEY`: the PEM text, or
`FACO_SIGNING_KEY_FILE`: the path of a PEM file, e.g. a Kubernetes Secret mounted as a file),
every manifest faco writes carries `signature`: the algorithm, the raw public key, its fingerprint
(`sha256:` + hex of the raw key) and the Ed25519 signature over the manifest's canonical bytes
(sorted keys, no whitespace, without `self_sha256` and `signature`). Verification trusts a key only
when told to, by fingerprint or PEM (`faco lineage verify --public-key`, `FACO_PUBLIC_KEY`). The
private key never leaves the environment: it is in no manifest, log line or message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faco.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_ENV, KEY_FILE_ENV, TRUST_ENV = "FACO_SIGNING_KEY", "FACO_SIGNING_KEY_FILE", "FACO_PUBLIC_KEY"
SIGNATURE, SELF_HASH = "signature", "self_sha256"
ALGORITHM = "ed25519"
DOMAIN = b"faco manifest signature v1\n"  # what is signed: DOMAIN + canonical bytes
FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the manifest without its self-hash and signature, canonical JSON."""
    body = {k: v for k, v in manifest.items() if k not in (SELF_HASH, SIGNATURE)}
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def fingerprint(raw_public_key: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw_public_key).hexdigest()


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return bytes(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def signing_key() -> Ed25519PrivateKey | None:
    """The private key named by the environment, None when signing is not configured.

    Raises ConfigError naming the variable (never the key) when it is set but unusable.
    """
    text, where = os.environ.get(KEY_ENV, "").strip(), KEY_ENV
    path = os.environ.get(KEY_FILE_ENV, "").strip()
    if not text and path:
        where = f"{KEY_FILE_ENV} ({path})"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{where}: cannot read the signing key ({type(e).__name__})") from None
    if not text:
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{where}: not an Ed25519 key (make one with `openssl genpkey -algorithm ed25519`)")
    return key


def cache_secret() -> bytes | None:
    """A secret for binding evaluation-cache entries, derived from the signing key (None without one)."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    key = signing_key()
    if key is None:
        return None
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return hashlib.sha256(b"faco evaluation cache v1\n" + raw).digest()


def sign(manifest: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, str]:
    """The `signature` entry for `manifest`."""
    raw = _raw_public(key.public_key())
    return {"algorithm": ALGORITHM, "public_key": base64.b64encode(raw).decode(), "key": fingerprint(raw),
            "value": base64.b64encode(key.sign(canonical(manifest))).decode()}


def signer(manifest: dict[str, Any]) -> str | None:
    """The fingerprint of the key whose valid signature the manifest carries (None: unsigned)."""
    return manifest[SIGNATURE]["key"] if isinstance(manifest.get(SIGNATURE), dict) else None


def signature_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's signature (None: unsigned, or signed and valid)."""
    entry = manifest.get(SIGNATURE)
    if entry is None:
        return None
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(entry, dict) or entry.get("algorithm") != ALGORITHM:
        return "malformed signature"
    try:
        raw = base64.b64decode(entry["public_key"], validate=True)
        if entry.get("key") != fingerprint(raw):
            return "malformed signature (its key is not the one it names)"
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(entry["value"], validate=True),
                                                       canonical(manifest))
    except InvalidSignature:
        return "signature does not match (manifest changed after it was signed)"
    except (KeyError, TypeError, ValueError):
        return "malformed signature"
    return None


def trust_problem(where: Path | str, manifest: dict[str, Any], trusted: set[str]) -> str | None:
    """Why `manifest` is not signed by one of the `trusted` keys (None when it is, or none are trusted);
    the signature's validity is `signature_problem`'s to check."""
    if not trusted:
        return None
    by = signer(manifest)
    if by is None:
        return f"{where}: not signed (a trusted key was required)"
    return None if by in trusted else f"{where}: signed by {by[:19]}…, not a trusted key"


def trusted_keys(specs: list[str]) -> set[str]:
    """Fingerprints of the keys to trust: each spec a fingerprint (`sha256:<hex>`) or a PEM public key
    file; `FACO_PUBLIC_KEY` (the same, comma-separated) adds to them. UsageError for one that is neither."""
    env = [s.strip() for s in os.environ.get(TRUST_ENV, "").split(",") if s.strip()]
    out: set[str] = set()
    for spec in [*specs, *env]:
        if FINGERPRINT.fullmatch(spec):
            out.add(spec)
            continue
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(Path(spec).read_bytes())
        except (OSError, ValueError, TypeError):
            raise UsageError(f"public key {spec!r}: neither sha256:<64 hex> nor a readable PEM public key file") \
                from None
        if not isinstance(key, Ed25519PublicKey):
            raise UsageError(f"public key {spec}: not an Ed25519 key")
        out.add(fingerprint(_raw_public(key)))
    return out
