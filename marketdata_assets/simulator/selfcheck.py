"""``marketdata-sim --self-check``: the simulator, stock ccxt and httpx agree on a full day.

Starts a simulator on a free loopback port, then fetches yesterday (UTC) of BTC/USDT 1m from
Binance, Bybit and OKX through plain ccxt clients (:func:`make_ccxt_exchange`, with a simple
cursor pagination of its own) and a day of BTC DVOL from Deribit through httpx (paging backwards
with ``continuation``), and checks each gives 1440 closed rows in order, one per minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from marketdata_assets.frames import DAY_MS, MINUTE_MS, day_bounds_ms
from marketdata_assets.venues.endpoints import make_ccxt_exchange

from .config import SimulatorConfig
from .server import SimulatorServer

PAGE = {"binance": 1000, "bybit": 1000, "okx": 100}


def window_params(venue: str, cursor: int, window_end: int) -> dict[str, Any]:
    """Venue parameters that ask for exactly ``[cursor, window_end)``."""
    if venue == "binance":
        return {"endTime": window_end - 1}
    if venue == "bybit":
        return {"end": window_end - 1}
    return {"type": "HistoryCandles", "before": cursor - 1, "after": window_end}


@dataclass
class CheckResult:
    venue: str
    ok: bool
    rows: int
    requests: int
    seconds: float
    problem: str = ""


def _check_minutes(timestamps: list[int], day_start: int, now_ms: int) -> str:
    if len(timestamps) != 1440:
        return f"{len(timestamps)} rows, expected 1440"
    expected = list(range(day_start, day_start + DAY_MS, MINUTE_MS))
    if timestamps != expected:
        return "rows are not one per minute in ascending order"
    if timestamps[-1] + MINUTE_MS > now_ms:
        return "the last row is not closed"
    return ""


def check_ccxt_day(venue: str, base_url: str, day_start: int, now_ms: int) -> CheckResult:
    started = time.monotonic()
    exchange = make_ccxt_exchange(venue, base_url)
    leaks = [url for url in _all_urls(exchange.urls["api"]) if not url.startswith(base_url)]
    if leaks:
        return CheckResult(venue, False, 0, 0, 0.0, f"ccxt URLs not pointed at the simulator: {leaks[:3]}")
    requests = 1
    exchange.load_markets()
    rows: list[list[Any]] = []
    cursor, day_end = day_start, day_start + DAY_MS
    while cursor < day_end:
        window_end = min(cursor + PAGE[venue] * MINUTE_MS, day_end)
        page = exchange.fetch_ohlcv(
            "BTC/USDT", "1m", since=cursor, limit=PAGE[venue], params=window_params(venue, cursor, window_end)
        )
        requests += 1
        rows.extend(page)
        cursor = page[-1][0] + MINUTE_MS if page and page[-1][0] >= cursor else window_end
    problem = _check_minutes([int(r[0]) for r in rows], day_start, now_ms)
    return CheckResult(venue, not problem, len(rows), requests, time.monotonic() - started, problem)


def _all_urls(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [u for v in value.values() for u in _all_urls(v)]
    return []


def check_dvol_day(base_url: str, day_start: int, now_ms: int) -> CheckResult:
    import httpx

    started = time.monotonic()
    rows: list[list[Any]] = []
    requests = 0
    end: int | None = day_start + DAY_MS - 1
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        while end is not None:
            answer = client.get(
                "/api/v2/public/get_volatility_index_data",
                params={
                    "currency": "BTC",
                    "start_timestamp": day_start,
                    "end_timestamp": end,
                    "resolution": "60",
                },
            )
            requests += 1
            answer.raise_for_status()
            result = answer.json()["result"]
            rows = result["data"] + rows
            end = result["continuation"]
    problem = _check_minutes([int(r[0]) for r in rows], day_start, now_ms)
    return CheckResult("deribit", not problem, len(rows), requests, time.monotonic() - started, problem)


def run_self_check(config: SimulatorConfig | None = None, out: TextIO | None = None) -> bool:
    """Run every check against a fresh simulator; print a report to ``out``; True when all pass."""
    import sys

    out = out or sys.stdout
    config = config or SimulatorConfig()
    with SimulatorServer(config) as server:
        now_ms = server.now_ms()
        yesterday = (datetime.fromtimestamp(now_ms / 1000, tz=UTC) - timedelta(days=1)).date()
        day_start, _ = day_bounds_ms(yesterday)
        print(f"self-check: simulator at {server.url}, day {yesterday.isoformat()} (UTC)", file=out)
        checks: list[tuple[str, Callable[[], CheckResult]]] = [
            *((v, lambda v=v: check_ccxt_day(v, server.venue_base_url(v), day_start, now_ms)) for v in PAGE),
            ("deribit", lambda: check_dvol_day(server.venue_base_url("deribit"), day_start, now_ms)),
        ]
        results = []
        for venue, check in checks:
            try:
                result = check()
            except Exception as exc:  # noqa: BLE001 - a failing check is reported, not raised
                result = CheckResult(venue, False, 0, 0, 0.0, f"{type(exc).__name__}: {exc}")
            results.append(result)
            verdict = "ok  " if result.ok else "FAIL"
            what = "BTC DVOL 1m" if result.venue == "deribit" else "BTC/USDT 1m"
            detail = f"  -- {result.problem}" if result.problem else ""
            print(
                f"  {verdict} {result.venue:<8} {what}: {result.rows} rows, {result.requests} requests, "
                f"{result.seconds:.2f} s{detail}",
                file=out,
            )
        ok = all(r.ok for r in results)
        print("self-check passed" if ok else "self-check FAILED", file=out)
        return ok
