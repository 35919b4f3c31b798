"""MarketDataClient over an s3:// root on a real S3 server: the same answers as over a directory."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from marketdata_assets.client import MarketDataClient, MarketDataError
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import write_gap_days, write_served_days, write_served_dvol_days
from marketdata_assets_tests.storage.helpers import dvol_points, gap_rows, hourly_candles, minute_candles

DAYS = [date(2023, 1, 31), date(2023, 2, 1), date(2023, 2, 2)]


def _fill(root: StorageRoot) -> None:
    write_served_days(
        root, "1h", "bybit", "BTCUSDT", {d: hourly_candles(d, incomplete_hours=(7,)) for d in DAYS}
    )
    write_served_days(root, "1m", "binance", "ETHUSDT", {DAYS[0]: minute_candles(DAYS[0])})
    write_gap_days(root, "bybit", "BTCUSDT", {DAYS[1]: gap_rows(DAYS[1], 420, length=1)})
    write_served_dvol_days(root, "1h", "BTC", {d: dvol_points(d) for d in DAYS[:2]})


@pytest.fixture
def filled(s3_root_uri: str, tmp_path) -> tuple[MarketDataClient, MarketDataClient]:
    """The same data under an s3:// root and a local directory."""
    _fill(StorageRoot.from_uri(s3_root_uri))
    _fill(StorageRoot.from_uri(tmp_path))
    return MarketDataClient(root=s3_root_uri), MarketDataClient(root=str(tmp_path))


def test_historical_data_across_a_month_boundary_matches_the_local_root(filled):
    s3, local = filled
    frame = s3.get_historical_data("BTC/USDT", "bybit", "1h", "2023-01-31T20:00", "2023-02-01T04:00")
    assert len(frame) == 8 and str(frame.index.tz) == "UTC"
    assert frame.index[0] == pd.Timestamp("2023-01-31T20:00Z") and frame.index[-1] == pd.Timestamp(
        "2023-02-01T03:00Z"
    )
    pd.testing.assert_frame_equal(
        frame, local.get_historical_data("BTC/USDT", "bybit", "1h", "2023-01-31T20:00", "2023-02-01T04:00")
    )
    whole = s3.get_historical_data("BTCUSDT", "bybit", "1h", "2023-01-01", "2023-03-01")
    assert len(whole) == 72 and int((~whole["complete"]).sum()) == 3


def test_dvol_available_and_duckdb(filled):
    s3, local = filled
    pd.testing.assert_frame_equal(
        s3.dvol("BTC", "1h", "2023-01-31", "2023-02-02"), local.dvol("BTC", "1h", "2023-01-31", "2023-02-02")
    )
    pd.testing.assert_frame_equal(s3.available(), local.available())
    available = s3.available()
    assert list(
        available[["exchange", "symbol", "timeframe", "rows", "gap_count"]].itertuples(index=False)
    ) == [
        ("binance", "ETHUSDT", "1m", 1440, 0),
        ("bybit", "BTCUSDT", "1h", 72, 1),
    ]
    con = s3.duckdb()
    assert con.execute("SELECT exchange, count(*) FROM candles GROUP BY ALL ORDER BY 1").fetchall() == [
        ("binance", 1440),
        ("bybit", 72),
    ]


def test_unknown_series_and_out_of_range_errors_list_what_the_bucket_holds(filled):
    s3, _ = filled
    with pytest.raises(MarketDataError, match=r"unknown exchange 'okx' \(stored: binance, bybit\) at s3://"):
        s3.get_historical_data("BTCUSDT", "okx", "1h", "2023-01-01", "2023-02-01")
    with pytest.raises(MarketDataError, match="stored from 2023-01-31"):
        s3.get_historical_data("BTCUSDT", "bybit", "1h", "2024-01-01", "2024-02-01")
    with pytest.raises(MarketDataError, match="invalid symbol"):
        s3.get_historical_data("../../etc", "bybit", "1h", "2023-01-01", "2023-02-01")


def test_root_from_marketdata_root_env(filled, monkeypatch, s3_root_uri):
    monkeypatch.setenv("MARKETDATA_ROOT", s3_root_uri)
    client = MarketDataClient()
    assert client.root.uri == s3_root_uri
    assert len(client.get_historical_data("ETHUSDT", "binance", "1m", "2023-01-31", "2023-02-01")) == 1440
