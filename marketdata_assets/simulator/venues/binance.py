"""Binance spot REST: ``/api/v3/ping``, ``/time``, ``/exchangeInfo``, ``/klines`` (and ``/uiKlines``).

A stock ccxt client also loads USD-M and COIN-M futures markets by default (``/fapi/v1/exchangeInfo``,
``/dapi/v1/exchangeInfo``) and options with ``loadAllOptions`` (``/eapi/v1/exchangeInfo``). Those
hosts list nothing here: their ``exchangeInfo`` has the real shape with an empty ``symbols``
(``optionSymbols``) list, and ``ping``/``time`` answer; any other derivatives path is a 404.
Their endpoints are counted as ``fapi/exchangeInfo``, ``dapi/time`` and so on.

Klines: ``symbol`` and ``interval=1m`` required; ``startTime``/``endTime`` inclusive on open time;
``limit`` default 500, capped at 1000; oldest first. With ``startTime`` the page holds the oldest
``limit`` rows from it, otherwise the newest up to ``endTime`` (or now). Rows are the 12-field
arrays of the real API (prices and volumes as 8-decimal strings). Errors are HTTP 400 with
``{"code": -11xx, "msg": ...}``.
"""

from __future__ import annotations

import json

from marketdata_assets.frames import symbol_key

from ..config import served_status
from ..core import Simulator
from ..limits import BINANCE_WEIGHT_LIMIT, Decision
from ..wire import (
    BadParam,
    Reply,
    fixed,
    int_param,
    json_reply,
    listed_ids,
    listed_instrument,
    reorder,
    route,
)

PREFIX = "/api/v3/"
ENDPOINTS = ("ping", "time", "exchangeInfo", "klines", "uiKlines")
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
# exchangeInfo ``status``: Binance keeps a delisted spot pair listed, in BREAK.
RAW_STATUS = {"trading": "TRADING", "halted": "HALT", "delisted": "BREAK"}
# Derivatives hosts ccxt folds onto the venue root: USD-M futures, COIN-M futures, options.
DERIVATIVE_PREFIXES = {"fapi": "/fapi/v1/", "dapi": "/dapi/v1/", "eapi": "/eapi/v1/"}
DERIVATIVE_ENDPOINTS = ("ping", "time", "exchangeInfo")
DERIVATIVE_WEIGHT_LIMITS = {"fapi": 2400, "dapi": 2400, "eapi": 400}


def _error(code: int, msg: str, status: int = 400) -> Reply:
    return json_reply({"code": code, "msg": msg}, status)


def _missing(name: str) -> Reply:
    return _error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _f8(value: float) -> str:
    return f"{value:.8f}"


