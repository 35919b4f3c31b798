"""Deribit DVOL over real HTTP with httpx: format, resolutions, paging backwards with continuation."""

from __future__ import annotations

import json

import httpx
import pytest

from marketdata_assets.frames import DAY_MS, MINUTE_MS

from .conftest import CURRENT_MS, NOW_MS, NOW_S, TODAY_MS, YESTERDAY_MS, MakeSimulator
from .test_wire_binance import RECORDED

DVOL = "/deribit/api/v2/public/get_volatility_index_data"


def dvol(http: httpx.Client, start: int, end: int, resolution: str = "60", currency: str = "BTC") -> dict:
    answer = http.get(
        DVOL,
        params={
            "currency": currency,
            "start_timestamp": start,
            "end_timestamp": end,
            "resolution": resolution,
        },
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_envelope_and_rows_match_the_docs_example(http: httpx.Client) -> None:
    example = json.loads((RECORDED / "deribit_get_volatility_index_data_docs_example.json").read_text())
    body = dvol(http, YESTERDAY_MS, YESTERDAY_MS + 2 * MINUTE_MS)
    assert body["jsonrpc"] == "2.0" and body["testnet"] is False
    assert body["usOut"] >= body["usIn"] and body["usDiff"] == body["usOut"] - body["usIn"]
    assert set(body["result"]) == set(example["result"]) == {"data", "continuation"}
    rows = body["result"]["data"]
    assert [len(r) for r in rows] == [len(r) for r in example["result"]["data"]] == [5, 5, 5]
    assert [r[0] for r in rows] == [YESTERDAY_MS, YESTERDAY_MS + MINUTE_MS, YESTERDAY_MS + 2 * MINUTE_MS]
    assert all(isinstance(v, float) for r in rows for v in r[1:])
    assert body["result"]["continuation"] is None


def test_a_day_pages_backwards_with_continuation(http: httpx.Client) -> None:
    end, rows, requests = YESTERDAY_MS + DAY_MS - 1, [], 0
    while end is not None:
        result = dvol(http, YESTERDAY_MS, end)["result"]
        assert len(result["data"]) <= 1000
        rows = result["data"] + rows
        end = result["continuation"]
        requests += 1
    assert requests == 2
    assert [r[0] for r in rows] == list(range(YESTERDAY_MS, YESTERDAY_MS + DAY_MS, MINUTE_MS))


@pytest.mark.parametrize(
    ("resolution", "step_ms"), [("60", MINUTE_MS), ("3600", 3_600_000), ("43200", 43_200_000), ("1D", DAY_MS)]
)
def test_resolutions_aggregate_the_minutes(http: httpx.Client, resolution: str, step_ms: int) -> None:
    start = max(YESTERDAY_MS - 2 * DAY_MS, YESTERDAY_MS + DAY_MS - 900 * step_ms)
    rows = dvol(http, start, YESTERDAY_MS + DAY_MS - 1, resolution)["result"]["data"]
    assert [r[0] for r in rows] == list(range(start, YESTERDAY_MS + DAY_MS, step_ms))
    bucket_start = YESTERDAY_MS + DAY_MS - step_ms
    minutes = dvol(http, bucket_start, bucket_start + min(step_ms, 1000 * MINUTE_MS) - 1)["result"]["data"]
    if step_ms <= 1000 * MINUTE_MS:
        bucket = next(r for r in rows if r[0] == bucket_start)
        assert bucket == [
            bucket_start,
            minutes[0][1],
            max(m[2] for m in minutes),
            min(m[3] for m in minutes),
            minutes[-1][4],
        ]


def test_still_open_bucket_and_nothing_after_now(http: httpx.Client) -> None:
    rows = dvol(http, TODAY_MS, NOW_MS + DAY_MS, "60")["result"]["data"]
    assert rows[-1][0] == CURRENT_MS
    assert (
        dvol(http, TODAY_MS, NOW_MS + DAY_MS, "1")["result"]["data"] == rows
    )  # minute points: the finest kept
    daily = dvol(http, TODAY_MS, NOW_MS + DAY_MS, "1D")["result"]["data"]
    assert [r[0] for r in daily] == [TODAY_MS]


def test_eth_exists_and_history_starts_2021_03_24(http: httpx.Client) -> None:
    assert dvol(http, YESTERDAY_MS, YESTERDAY_MS, currency="ETH")["result"]["data"][0][0] == YESTERDAY_MS
    first_day = 1616544000000  # 2021-03-24
    rows = dvol(http, first_day - 5 * DAY_MS, first_day + DAY_MS, "1D")["result"]["data"]
    assert [r[0] for r in rows] == [first_day, first_day + DAY_MS]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"currency": "XRP", "start_timestamp": 1, "end_timestamp": 2, "resolution": "1"}, "currency"),
        ({"start_timestamp": 1, "end_timestamp": 2, "resolution": "1"}, "currency"),
        ({"currency": "BTC", "end_timestamp": 2, "resolution": "1"}, "start_timestamp"),
        ({"currency": "BTC", "start_timestamp": 1, "end_timestamp": 2, "resolution": "5"}, "resolution"),
    ],
)
def test_invalid_params_are_json_rpc_errors(http: httpx.Client, params: dict, param: str) -> None:
    answer = http.get(DVOL, params=params)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (
        error["code"] == -32602 and error["message"] == "Invalid params" and error["data"]["param"] == param
    )


def test_minute_history_window_is_configurable(make_simulator: MakeSimulator) -> None:
    server = make_simulator(clock=lambda: NOW_S, limits_enabled=False, dvol_minute_history_days=2)
    with httpx.Client(base_url=server.url) as client:
        old = dvol(client, YESTERDAY_MS - 5 * DAY_MS, YESTERDAY_MS - 4 * DAY_MS)["result"]["data"]
        old_hourly = dvol(client, YESTERDAY_MS - 5 * DAY_MS, YESTERDAY_MS - 4 * DAY_MS, "3600")["result"][
            "data"
        ]
        recent = dvol(client, YESTERDAY_MS, YESTERDAY_MS + 9 * MINUTE_MS)["result"]["data"]
        assert client.get("/deribit/api/v2/public/get_time").json()["result"] == NOW_MS
    assert old == [] and len(old_hourly) == 25 and len(recent) == 10
