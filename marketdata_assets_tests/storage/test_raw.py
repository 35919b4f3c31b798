"""Raw and quarantine day files."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from marketdata_assets.storage.raw import (
    raw_candle_days,
    raw_dvol_days,
    read_quarantine_candles,
    read_raw_candles,
    read_raw_dvol,
    write_quarantine_candles,
    write_raw_candles,
    write_raw_dvol,
)
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets_tests.storage.helpers import dvol_points, minute_candles

DAY = date(2024, 3, 10)


def test_raw_candles_round_trip_keeping_fetch_order_and_duplicates(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    frame = minute_candles(DAY)
    fetched = pd.concat([frame.iloc[1000:], frame.iloc[:1001]], ignore_index=True)  # unsorted, one duplicate
    info = write_raw_candles(root, "binance", "BTCUSDT", DAY, fetched)
    assert info.rows == 1441
    assert info.path == str(
        tmp_path / "raw/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-03-10/data.parquet"
    )
    pd.testing.assert_frame_equal(read_raw_candles(root, "binance", "BTCUSDT", DAY), fetched)


def test_rerun_replaces_the_day(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY, base=1.0))
    revised = minute_candles(DAY, base=2.0, skip=(5, 6))
    write_raw_candles(root, "binance", "BTCUSDT", DAY, revised)
    pd.testing.assert_frame_equal(read_raw_candles(root, "binance", "BTCUSDT", DAY), revised)


def test_empty_day_is_stored_and_differs_from_never_fetched(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    write_raw_candles(root, "okx", "SOLUSDT", DAY, minute_candles(DAY).iloc[:0])
    assert read_raw_candles(root, "okx", "SOLUSDT", DAY).empty
    assert raw_candle_days(root, "okx", "SOLUSDT") == [DAY]
    with pytest.raises(FileNotFoundError, match="2024-03-11"):
        read_raw_candles(root, "okx", "SOLUSDT", date(2024, 3, 11))
    assert raw_candle_days(root, "okx", "ETHUSDT") == []


def test_rows_outside_the_day_are_refused(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    frame = pd.concat([minute_candles(DAY), minute_candles(date(2024, 3, 11)).iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="1 rows outside the UTC day"):
        write_raw_candles(root, "binance", "BTCUSDT", DAY, frame)
    assert not list(tmp_path.rglob("*.parquet"))


def test_raw_dvol_keeps_the_resolution(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    write_raw_dvol(root, "BTC", DAY, dvol_points(DAY, freq="1h"))
    write_raw_dvol(root, "ETH", DAY, dvol_points(DAY, freq="1min"), resolution_s=60)
    write_raw_dvol(root, "BTC", date(2024, 3, 11), dvol_points(date(2024, 3, 11)).assign(resolution_s=3600))
    btc = read_raw_dvol(root, "BTC", DAY)
    assert btc["resolution_s"].tolist() == [3600] * 24
    assert list(btc.columns) == ["timestamp", "open", "high", "low", "close", "resolution_s"]
    assert read_raw_dvol(root, "ETH", DAY)["resolution_s"].unique().tolist() == [60]
    assert raw_dvol_days(root, "BTC") == [DAY, date(2024, 3, 11)]
    assert (tmp_path / "raw/dvol/currency=BTC/date=2024-03-10/data.parquet").is_file()


def test_quarantine_stores_rows_with_their_reason(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    bad = minute_candles(DAY).iloc[:2].assign(reason=["high < low", "duplicate timestamp"])
    bad.loc[0, "timestamp"] = pd.Timestamp("2024-03-09T23:59:00Z")  # quarantine accepts any timestamp
    info = write_quarantine_candles(root, "bybit", "ETHUSDT", DAY, bad)
    assert "quarantine/ohlcv_1m/exchange=bybit/symbol=ETHUSDT/date=2024-03-10/data.parquet" in info.path
    pd.testing.assert_frame_equal(read_quarantine_candles(root, "bybit", "ETHUSDT", DAY), bad)
