"""Fixtures of the live-service tests: one manual clock shared by the simulator and the service, the
real Redis on 127.0.0.1:6379 (a unique stream prefix per test, deleted after it), settings files.

Redis unreachable: the test fails in CI (``CI=true``) and is skipped elsewhere, with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from marketdata_assets.live.events import RedisStreamPublisher
from marketdata_assets.live.server import LiveServer, build_service
from marketdata_assets.settings import load_settings
from marketdata_assets.simulator import SimulatorServer

REDIS_URL = os.environ.get("MARKETDATA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class ManualClock:
    """Epoch seconds that only move when a test says so (the simulator's "now" and the service's)."""

    def __init__(self, start: datetime) -> None:
        self.now_s = start.timestamp()

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique stream prefix on the real Redis; every stream under it is deleted after the test."""
    prefix = f"mdtest:{uuid.uuid4().hex[:12]}:"
    publisher = RedisStreamPublisher(REDIS_URL, prefix=prefix)
    try:
        publisher.ping()
    except Exception as exc:  # noqa: BLE001
        reason = f"Redis at {REDIS_URL} is not reachable ({type(exc).__name__}: {exc})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    yield prefix
    publisher.delete_prefix()
    publisher.close()


def write_settings(
    path: Path, sim: SimulatorServer, series: dict[str, list[str]], *, redis: bool, **live: Any
) -> Path:
    doc = {
        "environment": "test",
        "synthetic": True,
        "storage": {"root": str(path.parent / "data")},
        "venues": {
            venue: {
                "symbols": symbols,
                "start_date": "2024-01-01",
                "base_url": sim.venue_base_url(venue),
                "rate_limit_ms": 1,
                "max_retries": 1,
            }
            for venue, symbols in series.items()
        },
        "live": {
            "buffer_length": 100,
            "history_days": 0,
            "poll_delay_s": 0,
            "max_retries": 1,
            "events": {"backend": "redis" if redis else "memory", "redis_url": REDIS_URL},
            **live,
        },
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def make_live(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``make_live(sim, clock, series, redis_prefix=None, **live_settings)``: a started LiveServer over
    real HTTP on an ephemeral port, polled by hand; stopped after the test."""
    servers: list[LiveServer] = []

    def factory(
        sim: SimulatorServer,
        clock: ManualClock,
        series: dict[str, list[str]],
        redis_prefix: str | None = None,
        **live: Any,
    ) -> LiveServer:
        config = write_settings(
            tmp_path / f"live{len(servers)}.yaml", sim, series, redis=redis_prefix is not None, **live
        )
        service = build_service(load_settings(config, environ={}), clock=clock, stream_prefix=redis_prefix)
        server = LiveServer(service, auto_poll=False).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
