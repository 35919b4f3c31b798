"""Deribit v2 JSON-RPC over HTTP GET: ``/api/v2/public/get_volatility_index_data`` (+ ``get_time``, ``test``).

``currency`` (BTC, ETH, or a replayed currency), ``start_timestamp`` and ``end_timestamp`` (ms, both
inclusive on the bucket timestamp) and ``resolution`` (``1``, ``60``, ``3600``, ``43200`` seconds or
``1D``) are required. ``60`` is 1-minute DVOL; the model's finest granularity is one minute, so
``1`` serves those same minute points (real Deribit would answer one point per second). The answer holds at most 1000 ``[ts, open, high, low, close]`` rows, oldest
first; when the range holds more, they are the *newest* 1000 and ``continuation`` is the timestamp
of the newest bucket left out: pass it as the next ``end_timestamp`` to page backwards (no overlap,
no gap); ``null`` when done. Errors are JSON-RPC errors: bad parameters HTTP 400 ``-32602``,
rate limit HTTP 429 ``10028 too_many_requests`` (what an httpx user sees: status 429 and that
body), maintenance HTTP 503 ``11051 system_maintenance``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..core import Simulator
from ..limits import Decision
from ..wire import BadParam, Reply, int_param, json_reply, reorder, route

PREFIX = "/api/v2/public/"
ENDPOINTS = ("get_volatility_index_data", "get_time", "test")
RESOLUTIONS_S = {"1": 1, "60": 60, "3600": 3600, "43200": 43200, "1D": 86400, "86400": 86400}
MAX_ROWS = 1000


class DeribitApi:
    name = "deribit"

    def endpoint(self, path: str) -> str | None:
        return route(path, PREFIX, ENDPOINTS)

    def instrument(self, endpoint: str, query: dict[str, str], sim: Simulator) -> str | None:
        return (query.get("currency") or "").upper() or None

    def envelope(self, sim: Simulator, started: float, **body: Any) -> dict[str, Any]:
        us_in = sim.now_ms() * 1000
        us_diff = max(1, int((time.perf_counter() - started) * 1_000_000))
        return {
            "jsonrpc": "2.0",
            **body,
            "usIn": us_in,
            "usOut": us_in + us_diff,
            "usDiff": us_diff,
            "testnet": False,
        }

    def _error(self, sim: Simulator, code: int, message: str, status: int, data: Any = None) -> Reply:
        error: dict[str, Any] = {"message": message, "code": code}
        if data is not None:
            error["data"] = data
        return json_reply(self.envelope(sim, time.perf_counter(), error=error), status)

    def _invalid(self, sim: Simulator, param: str, reason: str) -> Reply:
        return self._error(sim, -32602, "Invalid params", 400, {"reason": reason, "param": param})

    def handle(self, endpoint: str, query: dict[str, str], sim: Simulator) -> Reply:
        started = time.perf_counter()
        if endpoint == "get_time":
            return json_reply(self.envelope(sim, started, result=sim.now_ms()))
        if endpoint == "test":
            return json_reply(self.envelope(sim, started, result={"version": "1.2.26"}))
        currency = (query.get("currency") or "").upper()
        if not currency:
            return self._invalid(sim, "currency", "missing")
        if currency not in sim.dvol_currencies():
            return self._invalid(
                sim, "currency", f"must be one of the following: {', '.join(sim.dvol_currencies())}"
            )
        for name in ("start_timestamp", "end_timestamp", "resolution"):
            if not query.get(name):
                return self._invalid(sim, name, "missing")
        resolution = RESOLUTIONS_S.get(query["resolution"])
        if resolution is None:
            return self._invalid(sim, "resolution", "must be one of the following: 1, 60, 3600, 43200, 1D")
        try:
            start = int_param(query, "start_timestamp")
            end = int_param(query, "end_timestamp")
        except BadParam as exc:
            return self._invalid(sim, str(exc), "wrong format")
        assert start is not None and end is not None
        page = sim.dvol_page(currency, start, end, resolution * 1000, MAX_ROWS)
        r = page.rows
        values = [
            [None if math.isnan(v) else round(v, 2) for v in col.tolist()]
            for col in (r.open, r.high, r.low, r.close)
        ]
        data = [[ts, *(col[i] for col in values)] for i, ts in enumerate(r.ts.tolist())]
        reply = json_reply(
            self.envelope(
                sim, started, result={"data": reorder(data, page.order), "continuation": page.continuation}
            )
        )
        reply.rows = len(data)
        return reply

    # -- errors -----------------------------------------------------------------------------

    def limit_reply(self, decision: Decision, ip: str, sim: Simulator) -> Reply:
        return self._error(sim, 10028, "too_many_requests", 429)

    def maintenance_reply(self, sim: Simulator) -> Reply:
        return self._error(sim, 11051, "system_maintenance", 503)

    def error_reply(self, status: int, sim: Simulator) -> Reply:
        return self._error(sim, 11094, "internal_server_error", status)

    def not_found(self, path: str, sim: Simulator) -> Reply:
        return self._error(sim, -32601, "Method not found", 400)

    def decorate(self, reply: Reply, decision: Decision) -> Reply:
        return reply
