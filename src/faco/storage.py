"""S3 helpers: artifact prefixes up and down through boto3, endpoint from the environment.

The endpoint is `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (MinIO, moto, Ceph); unset means
AWS itself. Credentials come from boto3's usual chain (env, profile, IRSA), never from arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from faco.errors import ArtifactError


@dataclass(frozen=True)
class S3Uri:
    """`s3://bucket/key` split into its parts (key without leading or trailing slashes)."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ArtifactError(f"{uri}: not an s3:// URI")
        bucket, _, key = uri[len("s3://"):].partition("/")
        if not bucket:
            raise ArtifactError(f"{uri}: no bucket")
        return cls(bucket, key.strip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    def child(self, rel: str) -> S3Uri:
        return S3Uri(self.bucket, str(PurePosixPath(self.key, rel)).strip("/"))


def is_s3(target: str) -> bool:
    return target.startswith("s3://")


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def client() -> Any:
    """A boto3 S3 client for the configured endpoint."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url())


def list_keys(s3: Any, uri: S3Uri) -> Iterator[str]:
    """Every object key under the prefix `uri` (as a directory)."""
    prefix = f"{uri.key}/" if uri.key else ""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def exists(s3: Any, uri: S3Uri) -> bool:
    """Whether the object `uri` exists."""
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


def download_prefix(s3: Any, uri: S3Uri, dest: Path) -> int:
    """Download every object under `uri` into `dest`, keeping relative paths; returns the count."""
    count = 0
    prefix = f"{uri.key}/" if uri.key else ""
    for key in list_keys(s3, uri):
        rel = key[len(prefix):]
        if not rel or rel.endswith("/"):
            continue
        target = dest / rel
        if ".." in PurePosixPath(rel).parts:
            raise ArtifactError(f"{uri}: refusing key outside the prefix: {key}")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(uri.bucket, key, str(target))
        count += 1
    return count


def upload_dir(s3: Any, src: Path, uri: S3Uri) -> int:
    """Upload every file under `src` to `uri`, keeping relative paths; returns the count."""
    count = 0
    for path in sorted(src.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), uri.bucket, uri.child(path.relative_to(src).as_posix()).key)
            count += 1
    return count
