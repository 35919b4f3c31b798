"""The rolling buffers, pure: minute-by-minute updates give exactly the batch resampling."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from marketdata_assets.frames import DAY_MS, MINUTE_MS
from marketdata_assets.live.buffers import LIVE_TIMEFRAMES, SeriesBuffer, seq_of
from marketdata_assets.transform.resample import resample_all
from marketdata_assets_tests.storage.helpers import minute_candles

DAY = date(2024, 3, 4)
DAY_START = int(pd.Timestamp(DAY, tz="UTC").value // 1_000_000)


def _day_with_fillers_and_holes() -> pd.DataFrame:
    frame = minute_candles(DAY, skip=(7, 8, 300, 301, 302))
    # zero-volume filler minutes at the previous close (Binance's): they never set open/high/low
    for i in (10, 11, 12, 13, 14):
        prev = frame.loc[i - 1, "close"]
        frame.loc[i, ["open", "high", "low", "close", "volume"]] = [prev, prev, prev, prev, 0.0]
    return frame


def _feed(buffer: SeriesBuffer, frame: pd.DataFrame, start: int, end: int, step: int) -> list:
    ms = frame["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")
    closed = []
    for lo in range(start, end, step):
        hi = min(lo + step, end)
        closed += buffer.add_minutes(frame[(ms >= lo) & (ms < hi)].reset_index(drop=True), lo, hi)
    return closed


@pytest.mark.parametrize("step_minutes", [1, 7, 1440])
def test_incremental_updates_equal_the_batch_resampling(step_minutes: int) -> None:
    frame = _day_with_fillers_and_holes()
    buffer = SeriesBuffer("binance", "BTCUSDT", length=2000)
    closed = _feed(buffer, frame, DAY_START, DAY_START + DAY_MS, step_minutes * MINUTE_MS)

    batch = resample_all(frame)
    for timeframe in LIVE_TIMEFRAMES[1:]:
        pd.testing.assert_frame_equal(buffer.frame(timeframe), batch[timeframe])
    one = buffer.frame("1m")
    pd.testing.assert_frame_equal(one[["timestamp", "open", "high", "low", "close", "volume"]], frame)
    assert one["complete"].all() and (one["n_minutes"] == 1).all()
    # every candle closed exactly once, in close-time order
    assert len(closed) == sum(len(buffer.candles[tf]) for tf in LIVE_TIMEFRAMES)
    assert [c.close_time for c in closed] == sorted(c.close_time for c in closed)
    # the missing minutes are visible gaps, merged into runs
    assert [(g.minutes, g.kind) for g in buffer.gaps] == [(2, "missing"), (3, "missing")]


def test_open_bins_never_enter_the_buffer_and_buffers_are_capped() -> None:
    frame = minute_candles(DAY)
    buffer = SeriesBuffer("okx", "ETHUSDT", length=3)
    _feed(buffer, frame, DAY_START, DAY_START + 64 * MINUTE_MS, MINUTE_MS)
    assert len(buffer.candles["1m"]) == 3
    assert buffer.last_closed("1m").timestamp == DAY_START + 63 * MINUTE_MS
    assert [c.timestamp for c in buffer.candles["1h"]] == [DAY_START]  # 01:00-02:00 still open
    assert buffer.last_closed("4h") is None and buffer.last_closed("1d") is None
    assert [c.seq for c in buffer.candles["5m"]] == [
        seq_of("5m", DAY_START + m * MINUTE_MS) for m in (45, 50, 55)
    ]
    assert [c.timestamp for c in buffer.since("5m", seq_of("5m", DAY_START + 50 * MINUTE_MS))] == [
        DAY_START + 55 * MINUTE_MS
    ]


def test_seeded_from_served_then_a_skipped_span_is_an_unavailable_gap() -> None:
    served_day = resample_all(minute_candles(DAY))
    buffer = SeriesBuffer("bybit", "BTCUSDT", length=5)
    buffer.seed({"1m": minute_candles(DAY), **served_day}, DAY_START + DAY_MS)
    assert len(buffer.candles["1m"]) == 5 and buffer.last_closed("1d").timestamp == DAY_START
    later = DAY_START + DAY_MS + 60 * MINUTE_MS
    buffer.add_minutes(
        minute_candles(date(2024, 3, 5)).iloc[60:61].reset_index(drop=True), later, later + MINUTE_MS
    )
    assert [(g.kind, g.minutes) for g in buffer.gaps] == [("unavailable", 60)]
    with pytest.raises(ValueError, match="already settled"):
        buffer.add_minutes(minute_candles(DAY).iloc[:0], DAY_START, DAY_START + MINUTE_MS)
    assert np.isfinite(buffer.frame("1m")["close"]).all()
