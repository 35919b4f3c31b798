"""Binance spot wire format over real HTTP: /api/v3/klines, /exchangeInfo, /time, /ping."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from marketdata_assets.frames import MINUTE_MS

from .conftest import CURRENT_MS, NOW_MS, YESTERDAY_MS, MakeSimulator

KLINES = "/binance/api/v3/klines"
RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "responses"


def klines(http: httpx.Client, **params: object) -> list[list]:
    answer = http.get(KLINES, params={"symbol": "BTCUSDT", "interval": "1m", **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_row_shape_matches_the_recorded_body(http: httpx.Client) -> None:
    recorded = json.loads((RECORDED / "binance_spot_klines_BTCUSDT_1m.json").read_text())
    rows = klines(http, startTime=YESTERDAY_MS, limit=10)
    assert len(rows) == 10
    for row, real in zip(rows, recorded, strict=True):
        assert [type(v) for v in row] == [type(v) for v in real]
        assert row[6] == row[0] + 59_999
        for i in (1, 2, 3, 4, 5, 7, 9, 10):
            assert len(row[i].split(".")[1]) == 8, row[i]
        assert row[11] == "0"
        assert float(row[2]) >= max(float(row[1]), float(row[4])) and float(row[3]) <= min(
            float(row[1]), float(row[4])
        )


def test_oldest_first_default_500_max_1000(http: httpx.Client) -> None:
    rows = klines(http, startTime=YESTERDAY_MS)
    assert len(rows) == 500
    assert [r[0] for r in rows] == list(range(YESTERDAY_MS, YESTERDAY_MS + 500 * MINUTE_MS, MINUTE_MS))
    assert len(klines(http, startTime=YESTERDAY_MS, limit=5000)) == 1000


def test_start_and_end_are_inclusive(http: httpx.Client) -> None:
    rows = klines(http, startTime=YESTERDAY_MS, endTime=YESTERDAY_MS + 9 * MINUTE_MS)
    assert [r[0] for r in rows] == list(range(YESTERDAY_MS, YESTERDAY_MS + 10 * MINUTE_MS, MINUTE_MS))
    mid_minute = klines(http, startTime=YESTERDAY_MS + 1, endTime=YESTERDAY_MS + 3 * MINUTE_MS)
    assert [r[0] for r in mid_minute] == [
        YESTERDAY_MS + MINUTE_MS,
        YESTERDAY_MS + 2 * MINUTE_MS,
        YESTERDAY_MS + 3 * MINUTE_MS,
    ]


def test_only_end_time_gives_the_newest_rows_up_to_it(http: httpx.Client) -> None:
    end = YESTERDAY_MS + 100 * MINUTE_MS
    rows = klines(http, endTime=end, limit=3)
    assert [r[0] for r in rows] == [end - 2 * MINUTE_MS, end - MINUTE_MS, end]


def test_latest_rows_end_with_the_still_open_candle(http: httpx.Client) -> None:
    rows = klines(http, limit=5)
    assert rows[-1][0] == CURRENT_MS
    assert rows[-1][6] > NOW_MS  # close time in the future: not closed
    assert all(r[6] < NOW_MS for r in rows[:-1])
    assert klines(http, startTime=CURRENT_MS + MINUTE_MS) == []
    later = klines(http, startTime=CURRENT_MS - 5 * MINUTE_MS, endTime=CURRENT_MS + 60 * MINUTE_MS)
    assert later[-1][0] == CURRENT_MS


def test_pages_are_identical_across_requests(http: httpx.Client) -> None:
    a = klines(http, startTime=YESTERDAY_MS, limit=1000)
    b = klines(http, startTime=YESTERDAY_MS + 500 * MINUTE_MS, limit=1000)
    assert a[500:] == b[:500]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
        ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ({"interval": "1m"}, -1102),
        ({"symbol": "BTCUSDT"}, -1102),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": 10, "endTime": 5}, -1023),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "x"}, -1100),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": 0}, -1130),
    ],
)
def test_errors(http: httpx.Client, params: dict, code: int) -> None:
    answer = http.get(KLINES, params=params)
    assert answer.status_code == 400
    assert answer.json()["code"] == code and answer.json()["msg"]


def test_exchange_info_time_ping_and_unknown_path(http: httpx.Client) -> None:
    info = http.get("/binance/api/v3/exchangeInfo").json()
    by_symbol = {s["symbol"]: s for s in info["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"} <= set(by_symbol)
    btc = by_symbol["BTCUSDT"]
    assert btc["status"] == "TRADING" and btc["baseAsset"] == "BTC" and btc["quoteAsset"] == "USDT"
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert float(filters["NOTIONAL"]["minNotional"]) > 0
    assert info["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 6000,
    }
    one = http.get("/binance/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"}).json()
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    assert http.get("/binance/api/v3/exchangeInfo", params={"symbol": "NOPE"}).json()["code"] == -1121
    assert http.get("/binance/api/v3/time").json() == {"serverTime": NOW_MS}
    assert http.get("/binance/api/v3/ping").json() == {}
    missing = http.get("/binance/api/v3/depth")
    assert missing.status_code == 404 and missing.json()["code"] == -5000


def test_used_weight_headers(make_simulator: MakeSimulator) -> None:
    server = make_simulator()
    with httpx.Client(base_url=server.url) as client:
        first = client.get(KLINES, params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1})
        second = client.get("/binance/api/v3/exchangeInfo")
    assert first.headers["x-mbx-used-weight-1m"] == "2"
    assert second.headers["x-mbx-used-weight-1m"] == "22"
