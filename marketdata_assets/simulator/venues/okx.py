"""OKX v5 REST: ``/api/v5/public/time``, ``/public/instruments``, ``/market/candles``, ``/market/history-candles``.

Candles: ``instId`` (``BTC-USDT``), ``bar=1m`` (default); ``after`` = rows *older* than this ts,
``before`` = rows *newer* than this ts (both exclusive); a page always holds the newest ``limit``
rows of that range (newest first). ``candles``: default 100, max 300, and only the latest 1440
candles are reachable (open time >= current minute - 1439 min); ``history-candles``: default 100,
max 100, full history. Larger ``limit`` values are capped, not rejected. Rows are nine strings
``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`` (spot: ``vol`` in base, the other two in
quote currency; ``confirm`` is ``"0"`` for the still-open candle). Minutes without a trade are
absent. Errors: HTTP 200 with ``{"code": "51001", "msg": ..., "data": []}`` and friends.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketdata_assets.frames import MINUTE_MS

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
    text_reply,
    trimmed,
)

ENDPOINT_PATHS = {
    "/api/v5/public/time": "time",
    "/api/v5/public/instruments": "instruments",
    "/api/v5/market/candles": "candles",
    "/api/v5/market/history-candles": "history-candles",
}
LIMITS = {"candles": (100, 300), "history-candles": (100, 100)}
RECENT_CANDLES = 1440
INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")
# public/instruments ``state`` (live, suspend, preopen, test); a delisted pair leaves the list.
RAW_STATUS = {"trading": "live", "halted": "suspend", "delisted": None}


def inst_id(symbol: str) -> str:
    return symbol.replace("/", "-")


def _num(value: float, decimals: int = 8) -> str:
    return trimmed(np.array([value]), decimals)[0]


def _error(code: str, msg: str, status: int = 200) -> Reply:
    return json_reply({"code": code, "msg": msg, "data": []}, status)


class OkxApi:
    name = "okx"

    def endpoint(self, path: str) -> str | None:
        return ENDPOINT_PATHS.get(path)

    def instrument(self, endpoint: str, query: dict[str, str], sim: Simulator) -> str | None:
        return listed_instrument(self._symbols(sim), query.get("instId"))

    def _symbols(self, sim: Simulator) -> dict[str, str]:
        return listed_ids(sim, self.name, inst_id)

    def handle(self, endpoint: str, query: dict[str, str], sim: Simulator) -> Reply:
        if endpoint == "time":
            return json_reply({"code": "0", "msg": "", "data": [{"ts": str(sim.now_ms())}]})
        if endpoint == "instruments":
            return self._instruments(query, sim)
        return self._candles(endpoint, query, sim)

    def _instruments(self, query: dict[str, str], sim: Simulator) -> Reply:
        inst_type = (query.get("instType") or "").upper()
        if not inst_type:
            return _error("50014", "Parameter instType can not be empty.")
        if inst_type not in INST_TYPES:
            return _error("51000", "Parameter instType error")
        data: list[dict[str, Any]] = []
        if inst_type == "SPOT":
            wanted = (query.get("instId") or "").upper()
            for listing in sim.listings(self.name):
                if wanted and inst_id(listing.symbol) != wanted:
                    continue
                state = served_status(sim.config, self.name, listing.symbol, RAW_STATUS)
                if state is None:
                    continue
                data.append(
                    {
                        "alias": "",
                        "auctionEndTime": "",
                        "baseCcy": listing.base,
                        "category": "1",
                        "ctMult": "",
                        "ctType": "",
                        "ctVal": "",
                        "ctValCcy": "",
                        "expTime": "",
                        "instFamily": "",
                        "instId": inst_id(listing.symbol),
                        "instType": "SPOT",
                        "lever": "10",
                        "listTime": str(listing.listed_ms),
                        "lotSz": _num(listing.lot),
                        "maxIcebergSz": "9999999999.0000000000000000",
                        "maxLmtAmt": "20000000",
                        "maxLmtSz": "9999999999",
                        "maxMktAmt": "1000000",
                        "maxMktSz": "1000000",
                        "maxStopSz": "1000000",
                        "maxTriggerSz": "9999999999.0000000000000000",
                        "maxTwapSz": "9999999999.0000000000000000",
                        "minSz": _num(listing.min_qty),
                        "optType": "",
                        "quoteCcy": listing.quote,
                        "ruleType": "normal",
                        "settleCcy": "",
                        "state": state,
                        "stk": "",
                        "tickSz": _num(listing.tick),
                        "uly": "",
                    }
                )
            if wanted and not data:
                return _error("51001", "Instrument ID does not exist")
        return json_reply({"code": "0", "msg": "", "data": data})

    def _candles(self, endpoint: str, query: dict[str, str], sim: Simulator) -> Reply:
        raw_id = (query.get("instId") or "").upper()
        if not raw_id:
            return _error("50014", "Parameter instId can not be empty.")
        symbol = self._symbols(sim).get(raw_id)
        if symbol is None:
            return _error("51001", "Instrument ID does not exist")
        if query.get("bar", "1m") != "1m":
            return _error("51000", "Parameter bar error")
        default_limit, max_limit = LIMITS[endpoint]
        try:
            limit = int_param(query, "limit", default_limit)
            after = int_param(query, "after")
            before = int_param(query, "before")
        except BadParam as exc:
            return _error("51000", f"Parameter {exc} error")
        assert limit is not None
        if limit < 1:
            return _error("51000", "Parameter limit error")
        now = sim.now_ms()
        current = (now // MINUTE_MS) * MINUTE_MS
        floor = current - (RECENT_CANDLES - 1) * MINUTE_MS if endpoint == "candles" else None
        lo = None if before is None else before + 1
        hi = None if after is None else after - 1
        if lo is not None and hi is not None and lo > hi:
            rows: list[list[str]] = []
            order = None
        else:
            page = sim.candle_page(
                self.name, endpoint, symbol, lo, hi, min(limit, max_limit), anchor="end", floor_ms=floor
            )
            c = page.candles
            pd_, vd = c.price_decimals, c.volume_decimals
            quote = trimmed(c.quote_volume, 8)
            columns = [
                trimmed(c.open, pd_),
                trimmed(c.high, pd_),
                trimmed(c.low, pd_),
                trimmed(c.close, pd_),
                trimmed(c.volume, vd),
            ]
            rows = [
                [str(ts), *(col[i] for col in columns), quote[i], quote[i], "0" if ts == current else "1"]
                for i, ts in enumerate(c.ts.tolist())
            ]
            rows.reverse()
            order = page.order
        reply = json_reply({"code": "0", "msg": "", "data": reorder(rows, order)})
        reply.rows = len(rows)
        return reply

    # -- errors -----------------------------------------------------------------------------

    def limit_reply(self, decision: Decision, ip: str, sim: Simulator) -> Reply:
        return json_reply({"msg": "Too Many Requests", "code": "50011"}, 429)

    def maintenance_reply(self, sim: Simulator) -> Reply:
        return _error("50001", "Service temporarily unavailable. Please try again later.", 503)

    def error_reply(self, status: int, sim: Simulator) -> Reply:
        return _error("50026", "System error. Try again later.", status)

    def not_found(self, path: str, sim: Simulator) -> Reply:
        return text_reply("Not Found", 404)

    def decorate(self, reply: Reply, decision: Decision) -> Reply:
        return reply
