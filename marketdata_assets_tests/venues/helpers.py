"""Shared bits of the venue tests: a fast retry policy, minute arithmetic, simulator stats lookups."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pandas as pd

from marketdata_assets.frames import MINUTE_MS, day_bounds_ms
from marketdata_assets.venues.retry import RetryPolicy

DAY = date(2024, 3, 5)

# Small delays so retry tests stay fast; the waits a venue asks for (Retry-After) are still honoured.
FAST_RETRY = RetryPolicy(
    max_retries=6, base_delay_s=0.05, max_delay_s=0.5, total_budget_s=30.0, max_ban_wait_s=10.0
)

PATHS = {
    "binance": "/binance/api/v3/klines",
    "bybit": "/bybit/v5/market/kline",
    "okx": "/okx/api/v5/market/history-candles",
}


def at(day: date, hh: int, mm: int, ss: int = 0) -> float:
    """Epoch seconds of ``day hh:mm:ss`` UTC."""
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC).timestamp()


def minute_index(frame: pd.DataFrame, day: date) -> list[int]:
    """Minute-of-day of each row, in frame order."""
    start, _ = day_bounds_ms(day)
    ms = frame["timestamp"].astype("int64").to_numpy()
    return [int((t - start) // MINUTE_MS) for t in ms]


def venue_stats(sim: Any, venue: str) -> dict[str, Any]:
    return sim.stats()["venues"][venue]


def breaches(sim: Any, venue: str) -> dict[str, int]:
    return dict(venue_stats(sim, venue)["limit_breaches_by_kind"])


class CorruptingProxy:
    """A loopback HTTP proxy in front of the simulator that rewrites chosen answers.

    The simulator's faults answer broken bodies with error statuses; a venue that says ``200`` and
    then sends garbage (non-JSON, a row with a field missing, a bad continuation) needs this. Real
    sockets both ways: the clients under test are not mocked. ``rewrite(path, status, body)``
    returns the body to send (or ``None`` to pass the answer through); ``budget`` limits how many
    answers are rewritten.
    """

    def __init__(
        self,
        upstream: str,
        rewrite: Callable[[str, int, bytes], bytes | None],
        budget: int | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite = rewrite
        self.budget = budget
        self.rewritten = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                with httpx.Client() as client:
                    answer = client.get(proxy.upstream + self.path)
                body = answer.content
                with proxy._lock:
                    if proxy.budget is None or proxy.rewritten < proxy.budget:
                        new = proxy.rewrite(self.path, answer.status_code, body)
                        if new is not None:
                            proxy.rewritten += 1
                            body = new
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CorruptingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
