"""A stock ccxt client (default options, only its URLs pointed at the simulator) loads markets and candles.

Unlike :func:`marketdata_assets.venues.endpoints.make_ccxt_exchange` (spot-only options, one request
per ``load_markets()``), a user's own ccxt code or a peer tool loads every market type by default:
Binance also asks ``/fapi/v1/exchangeInfo`` and ``/dapi/v1/exchangeInfo`` (and ``/eapi/v1/exchangeInfo``
with ``loadAllOptions``), Bybit every ``category`` of ``instruments-info``, OKX every ``instType``.
Each of those requests must get a valid, correct-shaped answer (no derivatives listed), not a 404.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import httpx
import pytest

from marketdata_assets.frames import MINUTE_MS
from marketdata_assets.simulator import SimulatorServer

from .conftest import MakeSimulator

VENUES = ("binance", "bybit", "okx")
SPOT = {"BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT"}


def stock_client(ccxt_lib: ModuleType, server: SimulatorServer, venue: str, **config: Any) -> Any:
    """``ccxt.<venue>({'urls': {'api': ...}})`` with the URLs the simulator itself advertises."""
    api = httpx.get(f"{server.url}/__sim/venues", timeout=10).json()[venue]["ccxt_api_urls"]
    return getattr(ccxt_lib, venue)({"urls": {"api": api}, **config})


def assert_all_answered(server: SimulatorServer, venue: str) -> dict[str, int]:
    stats = server.stats()["venues"][venue]
    assert set(stats["responses_by_status"]) == {"200"}, stats
    assert "(unknown)" not in stats["requests_by_endpoint"], stats
    return stats["requests_by_endpoint"]


@pytest.mark.parametrize("venue", VENUES)
def test_stock_ccxt_loads_markets_and_fetches_ohlcv(
    venue: str, make_simulator: MakeSimulator, ccxt_lib: ModuleType
) -> None:
    server = make_simulator()  # real clock: ccxt picks OKX's candles endpoint by its own clock
    exchange = stock_client(ccxt_lib, server, venue)
    markets = exchange.load_markets()
    assert set(markets) == SPOT
    assert all(m["spot"] and m["type"] == "spot" for m in markets.values())
    now = int(time.time() * 1000)
    since = now // MINUTE_MS * MINUTE_MS - 60 * MINUTE_MS
    rows = exchange.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=5)
    latest = exchange.fetch_ohlcv("ETH/USDT", "1m", limit=3)
    assert [r[0] for r in rows] == [since + i * MINUTE_MS for i in range(5)]
    assert len(latest) == 3 and latest[-1][0] >= since
    endpoints = assert_all_answered(server, venue)
    if venue == "binance":  # spot, USD-M and COIN-M futures: what ccxt 4.5 loads by default
        assert {"exchangeInfo", "fapi/exchangeInfo", "dapi/exchangeInfo", "klines"} <= set(endpoints)


def test_stock_binance_with_all_options_loaded(make_simulator: MakeSimulator, ccxt_lib: ModuleType) -> None:
    server = make_simulator()
    # ccxt reads the flag under fetchMarkets (4.5.90) or at the top level (older 4.5 releases)
    options = {"loadAllOptions": True, "fetchMarkets": {"loadAllOptions": True}}
    exchange = stock_client(ccxt_lib, server, "binance", options=options)
    assert set(exchange.load_markets()) == SPOT
    assert exchange.fetch_time() > 0
    endpoints = assert_all_answered(server, "binance")
    assert endpoints.get("eapi/exchangeInfo") == 1


@pytest.mark.parametrize("api", ["fapi", "dapi", "eapi"])
def test_binance_derivative_exchange_info_shapes(api: str, make_simulator: MakeSimulator) -> None:
    server = make_simulator()
    with httpx.Client(base_url=f"{server.url}/binance/{api}/v1", timeout=10) as client:
        info = client.get("/exchangeInfo").json()
        server_time = client.get("/time").json()["serverTime"]
        assert client.get("/ping").json() == {}
        missing = client.get("/klines", params={"symbol": "BTCUSDT", "interval": "1m"})
    assert info["timezone"] == "UTC" and abs(info["serverTime"] - server_time) < 60_000
    assert info["rateLimits"] and info["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
    listed = info["optionSymbols"] if api == "eapi" else info["symbols"]
    assert listed == []
    assert missing.status_code == 404 and missing.json()["code"] == -5000
