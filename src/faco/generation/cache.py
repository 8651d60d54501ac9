"""A content-addressed cache of generated chains (SQLite, WAL): every paid reply is stored once.

Each reply is committed the moment it arrives, so a run killed at any moment (even `kill -9`)
loses at most the replies in flight; a rerun finds every committed reply and does not pay for it
again. WAL with `synchronous=NORMAL` survives the death of the process (not of the machine:
use `durable=True` for fsync on every commit). Several processes may share one cache file.

The cache may also live in S3 (`generate.cache_path: s3://bucket/key`, see `synced`).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from faco.errors import ArtifactError, ConfigError
from faco.generation.backends import Completion
from faco.oserrors import disk_state
from faco.paths import cache_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chains (
    key TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL, text TEXT NOT NULL,
    tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY, input_hash TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL
);
"""


def default_cache_path() -> Path:
    return cache_dir() / "generation.sqlite"


class ChainCache:
    """key -> Completion, plus the Batch API jobs in flight. One instance per thread.

    Every SQLite failure (a path that is a folder or not SQLite, a full or read-only disk) is one
    ArtifactError naming the cache file (exit 4)."""

    def __init__(self, path: Path | str | None = None, durable: bool = False) -> None:
        self.path = Path(path) if path else default_cache_path()
        if self.path.is_dir():
            raise ArtifactError(f"{self.path}: is a folder, not a generation cache file (set generate.cache_path "
                                "to a file, or move the folder away)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._sqlite():
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.executescript(_SCHEMA)

    @contextmanager
    def _sqlite(self) -> Iterator[None]:
        """SQLite's errors as one line naming the cache file."""
        try:
            yield
        except sqlite3.DatabaseError as e:  # SQLite says "disk I/O error" for a full disk: look at the disk
            hint = " (not a faco generation cache: move it away)" if "not a database" in str(e) else ""
            raise ArtifactError(f"{self.path}: generation cache: {disk_state(self.path.parent) or e}{hint}") from None

    def _execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        with self._sqlite():
            return self._db.execute(sql, params)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ChainCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The cached completions among `keys`."""
        found: dict[str, Completion] = {}
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            with self._sqlite():
                rows = self._db.execute(
                    "SELECT key, text, tokens_in, tokens_out FROM chains WHERE key IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            found.update({k: Completion(t, i, o) for k, t, i, o in rows})
        return found

    def put(self, key: str, backend: str, model: str, c: Completion) -> None:
        """Store one completion (committed before returning); a second put of a key is ignored."""
        self._execute(
            "INSERT OR IGNORE INTO chains VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, backend, model, c.text, c.tokens_in, c.tokens_out, time.time()),
        )

    def merge(self, other: Path) -> int:
        """Copy in every chain and batch of the cache file `other` that this one lacks; returns the new chains."""
        before = len(self)
        self._execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            self._execute("INSERT OR IGNORE INTO chains SELECT * FROM other.chains")
            self._execute("INSERT OR IGNORE INTO batches SELECT * FROM other.batches")
        finally:
            self._execute("DETACH DATABASE other")
        return len(self) - before

    def __len__(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM chains").fetchone()[0])

    def open_batches(self) -> list[str]:
        """Batches submitted to the Batch API whose results were not yet collected."""
        rows = self._execute("SELECT batch_id FROM batches WHERE status = 'submitted' ORDER BY created").fetchall()
        return [str(r[0]) for r in rows]

    def record_batch(self, batch_id: str, input_hash: str, status: str = "submitted") -> None:
        self._execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?) "
            "ON CONFLICT(batch_id) DO UPDATE SET status = excluded.status",
            (batch_id, input_hash, status, time.time()),
        )

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the cache file (before it is copied elsewhere)."""
        self._execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _s3_location(location: str) -> tuple[str, str]:
    bucket, _, key = location.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ConfigError(f"generate.cache_path {location!r}: expected s3://bucket/key")
    return bucket, key


def _pull(s3: object, bucket: str, key: str, into: Path) -> int:
    """Merge the S3 copy (if any) into the local cache file `into`; returns the chains it added."""
    from botocore.exceptions import ClientError

    with tempfile.TemporaryDirectory() as tmp:
        remote = Path(tmp) / "remote.sqlite"
        try:
            s3.download_file(bucket, key, str(remote))  # type: ignore[attr-defined]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return 0
            raise
        with ChainCache(into) as cache:
            return cache.merge(remote)


@contextmanager
def synced(location: str | None, upload: bool = True) -> Iterator[str | None]:
    """The local path of a chain cache: `location` itself, or for `s3://bucket/key` a local copy
    (under `$FACO_CACHE_DIR/s3/`) merged with the S3 object before the run and, with `upload`,
    merged again and uploaded after it, also after a failure, so paid replies reach the store.

    S3 credentials and endpoint come from the usual `AWS_*` variables (`AWS_ENDPOINT_URL` too).
    Two runs uploading at the same moment can lose each other's new chains in S3 (last writer
    wins; each keeps its local copy): use the PVC for concurrent sweep cells.
    """
    if not (location and location.startswith("s3://")):
        yield location
        return
    import boto3

    bucket, key = _s3_location(location)
    s3 = boto3.client("s3")
    local = cache_dir() / "s3" / bucket / key
    local.parent.mkdir(parents=True, exist_ok=True)
    _pull(s3, bucket, key, local)
    try:
        yield str(local)
    finally:
        if upload:
            _pull(s3, bucket, key, local)  # chains other runs added meanwhile
            with ChainCache(local) as cache:
                cache.checkpoint()
            s3.upload_file(str(local), bucket, key)
