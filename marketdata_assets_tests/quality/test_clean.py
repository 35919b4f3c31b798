"""Quarantine: every bad row is kept aside with its reasons; what remains passes the validated model."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from marketdata_assets.frames import CANDLE_COLUMNS, candles_from_rows, day_bounds_ms, dvol_from_rows
from marketdata_assets.quality.clean import FrameContractError, clean_partition
from marketdata_assets.quality.schemas import DvolCandles, ValidatedCandles, validate_candles

DAY = date(2024, 3, 5)
T0 = day_bounds_ms(DAY)[0]
MINUTE = 60_000


def row(
    minute: float, o: float = 10.0, h: float = 11.0, lo: float = 9.0, c: float = 10.5, v: float = 3.0
) -> list:
    return [T0 + int(minute * MINUTE), o, h, lo, c, v]


def test_bad_rows_go_to_quarantine_with_reasons_and_the_rest_passes() -> None:
    raw = candles_from_rows(
        [
            row(0),
            row(1, h=8.0),  # high below low
            row(2, v=-1.0),  # negative volume
            row(3, c=np.nan),  # NaN close
            row(4.5),  # 30 s misaligned
            row(-1),  # the previous day
            row(5),
            row(5),  # page-boundary repeat
            row(6, o=0.0, lo=0.0),  # zero prices
            row(7, h=np.inf),
            row(24 * 60),  # the next day
        ]
    )
    result = clean_partition(raw, DAY)

    assert validate_candles(result.valid, DAY, model=ValidatedCandles).ok
    assert result.valid["timestamp"].tolist() == [
        pd.Timestamp(T0 + m * MINUTE, unit="ms", tz="UTC") for m in (0, 5)
    ]
    assert list(result.quarantined.columns) == [*CANDLE_COLUMNS, "reason"]
    reasons = dict(
        zip(
            (
                (result.quarantined["timestamp"] - pd.Timestamp(T0, unit="ms", tz="UTC"))
                / pd.Timedelta(minutes=1)
            ),
            result.quarantined["reason"],
            strict=True,
        )
    )
    assert reasons == {
        -1.0: "timestamp: inside_day",
        1.0: "high: high_ge_open_close",
        2.0: "volume: greater_than_or_equal_to(0)",
        3.0: "close: not_nullable",
        4.5: "timestamp: minute_aligned",
        6.0: "open: greater_than(0); low: greater_than(0)",
        7.0: "high: finite",
        1440.0: "timestamp: inside_day",
    }
    # nothing dropped silently: the dedupe stats account for the rest
    assert len(result.valid) + len(result.quarantined) + result.dedupe.duplicates == len(raw)
    assert (result.identical_duplicates, result.conflicting_duplicates) == (1, 0)


def test_quarantine_keeps_the_original_values() -> None:
    raw = candles_from_rows([row(0), row(1, h=8.0, v=7.25)])
    quarantined = clean_partition(raw, DAY).quarantined
    assert quarantined.drop(columns="reason").to_dict("records") == candles_from_rows(
        [row(1, h=8.0, v=7.25)]
    ).to_dict("records")
    assert quarantined[CANDLE_COLUMNS].dtypes.equals(raw.dtypes)


def test_a_bad_revision_wins_dedupe_and_is_then_quarantined() -> None:
    raw = candles_from_rows([row(0), row(1), row(1, c=np.nan)])
    result = clean_partition(raw, DAY)
    assert result.conflicting_duplicates == 1
    assert result.dedupe.conflicts["changed"].tolist() == ["close"]
    assert result.quarantined["reason"].tolist() == ["close: not_nullable"]
    assert len(result.valid) == 1


def test_a_clean_day_has_an_empty_quarantine() -> None:
    raw = candles_from_rows([row(m) for m in reversed(range(1440))])
    result = clean_partition(raw, DAY)
    assert len(result.valid) == 1440
    assert result.valid["timestamp"].is_monotonic_increasing
    assert result.quarantined.empty
    assert list(result.quarantined.columns) == [*CANDLE_COLUMNS, "reason"]
    assert result.report.ok


def test_an_empty_day_is_clean_and_empty() -> None:
    result = clean_partition(candles_from_rows([]), DAY)
    assert result.valid.empty and result.quarantined.empty and result.report.ok


def test_a_malformed_frame_is_an_error_not_a_quarantine() -> None:
    raw = candles_from_rows([row(0), row(1)])
    raw["timestamp"] = raw["timestamp"].dt.tz_localize(None)
    with pytest.raises(FrameContractError, match="dtype") as caught:
        clean_partition(raw, DAY)
    assert caught.value.report.frame_failures[0].column == "timestamp"


def test_dvol_partitions_clean_with_the_dvol_model() -> None:
    raw = dvol_from_rows(
        [[T0 + h * 3_600_000, 50.0, 51.0, 49.0, 50.5] for h in range(3)] + [[T0, 50.0, 51, 49, -1]]
    )
    result = clean_partition(raw, DAY, model=DvolCandles)
    assert result.conflicting_duplicates == 1
    assert result.quarantined["reason"].str.contains("greater_than").all()
    assert validate_candles(result.valid, DAY, model=DvolCandles).ok
    assert len(result.valid) == 2
