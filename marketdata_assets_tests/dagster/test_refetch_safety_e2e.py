"""A re-fetch that answers NaN for stored minutes, through real Dagster runs against the simulator.

The day is served once from clean data; then the simulator revises every close (``revised``) and
makes some rows per page NaN (``invalid:what=nan``). The second run must keep every served minute, take
the valid revisions, quarantine the NaN rows apart, log only real revisions and leave every resampled
bin equal to the aggregation of its served minutes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey
from dagster._core.test_utils import instance_for_test

from marketdata_assets.storage.raw import read_raw_candles
from marketdata_assets.storage.revisions import read_refetch_rejections, read_revisions
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_served_candles
from marketdata_assets_tests.dagster.test_raw_ingestion_e2e import run, sim_settings

pytestmark = pytest.mark.e2e

KEYS = ["bybit/ohlcv_1m_raw", "bybit/ohlcv_1m", "bybit/gaps"] + [
    f"bybit/ohlcv_{tf}" for tf in ("5m", "15m", "1h", "4h", "1d")
]
PARTITION = "2024-03-05|BTCUSDT"
DAY = date(2024, 3, 5)


def test_a_nan_refetch_loses_nothing_and_keeps_every_layer_consistent(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator(seed=4)
    sim.add_fault("bybit:revised:factor=1.002")  # candles served once come back with a new close
    settings = sim_settings(tmp_path, sim)
    root = StorageRoot.from_uri(settings.storage_root)
    with instance_for_test() as instance:
        assert run(settings, KEYS, PARTITION, PARTITION, instance).success
        first_raw = read_raw_candles(root, "bybit", "BTCUSDT", DAY).drop_duplicates("timestamp", keep="last")
        assert len(read_served_candles(root, "1m", "bybit", "BTCUSDT")) == 1440

        sim.add_fault("bybit:invalid:what=nan,rows=3")
        assert run(settings, KEYS, PARTITION, PARTITION, instance).success
        latest = instance.fetch_materializations(AssetKey(["bybit", "ohlcv_1m_raw"]), limit=1).records[0]
        metadata = latest.asset_materialization.metadata

    rejected = read_refetch_rejections(root, "bybit", "BTCUSDT", DAY)
    assert len(rejected) > 0 and metadata["rejected_candles"].value == len(rejected)
    assert metadata["revised_candles"].value == 1440 - len(rejected)

    # raw keeps the old, good candle where the re-fetch said NaN; takes the revision everywhere else
    raw = read_raw_candles(root, "bybit", "BTCUSDT", DAY).drop_duplicates("timestamp", keep="last")
    raw = raw.set_index("timestamp").sort_index()
    old = first_raw.set_index("timestamp").sort_index()
    assert np.isfinite(raw.to_numpy()).all() and len(raw) == 1440
    kept = raw.index.isin(rejected["timestamp"])
    np.testing.assert_allclose(raw.loc[kept, "close"], old.loc[kept, "close"])
    np.testing.assert_allclose(raw.loc[~kept, "close"], old.loc[~kept, "close"] * 1.002, rtol=1e-6)

    # served 1m: every minute still there, equal to raw
    minutes = read_served_candles(root, "1m", "bybit", "BTCUSDT").set_index("timestamp")
    assert len(minutes) == 1440
    np.testing.assert_allclose(minutes["close"], raw["close"])
    # every resampled bin is the aggregation of its served minutes
    for timeframe, rule in (("1h", "1h"), ("4h", "4h"), ("1d", "1D")):
        bins = read_served_candles(root, timeframe, "bybit", "BTCUSDT").set_index("timestamp")
        agg = minutes.resample(rule).agg({"high": "max", "low": "min", "close": "last", "volume": "sum"})
        for column in agg.columns:
            np.testing.assert_allclose(bins[column], agg.loc[bins.index, column], err_msg=timeframe)

    log = read_revisions(root, "bybit", "BTCUSDT")
    assert list(log["revised"]) == [1440 - len(rejected)]
    assert log["max_rel_price_change"].iloc[0] == pytest.approx(0.002, rel=0.05)
