"""Fixtures of the simulator tests: a fixed clock, a read-only server on it, an HTTP client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import ModuleType

import httpx
import pytest

from marketdata_assets.frames import DAY_MS, MINUTE_MS
from marketdata_assets.simulator import SimulatorConfig, SimulatorServer

# Sunday 2024-03-10 12:34:30.5 UTC: the still-open candle is 12:34, half filled.
NOW_S = datetime(2024, 3, 10, 12, 34, 30, 500000, tzinfo=UTC).timestamp()
NOW_MS = int(NOW_S * 1000)
CURRENT_MS = NOW_MS // MINUTE_MS * MINUTE_MS
TODAY_MS = NOW_MS // DAY_MS * DAY_MS
YESTERDAY_MS = TODAY_MS - DAY_MS

MakeSimulator = Callable[..., SimulatorServer]  # the top-level ``make_simulator`` fixture


class ManualClock:
    """A clock tests move by hand (epoch seconds)."""

    def __init__(self, now_s: float = NOW_S) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture(scope="module")
def fixed_sim() -> Iterator[SimulatorServer]:
    """Read-only server frozen at ``NOW_S`` (limits off). Add no faults to it."""
    with SimulatorServer(SimulatorConfig(seed=3, limits_enabled=False, clock=lambda: NOW_S)) as server:
        yield server


@pytest.fixture(scope="module")
def http(fixed_sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fixed_sim.url, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="session")
def ccxt_lib() -> ModuleType:
    """ccxt, imported once (about four seconds)."""
    import ccxt

    return ccxt
