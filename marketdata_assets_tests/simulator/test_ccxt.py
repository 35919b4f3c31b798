"""Stock ccxt against the simulator: markets, parsing parity with recorded bodies, a full day."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import pytest

from marketdata_assets.frames import DAY_MS, MINUTE_MS
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.simulator.selfcheck import window_params
from marketdata_assets.venues.endpoints import make_ccxt_exchange

from .conftest import YESTERDAY_MS, MakeSimulator
from .test_wire_binance import RECORDED

VENUES = ("binance", "bybit", "okx")
RECORDED_ROWS = {
    "binance": lambda body: body,
    "bybit": lambda body: body["result"]["list"],
    "okx": lambda body: body["data"],
}
RECORDED_FILES = {
    "binance": "binance_spot_klines_BTCUSDT_1m.json",
    "bybit": "bybit_testnet_spot_kline_BTCUSDT_D.json",
    "okx": "okx_candles_1m.json",
}
PAGE = {"binance": 1000, "bybit": 1000, "okx": 100}


@pytest.fixture(scope="module")
def exchanges(fixed_sim: SimulatorServer, ccxt_lib: ModuleType) -> dict[str, Any]:
    out = {}
    for venue in VENUES:
        exchange = make_ccxt_exchange(venue, fixed_sim.venue_base_url(venue), enable_rate_limit=False)
        exchange.enableLastJsonResponse = True
        exchange.load_markets()
        out[venue] = exchange
    return out


@pytest.mark.parametrize("venue", VENUES)
def test_load_markets_needs_one_request_and_exposes_precision_and_limits(
    venue: str, make_simulator: MakeSimulator
) -> None:
    server = make_simulator()
    exchange = make_ccxt_exchange(venue, server.venue_base_url(venue), enable_rate_limit=False)
    markets = exchange.load_markets()
    assert {"BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT"} <= set(markets)
    btc = markets["BTC/USDT"]
    assert btc["spot"] is True and btc["active"] is True and btc["type"] == "spot"
    assert btc["precision"]["price"] == {"binance": 0.01, "bybit": 0.01, "okx": 0.1}[venue]
    assert btc["precision"]["amount"] > 0 and btc["limits"]["amount"]["min"] > 0
    stats = server.stats()["venues"][venue]
    assert stats["requests"] == 1, stats["requests_by_endpoint"]


@pytest.mark.parametrize("venue", VENUES)
def test_ccxt_parses_simulator_and_recorded_rows_alike(venue: str, exchanges: dict[str, Any]) -> None:
    exchange = exchanges[venue]
    market = exchange.market("BTC/USDT")
    recorded_rows = RECORDED_ROWS[venue](exchange.parse_json((RECORDED / RECORDED_FILES[venue]).read_text()))
    from_recording = exchange.parse_ohlcvs(recorded_rows, market)
    from_sim = exchange.fetch_ohlcv(
        "BTC/USDT",
        "1m",
        since=YESTERDAY_MS,
        limit=5,
        params=window_params(venue, YESTERDAY_MS, YESTERDAY_MS + 5 * MINUTE_MS),
    )
    sim_raw = RECORDED_ROWS[venue](exchange.last_json_response)
    assert len(sim_raw[0]) == len(recorded_rows[0])
    assert [type(v) for v in sim_raw[0]] == [type(v) for v in recorded_rows[0]]
    assert exchange.parse_ohlcvs(sim_raw, market) == from_sim
    for rows in (from_recording, from_sim):
        assert all(len(r) == 6 and isinstance(r[0], int) for r in rows)
        assert all(isinstance(v, float) for r in rows for v in r[1:])
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert [r[0] for r in from_sim] == list(range(YESTERDAY_MS, YESTERDAY_MS + 5 * MINUTE_MS, MINUTE_MS))


@pytest.mark.parametrize("venue", VENUES)
def test_full_day_through_ccxt_with_manual_pagination(venue: str, exchanges: dict[str, Any]) -> None:
    exchange = exchanges[venue]
    rows: list[list[Any]] = []
    cursor, day_end, pages = YESTERDAY_MS, YESTERDAY_MS + DAY_MS, 0
    while cursor < day_end:
        window_end = min(cursor + PAGE[venue] * MINUTE_MS, day_end)
        page = exchange.fetch_ohlcv(
            "BTC/USDT", "1m", since=cursor, limit=PAGE[venue], params=window_params(venue, cursor, window_end)
        )
        pages += 1
        rows.extend(page)
        cursor = page[-1][0] + MINUTE_MS if page else window_end
    assert pages == -(-1440 // PAGE[venue])
    assert [r[0] for r in rows] == list(range(YESTERDAY_MS, day_end, MINUTE_MS))
    assert all(r[2] >= max(r[1], r[4]) and r[3] <= min(r[1], r[4]) and r[5] > 0 for r in rows)


def test_okx_ccxt_picks_candles_for_recent_and_history_for_older(make_simulator: MakeSimulator) -> None:
    server = make_simulator()  # real clock: ccxt decides by its own clock
    exchange = make_ccxt_exchange("okx", server.venue_base_url("okx"), enable_rate_limit=False)
    now = int(time.time() * 1000)
    recent = exchange.fetch_ohlcv("BTC/USDT", "1m", since=now - 30 * MINUTE_MS, limit=10)
    older = exchange.fetch_ohlcv("BTC/USDT", "1m", since=now - 3 * DAY_MS, limit=100)
    assert len(recent) == 10 and recent[0][0] >= now - 31 * MINUTE_MS
    assert len(older) == 100 and older[0][0] >= now - 3 * DAY_MS
    endpoints = server.stats()["venues"]["okx"]["requests_by_endpoint"]
    assert endpoints == {"instruments": 1, "candles": 1, "history-candles": 1}
