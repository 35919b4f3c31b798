"""Bybit v5 REST: ``/v5/market/time``, ``/v5/market/instruments-info``, ``/v5/market/kline``.

Kline: ``category=spot`` (missing means ``linear``, which lists nothing here), ``symbol``,
``interval=1``; ``start``/``end`` in ms (the candle containing ``start`` is included, ``end`` is
inclusive on open time); ``limit`` default 200, capped at 1000. Newest first, rows of seven
strings ``[startTime, open, high, low, close, volume, turnover]``. With ``start`` the page holds the
oldest ``limit`` rows from it, otherwise the newest up to ``end`` (or now). Minutes without a
trade are absent. Errors are HTTP 200 with a non-zero ``retCode`` (10001 parameter errors).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketdata_assets.frames import MINUTE_MS, symbol_key

from ..config import served_status
from ..core import Simulator
from ..limits import Decision
from ..wire import (
    BadParam,
    Reply,
    int_param,
    json_reply,
    listed_ids,
    listed_instrument,
    reorder,
    route,
    text_reply,
    trimmed,
)

PREFIX = "/v5/market/"
ENDPOINTS = ("time", "instruments-info", "kline")
CATEGORIES = ("spot", "linear", "inverse", "option")
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
# instruments-info ``status`` (PreLaunch, Trading, Settling, Delivering, Closed): spot has no halt
# state of its own, so a halted pair is served as not-yet/no-longer trading, PreLaunch.
RAW_STATUS = {"trading": "Trading", "halted": "PreLaunch", "delisted": "Closed"}


def _num(value: float, decimals: int = 8) -> str:
    return trimmed(np.array([value]), decimals)[0]


class BybitApi:
    name = "bybit"

    def endpoint(self, path: str) -> str | None:
        return route(path, PREFIX, ENDPOINTS)

    def instrument(self, endpoint: str, query: dict[str, str], sim: Simulator) -> str | None:
        return listed_instrument(self._symbols(sim), query.get("symbol"))

    def _symbols(self, sim: Simulator) -> dict[str, str]:
        return listed_ids(sim, self.name, symbol_key)

    def envelope(self, sim: Simulator, result: Any, code: int = 0, msg: str = "OK") -> dict[str, Any]:
        return {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": sim.now_ms()}

    def _error(self, sim: Simulator, code: int, msg: str, status: int = 200) -> Reply:
        return json_reply(self.envelope(sim, {}, code, msg), status)

    def handle(self, endpoint: str, query: dict[str, str], sim: Simulator) -> Reply:
        if endpoint == "time":
            now = sim.now_ms()
            return json_reply(
                self.envelope(sim, {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})
            )
        if endpoint == "instruments-info":
            return self._instruments(query, sim)
        return self._kline(query, sim)

    def _instruments(self, query: dict[str, str], sim: Simulator) -> Reply:
        category = query.get("category")
        if category not in CATEGORIES:
            return self._error(sim, 10001, "Illegal category")
        entries = []
        if category == "spot":
            wanted = (query.get("symbol") or "").upper()
            base = (query.get("baseCoin") or "").upper()
            for listing in sim.listings(self.name):
                market_id = symbol_key(listing.symbol)
                if (wanted and market_id != wanted) or (base and listing.base != base):
                    continue
                entries.append(
                    {
                        "symbol": market_id,
                        "baseCoin": listing.base,
                        "quoteCoin": listing.quote,
                        "innovation": "0",
                        "status": served_status(sim.config, self.name, listing.symbol, RAW_STATUS),
                        "marginTrading": "none",
                        "stTag": "0",
                        "lotSizeFilter": {
                            "basePrecision": _num(listing.lot),
                            "quotePrecision": "0.00000001",
                            "minOrderQty": _num(listing.min_qty),
                            "maxOrderQty": "9000000",
                            "minOrderAmt": _num(max(listing.min_notional, 1.0)),
                            "maxOrderAmt": "4000000",
                        },
                        "priceFilter": {"tickSize": _num(listing.tick)},
                        "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
                    }
                )
            if wanted and not entries:
                return self._error(sim, 10001, "Not supported symbols")
        return json_reply(self.envelope(sim, {"category": category, "list": entries, "nextPageCursor": ""}))

    def _kline(self, query: dict[str, str], sim: Simulator) -> Reply:
        category = query.get("category") or "linear"
        if category not in CATEGORIES:
            return self._error(sim, 10001, "Illegal category")
        if category == "option":
            return self._error(sim, 10001, "Not supported category")
        market_id = (query.get("symbol") or "").upper()
        symbol = self._symbols(sim).get(market_id) if category == "spot" else None
        if symbol is None:
            return self._error(sim, 10001, "Not supported symbols")
        if query.get("interval") != "1":
            return self._error(sim, 10001, "Invalid period!")
        try:
            limit = int_param(query, "limit", DEFAULT_LIMIT)
            start = int_param(query, "start")
            end = int_param(query, "end")
        except BadParam as exc:
            return self._error(sim, 10001, f"params error: {exc} invalid")
        assert limit is not None
        if limit < 1:
            return self._error(sim, 10001, "params error: limit invalid")
        lo = None if start is None else (start // MINUTE_MS) * MINUTE_MS
        if lo is not None and end is not None and lo > end:
            rows: list[list[str]] = []
            order = None
        else:
            page = sim.candle_page(
                self.name,
                "kline",
                symbol,
                lo,
                end,
                min(limit, MAX_LIMIT),
                anchor="start" if lo is not None else "end",
            )
            c = page.candles
            pd_, vd = c.price_decimals, c.volume_decimals
            columns = [
                trimmed(c.open, pd_),
                trimmed(c.high, pd_),
                trimmed(c.low, pd_),
                trimmed(c.close, pd_),
                trimmed(c.volume, vd),
                trimmed(c.quote_volume, 8),
            ]
            rows = [[str(ts), *(col[i] for col in columns)] for i, ts in enumerate(c.ts.tolist())]
            rows.reverse()
            order = page.order
        reply = json_reply(
            self.envelope(sim, {"symbol": market_id, "category": category, "list": reorder(rows, order)})
        )
        reply.rows = len(rows)
        return reply

    # -- errors -----------------------------------------------------------------------------

    def limit_reply(self, decision: Decision, ip: str, sim: Simulator) -> Reply:
        if decision.breach == "403":
            return text_reply("access too frequent", 403)
        return self._error(sim, 10006, "Too many visits. Exceeded the API Rate Limit.")

    def maintenance_reply(self, sim: Simulator) -> Reply:
        return self._error(sim, 10016, "Service is under maintenance, please try again later.", 503)

    def error_reply(self, status: int, sim: Simulator) -> Reply:
        return self._error(sim, 10016, "Internal server error.", status)

    def not_found(self, path: str, sim: Simulator) -> Reply:
        return text_reply("404 page not found", 404)

    def decorate(self, reply: Reply, decision: Decision) -> Reply:
        return reply
