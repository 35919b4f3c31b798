"""A real S3-compatible server for tests: moto in server mode on an ephemeral loopback port.

There is no docker engine here (no MinIO container), so :class:`MotoS3` runs moto's S3 implementation
as an HTTP server in a background thread (``moto.server.ThreadedMotoServer``). Clients reach it over
real HTTP with real SigV4-signed requests, exactly as they would reach MinIO or AWS: pyarrow's
``S3FileSystem`` (what :class:`~marketdata_assets.storage.root.StorageRoot` uses) never knows it is a test.

Use the fixtures in ``marketdata_assets_tests/objectstore/conftest.py``: ``moto_s3`` (one server per
session), ``s3_env`` (the ``AWS_*`` variables pointing at it, restored after the test) and
``s3_root_uri`` (a fresh ``s3://bucket/<unique prefix>`` per test).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow.fs as pafs
import pytest

BUCKET = "marketdata-test"
ACCESS_KEY = "moto-test-key"
SECRET_KEY = "moto-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class MotoS3:
    """A running moto S3 server: where it listens and the bucket the tests use."""

    host: str
    port: int
    bucket: str

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that make a client talk to this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow S3 filesystem on this server, independent of the environment."""
        return pafs.S3FileSystem(
            endpoint_override=f"{self.host}:{self.port}",
            scheme="http",
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            allow_bucket_creation=True,
        )

    def new_prefix_uri(self) -> str:
        """``s3://<bucket>/<fresh prefix>``: an empty storage root for one test."""
        return f"s3://{self.bucket}/t-{uuid.uuid4().hex[:12]}"

    def keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix`` (relative to the bucket), as the server lists them."""
        selector = pafs.FileSelector(f"{self.bucket}/{prefix}", allow_not_found=True, recursive=True)
        infos = self.filesystem().get_file_info(selector)
        return sorted(i.path.removeprefix(f"{self.bucket}/") for i in infos if i.type == pafs.FileType.File)


@contextmanager
def moto_s3_server(bucket: str = BUCKET) -> Iterator[MotoS3]:
    """Start moto's S3 server on 127.0.0.1 with an OS-chosen port, create ``bucket``, stop on exit.

    If moto is not installed the test is skipped with the reason, except in CI (``CI=true``), where a
    missing server must fail the run.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - moto is a locked dev dependency
        message = f"moto[server] is not installed ({exc}); run `uv sync` to get the dev dependencies"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    # werkzeug logs one line per request at INFO; the tests make thousands.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = MotoS3(host=host, port=int(port), bucket=bucket)
        s3.filesystem().create_dir(bucket)
        yield s3
    finally:
        server.stop()
