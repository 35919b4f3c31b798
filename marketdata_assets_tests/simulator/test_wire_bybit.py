"""Bybit v5 wire format over real HTTP: /v5/market/kline, /instruments-info, /time."""

from __future__ import annotations

import json

import httpx
import pytest

from marketdata_assets.frames import MINUTE_MS

from .conftest import CURRENT_MS, NOW_MS, NOW_S, YESTERDAY_MS, MakeSimulator
from .test_wire_binance import RECORDED

KLINE = "/bybit/v5/market/kline"


def kline(http: httpx.Client, **params: object) -> dict:
    answer = http.get(KLINE, params={"category": "spot", "symbol": "BTCUSDT", "interval": "1", **params})
    assert answer.status_code == 200
    return answer.json()


def test_envelope_and_rows_match_the_recorded_body(http: httpx.Client) -> None:
    recorded = json.loads((RECORDED / "bybit_testnet_spot_kline_BTCUSDT_D.json").read_text())
    body = kline(http, start=YESTERDAY_MS, limit=3)
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert (
        body["retCode"] == 0
        and body["retMsg"] == "OK"
        and body["retExtInfo"] == {}
        and body["time"] == NOW_MS
    )
    assert body["result"]["symbol"] == "BTCUSDT" and body["result"]["category"] == "spot"
    rows = body["result"]["list"]
    for row, real in zip(rows, recorded["result"]["list"], strict=True):
        assert len(row) == len(real) == 7 and all(isinstance(v, str) for v in row)
        assert not row[1].endswith("0") or "." not in row[1]  # trimmed like the venue
    assert [int(r[0]) for r in rows] == [YESTERDAY_MS + 2 * MINUTE_MS, YESTERDAY_MS + MINUTE_MS, YESTERDAY_MS]


def test_newest_first_default_200_max_1000(http: httpx.Client) -> None:
    rows = kline(http, start=YESTERDAY_MS)["result"]["list"]
    assert len(rows) == 200
    assert [int(r[0]) for r in rows] == list(
        range(YESTERDAY_MS + 199 * MINUTE_MS, YESTERDAY_MS - 1, -MINUTE_MS)
    )
    assert len(kline(http, start=YESTERDAY_MS, limit=5000)["result"]["list"]) == 1000


def test_start_includes_the_candle_containing_it_and_end_is_inclusive(http: httpx.Client) -> None:
    rows = kline(http, start=YESTERDAY_MS + 30_000, end=YESTERDAY_MS + 2 * MINUTE_MS)["result"]["list"]
    assert [int(r[0]) for r in rows] == [YESTERDAY_MS + 2 * MINUTE_MS, YESTERDAY_MS + MINUTE_MS, YESTERDAY_MS]
    latest = kline(http, end=YESTERDAY_MS + 10 * MINUTE_MS, limit=2)["result"]["list"]
    assert [int(r[0]) for r in latest] == [YESTERDAY_MS + 10 * MINUTE_MS, YESTERDAY_MS + 9 * MINUTE_MS]


def test_still_open_candle_first(http: httpx.Client) -> None:
    rows = kline(http, limit=3)["result"]["list"]
    assert int(rows[0][0]) == CURRENT_MS
    assert kline(http, start=CURRENT_MS + MINUTE_MS)["result"]["list"] == []


def test_minutes_without_trades_are_absent(make_simulator: MakeSimulator) -> None:
    server = make_simulator(clock=lambda: NOW_S, no_trade_rates={"SOL/USDT": 0.3})
    with httpx.Client(base_url=server.url) as client:
        body = client.get(
            KLINE,
            params={
                "category": "spot",
                "symbol": "SOLUSDT",
                "interval": "1",
                "start": YESTERDAY_MS,
                "end": YESTERDAY_MS + 299 * MINUTE_MS,
                "limit": 1000,
            },
        ).json()
    rows = body["result"]["list"]
    assert 100 < len(rows) < 280
    assert all(float(r[5]) > 0 for r in rows)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"category": "spot", "symbol": "NOPEUSDT", "interval": "1"}, "Not supported symbols"),
        ({"symbol": "BTCUSDT", "interval": "1"}, "Not supported symbols"),  # category defaults to linear
        ({"category": "spot", "symbol": "BTCUSDT", "interval": "7"}, "Invalid period!"),
        ({"category": "weird", "symbol": "BTCUSDT", "interval": "1"}, "Illegal category"),
        ({"category": "spot", "symbol": "BTCUSDT", "interval": "1", "limit": "x"}, "params error"),
    ],
)
def test_errors_are_http_200_with_ret_code(http: httpx.Client, params: dict, message: str) -> None:
    answer = http.get(KLINE, params=params)
    assert answer.status_code == 200
    assert answer.json()["retCode"] == 10001 and message in answer.json()["retMsg"]


def test_instruments_info_and_time(http: httpx.Client) -> None:
    body = http.get("/bybit/v5/market/instruments-info", params={"category": "spot"}).json()
    assert (
        body["retCode"] == 0
        and body["result"]["category"] == "spot"
        and body["result"]["nextPageCursor"] == ""
    )
    btc = next(i for i in body["result"]["list"] if i["symbol"] == "BTCUSDT")
    assert btc["status"] == "Trading" and btc["baseCoin"] == "BTC" and btc["quoteCoin"] == "USDT"
    assert btc["priceFilter"]["tickSize"] == "0.01" and btc["lotSizeFilter"]["basePrecision"] == "0.000001"
    linear = http.get("/bybit/v5/market/instruments-info", params={"category": "linear"}).json()
    assert linear["result"]["list"] == []
    assert http.get("/bybit/v5/market/instruments-info").json()["retCode"] == 10001
    time_body = http.get("/bybit/v5/market/time").json()
    assert time_body["result"]["timeSecond"] == str(NOW_MS // 1000)
    assert http.get("/bybit/v5/market/orderbook").status_code == 404
