"""Re-fetching a stored day: new values win, added candles heal gaps, nothing stored is lost, and
every revision is logged."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from marketdata_assets.quality.revisions import merge_refetch
from marketdata_assets.storage.raw import read_raw_candles
from marketdata_assets.storage.revisions import read_revisions, store_raw_candles
from marketdata_assets.storage.root import StorageRoot

DAY = date(2024, 3, 5)


def day_frame(minutes: range, close: float = 100.0) -> pd.DataFrame:
    ts = pd.date_range("2024-03-05", periods=1440, freq="1min", tz="UTC")[list(minutes)]
    n = len(ts)
    return pd.DataFrame(
        {
            "timestamp": ts.astype("datetime64[ms, UTC]"),
            "open": [100.0] * n,
            "high": [101.0] * n,
            "low": [99.0] * n,
            "close": [close] * n,
            "volume": [1.0] * n,
        }
    )


def test_identical_refetch_changes_nothing() -> None:
    merged = merge_refetch(day_frame(range(1440)), day_frame(range(1440)))
    assert not merged.revision.changed and merged.revision.revised == 0
    assert len(merged.frame) == 1440


def test_revised_values_win_and_are_measured() -> None:
    stored = day_frame(range(1440))
    fetched = stored.copy()
    fetched.loc[10:19, "close"] = 100.5
    merged = merge_refetch(stored, fetched)
    rev = merged.revision
    assert rev.revised == 10 and rev.added == 0 and rev.missing_in_refetch == 0
    assert rev.max_abs_price_change == pytest.approx(0.5) and rev.max_rel_price_change == pytest.approx(0.005)
    assert (
        rev.first_revised == stored["timestamp"].iloc[10] and rev.last_revised == stored["timestamp"].iloc[19]
    )
    assert (merged.frame.set_index("timestamp").loc[stored["timestamp"].iloc[10:20], "close"] == 100.5).all()
    assert list(rev.examples.columns[:3]) == ["timestamp", "old_open", "new_open"] and len(rev.examples) == 10


def test_a_healed_outage_adds_candles() -> None:
    stored = day_frame([m for m in range(1440) if not 180 <= m < 300])
    merged = merge_refetch(stored, day_frame(range(1440)))
    assert merged.revision.added == 120 and merged.revision.revised == 0 and merged.revision.changed
    assert len(merged.frame) == 1440


def test_a_refetch_that_lost_candles_never_deletes_stored_ones() -> None:
    stored = day_frame(range(1440))
    fetched = day_frame([m for m in range(1440) if m < 600])  # the venue answered with a hole
    merged = merge_refetch(stored, fetched)
    assert merged.revision.missing_in_refetch == 840 and not merged.revision.changed
    assert sorted(merged.frame["timestamp"]) == list(stored["timestamp"])


def test_store_raw_candles_logs_each_revision(tmp_path: Path) -> None:
    root = StorageRoot.from_uri(str(tmp_path))
    first = store_raw_candles(root, "binance", "BTCUSDT", DAY, day_frame(range(1440)))
    assert first.revision is None and first.rows == 1440
    second = store_raw_candles(root, "binance", "BTCUSDT", DAY, day_frame(range(1440), close=100.2))
    assert second.revision is not None and second.revision.revised == 1440
    store_raw_candles(root, "binance", "BTCUSDT", DAY, day_frame(range(1440), close=100.2))  # no change
    store_raw_candles(root, "binance", "BTCUSDT", DAY, day_frame(range(1440), close=100.3))
    log = read_revisions(root, "binance", "BTCUSDT")
    assert list(log["revised"]) == [1440, 1440]  # unchanged re-fetches are not revisions
    assert log["max_rel_price_change"].iloc[0] == pytest.approx(0.002)
    assert set(log["day"]) == {DAY}
    assert (read_raw_candles(root, "binance", "BTCUSDT", DAY)["close"] == 100.3).all()
