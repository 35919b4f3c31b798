"""Fixtures for the object-storage tests: a real S3 server (moto, loopback) and roots on it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg2
import pytest

from marketdata_assets_tests.s3 import MotoS3, moto_s3_server

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=5"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test database, for the object-store month locks; missing: fails in CI, skips elsewhere."""
    try:
        psycopg2.connect(PG_DSN).close()
    except psycopg2.OperationalError as exc:
        message = f"PostgreSQL on 127.0.0.1:5432 is not reachable: {str(exc).strip()}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return PG_DSN


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """One moto S3 server for the session (tests isolate themselves by prefix)."""
    with moto_s3_server() as server:
        yield server


@pytest.fixture
def s3_env(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    """Point the standard AWS variables at the server for this test (restored afterwards).

    Variables that would override them (a profile, a session token, an S3-specific endpoint) are
    removed for the test, so a developer's own AWS setup never leaks in; so are the lock-database
    variables (tests that want cross-process locks pass ``lock_dsn`` or set them).
    """
    for name in (
        "AWS_ENDPOINT_URL_S3",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "MARKETDATA_LOCK_DSN",
        "DAGSTER_PG_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    return moto_s3


@pytest.fixture
def s3_root_uri(s3_env: MotoS3) -> str:
    """A fresh, empty ``s3://bucket/prefix`` root with the environment pointing at the server."""
    return s3_env.new_prefix_uri()
