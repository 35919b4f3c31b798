"""A re-fetch of a stored, valid day that now answers NaN for some minutes loses nothing.

Core only (no Dagster), real Parquet under tmp_path: store a valid day, validate + resample it, re-fetch
a worse version (NaN minutes, plus a few genuinely revised candles), validate + resample again, then
check every layer: raw, quarantine, served 1m, the resampled bins and the revision log.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketdata_assets.pipeline.resample import resample_days
from marketdata_assets.pipeline.validate import validate_days
from marketdata_assets.storage.raw import read_raw_candles
from marketdata_assets.storage.revisions import read_refetch_rejections, read_revisions, store_raw_candles
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_served_candles
from marketdata_assets_tests.storage.helpers import minute_candles

DAY = date(2024, 3, 5)
VENUE, SYMBOL = "binance", "BTCUSDT"
NAN_PRICES = list(range(60, 70))  # every price NaN
NAN_VOLUME = list(range(130, 135))  # prices unchanged, volume NaN (was logged as a 0.0 price change)
REVISED = [300, 301]  # a real, valid revision: close and high move up by 0.5


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    return StorageRoot.from_uri(tmp_path / "data")


def _served(root: StorageRoot, timeframe: str) -> pd.DataFrame:
    start = pd.Timestamp(DAY, tz="UTC")
    return read_served_candles(root, timeframe, VENUE, SYMBOL, start, start + timedelta(days=1))


def _pipeline(root: StorageRoot) -> None:
    assert all(o.ok for o in validate_days(root, VENUE, SYMBOL, [DAY]))
    resample_days(root, VENUE, SYMBOL, [DAY])


def _worse_refetch(good: pd.DataFrame) -> pd.DataFrame:
    fetched = good.copy()
    fetched.loc[NAN_PRICES, ["open", "high", "low", "close"]] = np.nan
    fetched.loc[NAN_VOLUME, "volume"] = np.nan
    fetched.loc[REVISED, ["close", "high"]] += 0.5
    return fetched


def _assert_bins_match_minutes(root: StorageRoot) -> None:
    minutes = _served(root, "1m").set_index("timestamp")
    for timeframe, rule in (("5m", "5min"), ("1h", "1h"), ("4h", "4h"), ("1d", "1D")):
        bins = _served(root, timeframe).set_index("timestamp")
        expected = minutes.resample(rule, label="left", closed="left").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
        )
        expected = expected.loc[bins.index]
        for column in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose(
                bins[column].to_numpy(), expected[column].to_numpy(), err_msg=f"{timeframe} {column}"
            )


def test_a_worse_refetch_never_replaces_good_candles_and_every_layer_stays_consistent(
    root: StorageRoot,
) -> None:
    good = minute_candles(DAY)
    store_raw_candles(root, VENUE, SYMBOL, DAY, good, now=pd.Timestamp("2024-03-06", tz="UTC"))
    _pipeline(root)
    _assert_bins_match_minutes(root)

    write = store_raw_candles(
        root, VENUE, SYMBOL, DAY, _worse_refetch(good), now=pd.Timestamp("2024-03-07", tz="UTC")
    )
    _pipeline(root)

    # raw: the good values stay where the re-fetch was invalid, the valid revision wins
    raw = read_raw_candles(root, VENUE, SYMBOL, DAY).set_index("timestamp").sort_index()
    expected = good.set_index("timestamp").copy()
    expected.iloc[REVISED, expected.columns.get_indexer(["close", "high"])] += 0.5
    pd.testing.assert_frame_equal(raw, expected)

    # served 1m: no minute lost, same values as raw
    served = _served(root, "1m").set_index("timestamp")
    assert len(served) == 1440
    pd.testing.assert_frame_equal(served[expected.columns], expected)

    # every resampled bin is the aggregation of its served minutes (1h volume = sum of its 1m)
    _assert_bins_match_minutes(root)

    # the rejected rows are kept, with their reason, and are not revisions
    rejected = read_refetch_rejections(root, VENUE, SYMBOL, DAY)
    assert sorted(rejected["timestamp"]) == sorted(good["timestamp"].iloc[NAN_PRICES + NAN_VOLUME])
    assert rejected["reason"].str.contains("stored candle kept").all()
    assert write.revision is not None and write.revision.rejected == len(NAN_PRICES) + len(NAN_VOLUME)

    log = read_revisions(root, VENUE, SYMBOL)
    assert len(log) == 1
    row = log.iloc[0]
    assert row["revised"] == len(REVISED) and row["added"] == 0
    assert row["max_abs_price_change"] == pytest.approx(0.5)
    assert row["first_revised"] == good["timestamp"].iloc[REVISED[0]]
    assert row["last_revised"] == good["timestamp"].iloc[REVISED[-1]]


def test_a_refetch_that_is_only_worse_is_not_a_revision(root: StorageRoot) -> None:
    good = minute_candles(DAY)
    store_raw_candles(root, VENUE, SYMBOL, DAY, good)
    _pipeline(root)
    fetched = good.copy()
    fetched.loc[NAN_VOLUME, "volume"] = np.nan
    write = store_raw_candles(root, VENUE, SYMBOL, DAY, fetched)
    _pipeline(root)
    assert write.revision is not None and not write.revision.changed and write.revision.revised == 0
    assert len(read_revisions(root, VENUE, SYMBOL)) == 0
    raw = read_raw_candles(root, VENUE, SYMBOL, DAY).sort_values("timestamp", ignore_index=True)
    pd.testing.assert_frame_equal(raw, good)
    assert len(_served(root, "1m")) == 1440
    _assert_bins_match_minutes(root)


def test_a_refetch_heals_a_stored_invalid_candle(root: StorageRoot) -> None:
    bad = minute_candles(DAY)
    bad.loc[42, "close"] = np.nan
    store_raw_candles(root, VENUE, SYMBOL, DAY, bad)
    validate_days(root, VENUE, SYMBOL, [DAY])
    assert len(_served(root, "1m")) == 1439

    write = store_raw_candles(root, VENUE, SYMBOL, DAY, minute_candles(DAY))
    _pipeline(root)
    assert write.revision is not None and write.revision.revised == 1
    log = read_revisions(root, VENUE, SYMBOL)
    assert list(log["revised"]) == [1]
    # healing a NaN close has no measurable size: NaN, never a 0.0 change
    assert np.isnan(log["max_abs_price_change"].iloc[0]) and np.isnan(log["max_rel_price_change"].iloc[0])
    assert len(_served(root, "1m")) == 1440
    _assert_bins_match_minutes(root)


def test_a_day_held_back_after_its_minutes_changed_keeps_no_stale_bins(root: StorageRoot) -> None:
    """Not reachable through a re-fetch any more (invalid rows never join a stored day), but a raw day
    rewritten otherwise (or a stricter policy) can block a day whose 1m changed: its resampled bins
    must not keep describing the old minutes."""
    from marketdata_assets.storage.raw import write_raw_candles

    store_raw_candles(root, VENUE, SYMBOL, DAY, minute_candles(DAY))
    _pipeline(root)
    changed = minute_candles(DAY)
    changed["volume"] = 7.0
    changed.loc[5, "high"] = changed.loc[5, "low"] - 1.0  # one row quarantined: the day blocks
    write_raw_candles(root, VENUE, SYMBOL, DAY, changed)
    validate_days(root, VENUE, SYMBOL, [DAY])
    (outcome,) = resample_days(root, VENUE, SYMBOL, [DAY])
    assert not outcome.ok and "not resampled" in outcome.error
    assert len(_served(root, "1m")) == 1439
    _assert_bins_match_minutes(root)  # vacuous when the bins are gone; false when they are stale
    assert all(len(_served(root, tf)) == 0 for tf in ("5m", "15m", "1h", "4h", "1d"))
