"""Three runs, three processes, one venue: the shared limiter keeps them inside the venue's real limits.

Each worker is a separate Python process (``limits_worker.serve_jobs``, forked from a fork server
that imported ccxt once) that builds its candle source from ``VenueSettings`` the way a run does and fetches several days of its own symbol, all three starting
at the same moment against one simulator with limits ON. With the shared limiter the simulator
records no breach and no ban; the same three runs with the limiter switched off in the settings
(each process paced only by ccxt and its own ``rate_limit_ms``) do breach, so the test proves the
limiter is what keeps them inside.

OKX runs at its literal published limit (history-candles 20 per 2 s); Binance and Bybit, whose real
windows are long, run with the simulator's limits scaled down and the same numbers in the settings
(``shared_rate_limit.limit`` / ``window_s``), with their real breach rules (Binance 429 then 418,
Bybit 10006 on HTTP 200 then 403).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from marketdata_assets.simulator import SimulatorServer

from .helpers import venue_stats
from .limits_worker import serve_jobs

pytestmark = pytest.mark.e2e

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")  # the nightly run, the gap sensor, a UI backfill
FIRST_DAY = date(2024, 3, 1)

# venue -> simulator limit scaling, the same limits in the settings, days per run
CASES: dict[str, dict[str, Any]] = {
    "okx": {"sim": {}, "limits": {}, "days": 1},  # real: 20 history-candles per 2 s, 15 pages a day
    "binance": {  # 120 weight per 1.5 s (6000 / 60 s scaled); 2 klines pages (weight 2) a day
        "sim": {"limit_scale": 0.02, "window_scale": 0.025},
        "limits": {"limit": 120, "window_s": 1.5},
        "days": 10,
    },
    "bybit": {  # 24 requests per 2 s (600 / 5 s scaled); 2 pages a day
        "sim": {"limit_scale": 0.04, "window_scale": 0.4},
        "limits": {"limit": 24, "window_s": 2.0},
        "days": 6,
    },
}


# What a run's process has imported before it fetches; the fork server imports it once for all three.
PRELOAD = [
    "ccxt",
    "marketdata_assets.settings",
    "marketdata_assets.venues.ccxt_venue",
    "marketdata_assets.venues.registry",
    "marketdata_assets_tests.venues.limits_worker",
]


class Worker:
    """One worker process (forked from a preloaded fork server: a separate process, pid and ccxt)."""

    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve_jobs, args=(child,), daemon=True)
        self.proc.start()
        child.close()

    def read(self, timeout: float) -> dict[str, Any]:
        if not self.conn.poll(timeout):
            raise AssertionError(f"worker {self.proc.pid} said nothing for {timeout:.0f}s")
        try:
            return self.conn.recv()
        except EOFError:
            raise AssertionError(f"worker {self.proc.pid} exited with {self.proc.exitcode}") from None

    def send(self, job: dict[str, Any]) -> None:
        self.conn.send(job)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()


@pytest.fixture(scope="module")
def workers() -> Iterator[list[Worker]]:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    started = [Worker(ctx) for _ in SYMBOLS]
    try:
        pids = {worker.read(timeout=90)["ready"] for worker in started}
        assert len(pids | {os.getpid()}) == 4  # three processes of their own
        yield started
    finally:
        for worker in started:
            worker.stop()


def run_three(
    workers: list[Worker],
    sim: SimulatorServer,
    venue: str,
    *,
    state_dir: Path,
    shared_rate_limit: dict[str, Any],
    days: int,
    max_retries: int = 8,
    stop_file: Path | None = None,
) -> list[dict[str, Any]]:
    """The three runs at once: each worker fetches ``days`` days of its own symbol.

    With ``stop_file``, the first limit breach the simulator records ends the runs (each finishes
    the day it is on): enough to show the breach without sitting out the back-offs that follow.
    """
    start_at = time.time() + 0.5
    for worker, symbol in zip(workers, SYMBOLS, strict=True):
        settings = {
            "symbols": list(SYMBOLS),
            "start_date": FIRST_DAY.isoformat(),
            "base_url": sim.venue_base_url(venue),
            "rate_limit_ms": 20,
            "timeout_ms": 5000,
            "max_retries": max_retries,
            "shared_rate_limit": shared_rate_limit,
        }
        wanted = [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(days)]
        job = {"venue": venue, "settings": settings, "symbol": symbol, "days": wanted, "start_at": start_at}
        worker.send({**job, "state_dir": str(state_dir), "stop_file": str(stop_file) if stop_file else None})
    deadline = time.monotonic() + 60
    while stop_file is not None and not stop_file.exists() and time.monotonic() < deadline:
        if venue_stats(sim, venue)["limit_breaches"] or all(w.conn.poll() for w in workers):
            stop_file.touch()
        time.sleep(0.02)
    return [worker.read(timeout=60) for worker in workers]


@pytest.mark.parametrize("venue", list(CASES))
def test_three_concurrent_runs_stay_within_the_venues_limits(
    venue: str, workers: list[Worker], make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    case = CASES[venue]

    # without the shared limiter: the same three runs breach the venue's limit
    unshared = make_simulator(seed=7, ban_scale=0.01, **case["sim"])
    run_three(
        workers,
        unshared,
        venue,
        state_dir=tmp_path / "state",
        shared_rate_limit={"enabled": False, **case["limits"]},
        days=case["days"],
        max_retries=0,
        stop_file=tmp_path / "stop",
    )
    assert venue_stats(unshared, venue)["limit_breaches"] > 0, "the test would prove nothing"

    # with it: every day complete, and the venue never had to say no
    shared = make_simulator(seed=7, ban_scale=0.01, **case["sim"])
    results = run_three(
        workers,
        shared,
        venue,
        state_dir=tmp_path / "state",
        shared_rate_limit=dict(case["limits"]),
        days=case["days"],
    )
    assert max(r["started"] for r in results) < min(r["ended"] for r in results)  # all three at once
    stats = venue_stats(shared, venue)
    assert stats["limit_breaches"] == 0, stats["limit_breaches_by_kind"]
    assert stats["bans_active"] == []
    for result in results:
        assert [d["error"] for d in result["days"]] == [None] * case["days"]
        # every minute of the day, but for the minutes without trades that OKX and Bybit omit
        # (the simulator's ETH and SOL have a few): a lost page would be 100 minutes or more
        assert all(d["rows"] >= 1400 for d in result["days"]), result["days"]
        assert sum(d["rate_limited"] for d in result["days"]) == 0
    pages = sum(d["requests"] for r in results for d in r["days"])
    assert stats["requests"] == pages + 3  # + one load_markets per run: nothing else was sent
