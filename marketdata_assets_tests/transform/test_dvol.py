"""DVOL: forward fill stays inside the covered range and is marked; hourly candles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketdata_assets.frames import DVOL_COLUMNS, dvol_from_rows
from marketdata_assets.transform.dvol import DVOL_MINUTE_COLUMNS, dvol_hourly, dvol_to_minutes

T0 = 1_709_596_800_000  # 2024-03-05 00:00 UTC
MINUTE = 60_000
HOUR = 3_600_000


def ts(ms_offset: int) -> pd.Timestamp:
    return pd.Timestamp(T0 + ms_offset, unit="ms", tz="UTC")


def hourly_rows(hours: list[int]) -> pd.DataFrame:
    return dvol_from_rows([[T0 + h * HOUR, 50.0 + h, 52.0 + h, 49.0 + h, 51.0 + h] for h in hours])


def test_hourly_dvol_fills_each_hour_and_stops_after_the_last_one() -> None:
    minutes = dvol_to_minutes(hourly_rows([0, 1, 2]), resolution_s=3600)
    assert list(minutes.columns) == DVOL_MINUTE_COLUMNS
    assert len(minutes) == 180
    assert minutes["timestamp"].iloc[0] == ts(0)
    assert minutes["timestamp"].iloc[-1] == ts(2 * HOUR + 59 * MINUTE)  # last observation + 1 h, exclusive
    assert (minutes["timestamp"].diff().iloc[1:] == pd.Timedelta(minutes=1)).all()
    assert minutes.loc[~minutes["filled"], "timestamp"].tolist() == [ts(0), ts(HOUR), ts(2 * HOUR)]
    assert int(minutes["filled"].sum()) == 177
    at_0130 = minutes[minutes["timestamp"] == ts(HOUR + 30 * MINUTE)].iloc[0]
    assert (at_0130["open"], at_0130["high"], at_0130["low"], at_0130["close"], at_0130["filled"]) == (
        51.0,
        53.0,
        50.0,
        52.0,
        True,
    )
    assert str(minutes["timestamp"].dtype) == "datetime64[ms, UTC]" and minutes["filled"].dtype == bool


def test_minute_dvol_marks_only_the_gaps_inside_the_range() -> None:
    rows = [[T0 + m * MINUTE, 60.0 + m, 60.5 + m, 59.5 + m, 60.2 + m] for m in (0, 1, 4, 5)]
    minutes = dvol_to_minutes(dvol_from_rows(rows), resolution_s=60)
    assert minutes["timestamp"].tolist() == [ts(m * MINUTE) for m in range(6)]
    assert minutes["filled"].tolist() == [False, False, True, True, False, False]
    assert minutes["close"].tolist() == [60.2, 61.2, 61.2, 61.2, 64.2, 65.2]


def test_second_dvol_aggregates_each_minute_and_counts_it_observed() -> None:
    rows = [
        [T0 + 0, 70.0, 70.0, 70.0, 70.0],
        [T0 + 20_000, 70.0, 71.5, 70.0, 71.0],
        [T0 + 59_000, 71.0, 71.0, 69.0, 69.5],
        [T0 + 2 * MINUTE + 30_000, 69.5, 69.6, 69.4, 69.6],
    ]
    minutes = dvol_to_minutes(dvol_from_rows(rows), resolution_s=1)
    assert minutes["timestamp"].tolist() == [ts(0), ts(MINUTE), ts(2 * MINUTE)]
    assert minutes.iloc[0][["open", "high", "low", "close"]].tolist() == [70.0, 71.5, 69.0, 69.5]
    assert minutes["filled"].tolist() == [False, True, False]


def test_a_daily_resolution_point_covers_exactly_one_day() -> None:
    minutes = dvol_to_minutes(hourly_rows([0]), resolution_s=86_400)
    assert len(minutes) == 1440 and int(minutes["filled"].sum()) == 1439


def test_no_minute_is_invented_before_the_first_observation() -> None:
    minutes = dvol_to_minutes(hourly_rows([5, 6]), resolution_s=3600)
    assert minutes["timestamp"].iloc[0] == ts(5 * HOUR)
    assert not np.isnan(minutes[["open", "high", "low", "close"]].to_numpy()).any()


def test_bad_input_is_refused_and_empty_stays_empty() -> None:
    with pytest.raises(ValueError, match="resolution_s"):
        dvol_to_minutes(hourly_rows([0]), resolution_s=0)
    with pytest.raises(ValueError, match="duplicate"):
        dvol_to_minutes(hourly_rows([0, 0]), resolution_s=3600)
    empty = dvol_to_minutes(dvol_from_rows([]), resolution_s=60)
    assert empty.empty and list(empty.columns) == DVOL_MINUTE_COLUMNS
    assert str(empty["timestamp"].dtype) == "datetime64[ms, UTC]"


def test_hourly_from_minutes_is_first_max_min_last() -> None:
    rows = [[T0 + m * MINUTE, 40.0 + m % 7, 45.0 + m % 11, 35.0 - m % 5, 41.0 + m % 3] for m in range(150)]
    hourly = dvol_hourly(dvol_from_rows(rows))
    assert list(hourly.columns) == DVOL_COLUMNS
    assert hourly["timestamp"].tolist() == [ts(0), ts(HOUR), ts(2 * HOUR)]
    minutes = dvol_from_rows(rows).set_index("timestamp")
    expected = minutes.resample("1h").agg({"open": "first", "high": "max", "low": "min", "close": "last"})
    pd.testing.assert_frame_equal(hourly.set_index("timestamp"), expected, check_freq=False)


def test_hourly_input_passes_through() -> None:
    hourly = hourly_rows([0, 1, 3])
    pd.testing.assert_frame_equal(dvol_hourly(hourly), hourly)


def test_hourly_of_the_minute_grid_ignores_filled_minutes() -> None:
    hourly = hourly_rows([0, 1, 2])
    pd.testing.assert_frame_equal(dvol_hourly(dvol_to_minutes(hourly, resolution_s=3600)), hourly)
