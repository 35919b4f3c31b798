"""Dedupe: the last fetched row wins; identical repeats collapse silently, revisions are reported."""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketdata_assets.frames import candles_from_rows
from marketdata_assets.quality.dedupe import dedupe_candles

T0 = 1_709_596_800_000  # 2024-03-05 00:00 UTC
MINUTE = 60_000


def row(minute: int, close: float = 10.5, volume: float = 3.0) -> list[float]:
    return [T0 + minute * MINUTE, 10.0, 11.0, 9.0, close, volume]


def test_page_boundary_repeats_collapse_silently() -> None:
    page_1 = [row(m) for m in range(0, 6)]
    page_2 = [row(m) for m in range(5, 10)]  # the next page starts at the last row of the previous one
    result = dedupe_candles(candles_from_rows(page_1 + page_2))
    pd.testing.assert_frame_equal(result.frame, candles_from_rows([row(m) for m in range(10)]))
    assert (result.identical_duplicates, result.conflicting_duplicates, result.duplicates) == (1, 0, 1)
    assert result.conflicts.empty
    assert list(result.conflicts.columns[:3]) == ["timestamp", "old_open", "new_open"]


def test_a_revised_candle_keeps_the_last_fetch_and_is_reported() -> None:
    first_fetch = [row(m) for m in range(5)]
    refetch = [row(3, close=10.8, volume=4.0)]
    result = dedupe_candles(candles_from_rows(first_fetch + refetch))
    assert len(result.frame) == 5
    kept = result.frame.loc[3]
    assert (kept["close"], kept["volume"]) == (10.8, 4.0)
    assert (result.identical_duplicates, result.conflicting_duplicates) == (0, 1)
    (conflict,) = result.conflicts.to_dict("records")
    assert conflict["timestamp"] == pd.Timestamp(T0 + 3 * MINUTE, unit="ms", tz="UTC")
    assert (conflict["old_close"], conflict["new_close"]) == (10.5, 10.8)
    assert (conflict["old_volume"], conflict["new_volume"]) == (3.0, 4.0)
    assert (conflict["old_open"], conflict["new_open"]) == (10.0, 10.0)
    assert conflict["changed"] == "close,volume"


def test_every_earlier_copy_is_compared_with_the_kept_one() -> None:
    raw = candles_from_rows([row(1, close=10.1), row(1, close=10.5), row(0), row(1, close=10.5)])
    result = dedupe_candles(raw)
    assert result.frame["close"].tolist() == [10.5, 10.5]
    assert (result.identical_duplicates, result.conflicting_duplicates) == (1, 1)
    assert result.conflicts[["old_close", "new_close"]].values.tolist() == [[10.1, 10.5]]


def test_result_is_sorted_whatever_the_fetch_order() -> None:
    newest_first = [row(m) for m in (9, 8, 7)] + [row(m) for m in (7, 6, 5)]
    result = dedupe_candles(candles_from_rows(newest_first))
    assert result.frame["timestamp"].is_monotonic_increasing
    assert result.frame.index.equals(pd.RangeIndex(5))
    assert result.identical_duplicates == 1


def test_nan_copies_are_identical_not_conflicting() -> None:
    raw = candles_from_rows([row(0, close=np.nan), row(0, close=np.nan)])
    result = dedupe_candles(raw)
    assert (len(result.frame), result.identical_duplicates, result.conflicting_duplicates) == (1, 1, 0)


def test_no_duplicates_changes_nothing() -> None:
    raw = candles_from_rows([row(m) for m in range(3)])
    raw.index = [10, 11, 12]
    result = dedupe_candles(raw)
    pd.testing.assert_frame_equal(result.frame, raw.reset_index(drop=True))
    assert result.duplicates == 0


def test_dvol_frames_dedupe_on_their_own_columns() -> None:
    raw = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([T0, T0], unit="ms", utc=True).astype("datetime64[ms, UTC]"),
            "open": [50.0, 50.0],
            "high": [51.0, 52.0],
            "low": [49.0, 49.0],
            "close": [50.5, 50.5],
        }
    )
    result = dedupe_candles(raw)
    assert result.conflicting_duplicates == 1
    assert result.conflicts["changed"].tolist() == ["high"]
    assert "old_volume" not in result.conflicts.columns