class BinanceApi:
    name = "binance"

    def endpoint(self, path: str) -> str | None:
        for api, prefix in DERIVATIVE_PREFIXES.items():
            name = route(path, prefix, DERIVATIVE_ENDPOINTS)
            if name is not None:
                return f"{api}/{name}"
        return route(path, PREFIX, ENDPOINTS)

    def instrument(self, endpoint: str, query: dict[str, str], sim: Simulator) -> str | None:
        return listed_instrument(self._symbols(sim), query.get("symbol"))

    def _symbols(self, sim: Simulator) -> dict[str, str]:
        return listed_ids(sim, self.name, symbol_key)

    def handle(self, endpoint: str, query: dict[str, str], sim: Simulator) -> Reply:
        api, _, name = endpoint.rpartition("/")
        if api:
            return self._derivatives(api, name, sim)
        if endpoint == "ping":
            return json_reply({})
        if endpoint == "time":
            return json_reply({"serverTime": sim.now_ms()})
        if endpoint == "exchangeInfo":
            return self._exchange_info(query, sim)
        return self._klines(query, sim)

    def _exchange_info(self, query: dict[str, str], sim: Simulator) -> Reply:
        by_id = self._symbols(sim)
        wanted: list[str] | None = None
        if query.get("symbol"):
            wanted = [query["symbol"].upper()]
        elif query.get("symbols"):
            try:
                wanted = [str(s).upper() for s in json.loads(query["symbols"])]
            except (ValueError, TypeError):
                return _error(
                    -1100,
                    "Illegal characters found in parameter 'symbols'; legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.",
                )
        if wanted is not None:
            unknown = [s for s in wanted if s not in by_id]
            if unknown:
                return _error(-1121, "Invalid symbol.")
        ids = wanted if wanted is not None else list(by_id)
        symbols = []
        for market_id in ids:
            listing = sim.listing(self.name, by_id[market_id])
            assert listing is not None
            symbols.append(
                {
                    "symbol": market_id,
                    "status": served_status(sim.config, self.name, listing.symbol, RAW_STATUS),
                    "baseAsset": listing.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": listing.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": [
                        "LIMIT",
                        "LIMIT_MAKER",
                        "MARKET",
                        "STOP_LOSS",
                        "STOP_LOSS_LIMIT",
                        "TAKE_PROFIT",
                        "TAKE_PROFIT_LIMIT",
                    ],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "otoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "amendAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _f8(listing.tick),
                            "maxPrice": _f8(1_000_000.0),
                            "tickSize": _f8(listing.tick),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _f8(listing.min_qty),
                            "maxQty": _f8(9_000_000.0),
                            "stepSize": _f8(listing.lot),
                        },
                        {"filterType": "ICEBERG_PARTS", "limit": 10},
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": _f8(0.0),
                            "maxQty": _f8(100_000.0),
                            "stepSize": _f8(0.0),
                        },
                        {
                            "filterType": "TRAILING_DELTA",
                            "minTrailingAboveDelta": 10,
                            "maxTrailingAboveDelta": 2000,
                            "minTrailingBelowDelta": 10,
                            "maxTrailingBelowDelta": 2000,
                        },
                        {
                            "filterType": "PERCENT_PRICE_BY_SIDE",
                            "bidMultiplierUp": "5",
                            "bidMultiplierDown": "0.2",
                            "askMultiplierUp": "5",
                            "askMultiplierDown": "0.2",
                            "avgPriceMins": 5,
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": _f8(listing.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": _f8(9_000_000.0),
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": [
                        "EXPIRE_TAKER",
                        "EXPIRE_MAKER",
                        "EXPIRE_BOTH",
                        "DECREMENT",
                    ],
                }
            )
        limit = sim.limiter.scaled(BINANCE_WEIGHT_LIMIT)
        return json_reply(
            {
                "timezone": "UTC",
                "serverTime": sim.now_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": limit,
                    },
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    def _derivatives(self, api: str, endpoint: str, sim: Simulator) -> Reply:
        """A derivatives host that lists no contracts (the simulator serves spot only)."""
        if endpoint == "ping":
            return json_reply({})
        if endpoint == "time":
            return json_reply({"serverTime": sim.now_ms()})
        rate_limits = [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": DERIVATIVE_WEIGHT_LIMITS[api],
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ]
        if api == "eapi":
            payload: dict[str, object] = {
                "timezone": "UTC",
                "serverTime": sim.now_ms(),
                "optionContracts": [],
                "optionAssets": [],
                "optionSymbols": [],
                "rateLimits": rate_limits,
            }
        else:
            payload = {
                "timezone": "UTC",
                "serverTime": sim.now_ms(),
                "rateLimits": rate_limits,
                "exchangeFilters": [],
                "symbols": [],
            }
            if api == "fapi":
                payload["futuresType"] = "U_MARGINED"
                payload["assets"] = []
        return json_reply(payload)

    def _klines(self, query: dict[str, str], sim: Simulator) -> Reply:
        market_id = (query.get("symbol") or "").upper()
        if not market_id:
            return _missing("symbol")
        interval = query.get("interval")
        if not interval:
            return _missing("interval")
        symbol = self._symbols(sim).get(market_id)
        if symbol is None:
            return _error(-1121, "Invalid symbol.")
        if interval != "1m":
            return _error(-1120, "Invalid interval.")
        try:
            limit = int_param(query, "limit", DEFAULT_LIMIT)
            start = int_param(query, "startTime")
            end = int_param(query, "endTime")
        except BadParam as exc:
            return _error(
                -1100, f"Illegal characters found in parameter '{exc}'; legal range is '^[0-9]{{1,20}}$'."
            )
        assert limit is not None
        if limit < 1:
            return _error(-1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and start > end:
            return _error(-1023, "Start time is greater than end time.")
        page = sim.candle_page(
            self.name,
            "klines",
            symbol,
            start,
            end,
            min(limit, MAX_LIMIT),
            anchor="start" if start is not None else "end",
        )
        c = page.candles
        columns = [
            fixed(c.open, 8),
            fixed(c.high, 8),
            fixed(c.low, 8),
            fixed(c.close, 8),
            fixed(c.volume, 8),
            fixed(c.quote_volume, 8),
            fixed(c.taker_base, 8),
            fixed(c.taker_quote, 8),
        ]
        rows = []
        for i, (ts, trades) in enumerate(zip(c.ts.tolist(), c.trades.tolist(), strict=True)):
            o, h, lo, cl, v, qv, tb, tq = (col[i] for col in columns)
            rows.append([ts, o, h, lo, cl, v, ts + 59_999, qv, trades, tb, tq, "0"])
        reply = json_reply(reorder(rows, page.order))
        reply.rows = len(rows)
        return reply

    # -- errors -----------------------------------------------------------------------------

    def limit_reply(self, decision: Decision, ip: str, sim: Simulator) -> Reply:
        if decision.breach == "418":
            msg = (
                f"Way too many requests; IP({ip}) banned until {decision.ban_until_ms}. "
                "Please use WebSocket Streams for live updates to avoid bans."
            )
            reply = _error(-1003, msg, 418)
        else:
            limit = sim.limiter.scaled(BINANCE_WEIGHT_LIMIT)
            msg = (
                f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
                "Please use WebSocket Streams for live updates to avoid polling the API."
            )
            reply = _error(-1003, msg, 429)
        reply.headers["Retry-After"] = str(decision.retry_after_s or 1)
        return self.decorate(reply, decision)

    def maintenance_reply(self, sim: Simulator) -> Reply:
        return _error(-1001, "Internal error; unable to process your request. Please try again.", 503)

    def error_reply(self, status: int, sim: Simulator) -> Reply:
        return _error(-1000, "An unknown error occured while processing the request.", status)

    def not_found(self, path: str, sim: Simulator) -> Reply:
        return _error(-5000, f"GET {path} is invalid.", 404)

    def decorate(self, reply: Reply, decision: Decision) -> Reply:
        if decision.used_weight is not None:
            reply.headers["x-mbx-used-weight"] = str(decision.used_weight)
            reply.headers["x-mbx-used-weight-1m"] = str(decision.used_weight)
        return reply
