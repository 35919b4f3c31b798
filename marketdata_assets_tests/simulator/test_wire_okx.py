"""OKX v5 wire format over real HTTP: candles, history-candles, public/instruments, public/time."""

from __future__ import annotations

import json

import httpx
import pytest

from marketdata_assets.frames import MINUTE_MS

from .conftest import CURRENT_MS, NOW_MS, YESTERDAY_MS
from .test_wire_binance import RECORDED

CANDLES = "/okx/api/v5/market/candles"
HISTORY = "/okx/api/v5/market/history-candles"


def data(http: httpx.Client, path: str, **params: object) -> list[list[str]]:
    answer = http.get(path, params={"instId": "BTC-USDT", **params})
    assert answer.status_code == 200
    body = answer.json()
    assert body["code"] == "0" and body["msg"] == ""
    return body["data"]


def times(rows: list[list[str]]) -> list[int]:
    return [int(r[0]) for r in rows]


def test_rows_match_the_recorded_body(http: httpx.Client) -> None:
    recorded = json.loads((RECORDED / "okx_candles_1m.json").read_text())
    rows = data(http, HISTORY, after=YESTERDAY_MS + 2 * MINUTE_MS)
    for row, real in zip(rows[:2], recorded["data"], strict=True):
        assert len(row) == len(real) == 9 and all(isinstance(v, str) for v in row)
        assert row[8] == real[8] == "1"
    assert times(rows[:2]) == [YESTERDAY_MS + MINUTE_MS, YESTERDAY_MS]


def test_after_and_before_are_exclusive_newest_first(http: httpx.Client) -> None:
    rows = data(http, HISTORY, before=YESTERDAY_MS, after=YESTERDAY_MS + 4 * MINUTE_MS)
    assert times(rows) == [
        YESTERDAY_MS + 3 * MINUTE_MS,
        YESTERDAY_MS + 2 * MINUTE_MS,
        YESTERDAY_MS + MINUTE_MS,
    ]
    # a page holds the newest `limit` rows of the range
    page = data(http, HISTORY, before=YESTERDAY_MS, after=YESTERDAY_MS + 500 * MINUTE_MS, limit=2)
    assert times(page) == [YESTERDAY_MS + 499 * MINUTE_MS, YESTERDAY_MS + 498 * MINUTE_MS]
    only_before = data(http, CANDLES, before=CURRENT_MS - 10 * MINUTE_MS, limit=3)
    assert times(only_before) == [CURRENT_MS, CURRENT_MS - MINUTE_MS, CURRENT_MS - 2 * MINUTE_MS]


def test_defaults_and_caps(http: httpx.Client) -> None:
    assert len(data(http, CANDLES)) == 100
    assert len(data(http, CANDLES, limit=1000)) == 300
    assert len(data(http, HISTORY, after=YESTERDAY_MS)) == 100
    assert len(data(http, HISTORY, after=YESTERDAY_MS, limit=300)) == 100


def test_candles_reach_only_the_latest_1440_history_reaches_all(http: httpx.Client) -> None:
    oldest_reachable = CURRENT_MS - 1439 * MINUTE_MS
    recent = data(http, CANDLES, after=oldest_reachable + 2 * MINUTE_MS, limit=300)
    assert times(recent) == [oldest_reachable + MINUTE_MS, oldest_reachable]
    assert data(http, CANDLES, after=oldest_reachable) == []
    older = data(http, HISTORY, after=oldest_reachable, limit=5)
    assert times(older)[0] == oldest_reachable - MINUTE_MS and len(older) == 5


def test_still_open_candle_is_unconfirmed(http: httpx.Client) -> None:
    for path in (CANDLES, HISTORY):
        rows = data(http, path, limit=3)
        assert int(rows[0][0]) == CURRENT_MS and rows[0][8] == "0"
        assert [r[8] for r in rows[1:]] == ["1", "1"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"instId": "NOPE-USDT"}, "51001"),
        ({}, "50014"),
        ({"instId": "BTC-USDT", "bar": "7m"}, "51000"),
        ({"instId": "BTC-USDT", "limit": "x"}, "51000"),
    ],
)
def test_errors(http: httpx.Client, params: dict, code: str) -> None:
    body = http.get(CANDLES, params=params).json()
    assert body["code"] == code and body["data"] == [] and body["msg"]
    if code == "51001":
        assert body == {"code": "51001", "msg": "Instrument ID does not exist", "data": []}


def test_instruments_and_time(http: httpx.Client) -> None:
    body = http.get("/okx/api/v5/public/instruments", params={"instType": "SPOT"}).json()
    btc = next(i for i in body["data"] if i["instId"] == "BTC-USDT")
    assert btc["state"] == "live" and btc["baseCcy"] == "BTC" and btc["quoteCcy"] == "USDT"
    assert btc["tickSz"] == "0.1" and btc["lotSz"] == "0.00000001" and btc["minSz"] == "0.00001"
    assert http.get("/okx/api/v5/public/instruments", params={"instType": "SWAP"}).json()["data"] == []
    assert http.get("/okx/api/v5/public/instruments").json()["code"] == "50014"
    assert http.get("/okx/api/v5/public/time").json()["data"] == [{"ts": str(NOW_MS)}]
