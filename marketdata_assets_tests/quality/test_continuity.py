"""Price continuity: consecutive closes that jump more than the threshold, both sides reported."""

from __future__ import annotations

import pandas as pd
import pytest

from marketdata_assets.frames import candles_from_rows
from marketdata_assets.quality.continuity import JUMP_COLUMNS, price_jumps

T0 = 1_709_596_800_000
MINUTE = 60_000


def closes(*values: float, minutes: list[int] | None = None) -> pd.DataFrame:
    minutes = minutes or list(range(len(values)))
    return candles_from_rows(
        [[T0 + m * MINUTE, c, c, c, c, 1.0] for m, c in zip(minutes, values, strict=True)]
    )


def ts(minute: int) -> pd.Timestamp:
    return pd.Timestamp(T0 + minute * MINUTE, unit="ms", tz="UTC")


def test_jumps_above_the_threshold_are_reported_with_both_sides() -> None:
    jumps = price_jumps(closes(100.0, 105.0, 126.0, 107.1, 107.0))
    assert list(jumps.columns) == JUMP_COLUMNS
    records = jumps.to_dict("records")
    assert [(r["prev_timestamp"], r["timestamp"], r["prev_close"], r["close"]) for r in records] == [
        (ts(1), ts(2), 105.0, 126.0),
        (ts(2), ts(3), 126.0, 107.1),
    ]
    assert [r["change"] for r in records] == pytest.approx([0.2, -0.15])


def test_threshold_is_strict_and_configurable() -> None:
    df = closes(100.0, 125.0, 131.25)
    assert price_jumps(df, threshold=0.25).empty  # exactly 25 % is not above 25 %
    assert len(price_jumps(df)) == 1
    assert len(price_jumps(df, threshold=0.04)) == 2
    with pytest.raises(ValueError, match="threshold"):
        price_jumps(df, threshold=-0.1)


def test_jumps_across_a_gap_and_in_unsorted_input() -> None:
    df = closes(200.0, 100.0, minutes=[90, 0])
    (jump,) = price_jumps(df).to_dict("records")
    assert (jump["prev_timestamp"], jump["timestamp"], jump["change"]) == (ts(0), ts(90), 1.0)


def test_short_frames_have_no_jumps() -> None:
    assert price_jumps(closes()).empty
    assert price_jumps(closes(5.0)).empty
