"""Pure pieces of the sources: cursor movement, closed-candle horizon, row validation, DVOL policy."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from marketdata_assets.frames import MINUTE_MS, day_bounds_ms
from marketdata_assets.venues.base import MalformedResponseError
from marketdata_assets.venues.ccxt_venue import (
    WIRES,
    closed_horizon_ms,
    next_cursor,
    strip_query,
    validate_row,
)
from marketdata_assets.venues.deribit import (
    DeribitRpcError,
    classify,
    normalise_resolution,
    resolution_for_day,
)
from marketdata_assets.venues.retry import FailureKind

DAY = date(2024, 3, 5)
START, END = day_bounds_ms(DAY)


def test_cursor_moves_one_minute_past_the_newest_row() -> None:
    assert next_cursor(
        START, START + 1000 * MINUTE_MS, [START, START + MINUTE_MS, START + 5 * MINUTE_MS]
    ) == (START + 6 * MINUTE_MS)


def test_empty_page_jumps_a_whole_window_so_outages_do_not_stop_paging() -> None:
    window_end = START + 100 * MINUTE_MS
    assert next_cursor(START, window_end, []) == window_end


def test_page_of_stale_rows_still_moves_forward() -> None:
    # a venue that ignores the start parameter and repeats old rows must not loop forever
    cursor = START + 500 * MINUTE_MS
    assert (
        next_cursor(cursor, cursor + 100 * MINUTE_MS, [START, START + MINUTE_MS]) == cursor + 100 * MINUTE_MS
    )


def test_closed_horizon_excludes_the_open_candle() -> None:
    now = START + 10 * 3_600_000 + 30_000  # 10:00:30: the 10:00 candle is still open
    assert closed_horizon_ms(END, now) == START + 10 * 3_600_000
    exactly = START + 10 * 3_600_000  # 10:00:00: the 09:59 candle just closed
    assert closed_horizon_ms(END, exactly) == START + 10 * 3_600_000
    assert closed_horizon_ms(END, END + 5 * 86_400_000) == END  # past day: the whole day
    assert closed_horizon_ms(END, START) <= START  # a day that has not started: nothing


def test_window_params_never_reach_past_the_window() -> None:
    w_end = START + 1000 * MINUTE_MS
    assert WIRES["binance"].window_params(START, w_end) == {"startTime": START, "endTime": w_end - 1}
    assert WIRES["bybit"].window_params(START, w_end) == {"start": START, "end": w_end - 1}
    assert WIRES["okx"].window_params(START, w_end) == {
        "type": "HistoryCandles",
        "before": START - 1,
        "after": w_end,
    }
    assert [WIRES[v].page_limit for v in ("binance", "bybit", "okx")] == [1000, 1000, 100]


def test_raw_row_shapes_per_venue() -> None:
    assert WIRES["binance"].raw_rows([[1, "2"]]) == [[1, "2"]]
    assert WIRES["binance"].raw_rows({"code": -1121}) is None
    assert WIRES["bybit"].raw_rows({"retCode": 0, "result": {"list": []}}) == []
    assert WIRES["bybit"].raw_rows({"retCode": 0, "result": {}}) is None
    assert WIRES["okx"].raw_rows({"code": "0", "data": [["1"]]}) == [["1"]]
    assert WIRES["okx"].raw_rows(None) is None


def test_validate_row() -> None:
    raw = [START, "1", "2", "0.5", "1.5", "10", 0, "0", 1, "0", "0", "0"]
    good = [START, 1.0, 2.0, 0.5, 1.5, 10.0]
    assert validate_row(good, raw, 12) is None
    assert "5 fields, expected 7" in validate_row(good, raw[:5], 7)
    assert "not an integer timestamp" in validate_row([None, 1.0, 2.0, 0.5, 1.5, 10.0], raw, 12)
    assert "minute boundary" in validate_row([START + 1, 1.0, 2.0, 0.5, 1.5, 10.0], raw, 12)
    assert "high is not a number" in validate_row([START, 1.0, None, 0.5, 1.5, 10.0], raw, 12)
    assert validate_row([START, 1.0, 2.0, 0.5, 1.5, float("nan")], raw, 12) is None  # data, not malformed
    assert "not a list" in validate_row(good, "garbage", 12)


def test_strip_query_keeps_only_the_endpoint() -> None:
    assert (
        strip_query("https://user:pw@api.binance.com/api/v3/klines?symbol=BTCUSDT&interval=1m")
        == "https://api.binance.com/api/v3/klines"
    )
    assert strip_query("http://127.0.0.1:8765/okx/api/v5/market/history-candles?x=1") == (
        "http://127.0.0.1:8765/okx/api/v5/market/history-candles"
    )


def test_dvol_resolution_policy() -> None:
    today = date(2024, 6, 30)
    assert resolution_for_day(date(2024, 6, 29), today) == "60"
    assert resolution_for_day(date(2024, 5, 31), today) == "60"  # exactly 30 days back
    assert resolution_for_day(date(2024, 5, 30), today) == "3600"
    assert resolution_for_day(date(2024, 6, 20), today, minute_history_days=5) == "3600"
    assert normalise_resolution(60) == "60"
    assert normalise_resolution("1d") == "1D"
    with pytest.raises(ValueError, match="unsupported DVOL resolution"):
        normalise_resolution("300")


def test_deribit_error_classification() -> None:
    assert classify(DeribitRpcError(10028, "too_many_requests", 429, 2.0)).kind is FailureKind.RATE_LIMITED
    assert classify(DeribitRpcError(10028, "too_many_requests", 400)).kind is FailureKind.RATE_LIMITED
    assert classify(DeribitRpcError(13028, "temporarily_unavailable", 503)).kind is FailureKind.TRANSIENT
    assert classify(DeribitRpcError(None, "bad gateway", 502)).kind is FailureKind.TRANSIENT
    assert classify(DeribitRpcError(10001, "error", 400)).kind is FailureKind.PERMANENT
    assert classify(httpx.ReadTimeout("slow")).kind is FailureKind.TRANSIENT
    assert classify(httpx.RemoteProtocolError("dropped")).kind is FailureKind.TRANSIENT
    malformed = MalformedResponseError("deribit", "BTC", DAY, "no result.data list")
    assert classify(malformed).kind is FailureKind.MALFORMED
