"""MarketDataClient: range semantics, pruning, validation and errors, over real files in tmp_path."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest

from marketdata_assets.client import MarketDataClient, MarketDataError
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import write_gap_days, write_served_days, write_served_dvol_days
from marketdata_assets_tests.storage.helpers import (
    counting_root,
    dvol_points,
    gap_rows,
    hourly_candles,
    minute_candles,
)

BYBIT_DAYS = [date(2022, 12, 31), date(2023, 1, 1), date(2023, 1, 2), date(2023, 1, 31), date(2023, 2, 1)]


def _fill(root: StorageRoot) -> None:
    write_served_days(
        root, "1h", "bybit", "BTCUSDT", {d: hourly_candles(d, incomplete_hours=(7,)) for d in BYBIT_DAYS}
    )
    write_served_days(root, "1m", "binance", "ETHUSDT", {date(2023, 1, 1): minute_candles(date(2023, 1, 1))})
    write_gap_days(root, "bybit", "BTCUSDT", {date(2023, 1, 1): gap_rows(date(2023, 1, 1), 420, length=1)})
    write_served_dvol_days(root, "1h", "BTC", {d: dvol_points(d) for d in BYBIT_DAYS[:2]})


@pytest.fixture
def client(tmp_path) -> MarketDataClient:
    root = StorageRoot.from_uri(tmp_path)
    _fill(root)
    return MarketDataClient(mode="backtest", root=str(tmp_path))


def test_frame_shape_index_and_columns(client):
    frame = client.get_historical_data("BTCUSDT", "bybit", "1h", "2023-01-01", "2023-01-02")
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "timestamp" and str(frame.index.tz) == "UTC"
    assert list(frame.columns) == [
        "open",
        "high",
        "low",
        "close",
        "volume",
        "n_minutes",
        "expected_minutes",
        "complete",
    ]
    assert len(frame) == 24 and frame.index.is_monotonic_increasing
    assert frame["complete"].tolist().count(False) == 1


def test_start_is_inclusive_and_end_exclusive_across_month_and_year_boundaries(client):
    frame = client.get_historical_data(
        "BTC/USDT", "bybit", "1h", "2022-12-31T23:00:00", "2023-01-01T01:00:00"
    )
    assert frame.index.tolist() == [pd.Timestamp("2022-12-31T23:00Z"), pd.Timestamp("2023-01-01T00:00Z")]
    frame = client.get_historical_data("BTCUSDT", "bybit", "1h", date(2023, 1, 31), date(2023, 2, 2))
    assert frame.index[0] == pd.Timestamp("2023-01-31T00:00Z") and frame.index[-1] == pd.Timestamp(
        "2023-02-01T23:00Z"
    )
    assert len(frame) == 48
    whole = client.get_historical_data("BTCUSDT", "bybit", "1h", "2022-01-01", "2024-01-01")
    assert len(whole) == 24 * len(BYBIT_DAYS)


@pytest.mark.parametrize(
    "start",
    [
        "2023-01-01",
        "2023-01-01T00:00:00Z",
        date(2023, 1, 1),
        datetime(2023, 1, 1),  # naive = UTC
        datetime(2023, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
        pd.Timestamp("2023-01-01"),
        pd.Timestamp("2022-12-31T19:00", tz="America/New_York"),
    ],
)
def test_date_arguments_of_every_kind_mean_the_same_utc_instant(client, start):
    frame = client.get_historical_data("BTCUSDT", "bybit", "1h", start, "2023-01-01T03:00")
    assert frame.index.tolist() == list(pd.date_range("2023-01-01", periods=3, freq="1h", tz="UTC"))


def test_only_the_month_files_of_the_range_are_opened(tmp_path):
    root, handler = counting_root(tmp_path)
    _fill(root)
    client = MarketDataClient(root=root)
    handler.opened.clear()
    frame = client.get_historical_data("BTCUSDT", "bybit", "1h", "2023-01-31T22:00", "2023-02-01T02:00")
    assert len(frame) == 4
    opened = sorted(path.split("/month=")[1] for path in handler.opened)
    assert opened == ["2023-01/data.parquet", "2023-02/data.parquet"]
    assert all("symbol=BTCUSDT" in path and "timeframe=1h" in path for path in handler.opened)

    handler.opened.clear()
    client.get_historical_data("BTCUSDT", "bybit", "1h", "2023-01-02", "2023-01-03")
    assert [path.split("/month=")[1] for path in handler.opened] == ["2023-01/data.parquet"]


def test_unknown_exchange_symbol_or_timeframe_lists_what_exists(client):
    with pytest.raises(MarketDataError, match="unknown exchange 'okx'") as exc:
        client.get_historical_data("BTCUSDT", "okx", "1h", "2023-01-01", "2023-01-02")
    assert "bybit" in str(exc.value) and "binance" in str(exc.value) and "ETHUSDT" in str(exc.value)
    with pytest.raises(MarketDataError, match="unknown symbol 'SOLUSDT' on bybit \\(stored: BTCUSDT\\)"):
        client.get_historical_data("SOL/USDT", "bybit", "1h", "2023-01-01", "2023-01-02")
    with pytest.raises(MarketDataError, match="no '4h' candles for BTCUSDT on bybit \\(stored: 1h\\)"):
        client.get_historical_data("BTCUSDT", "bybit", "4h", "2023-01-01", "2023-01-02")


@pytest.mark.parametrize(
    "symbol, exchange, timeframe",
    [
        ("../BTCUSDT", "bybit", "1h"),
        ("BTC/USDT/X", "bybit", "1h"),
        ("BTCUSDT", "../bybit", "1h"),
        ("BTCUSDT", "by bit", "1h"),
        ("BTCUSDT", "bybit'; DROP TABLE candles; --", "1h"),
        ("BTCUSDT", "bybit", "1h/../../x"),
        ("BTC,USDT", "bybit", "1h"),
        ("BTCUSDT\n", "bybit", "1h"),
    ],
)
def test_malformed_names_are_rejected_before_any_path_is_built(tmp_path, symbol, exchange, timeframe):
    root, handler = counting_root(tmp_path)
    _fill(root)
    client = MarketDataClient(root=root)
    handler.opened.clear()
    with pytest.raises(MarketDataError, match="invalid"):
        client.get_historical_data(symbol, exchange, timeframe, "2023-01-01", "2023-01-02")
    assert handler.opened == []


def test_bad_ranges_are_clear_errors(client):
    with pytest.raises(MarketDataError, match="reversed range"):
        client.get_historical_data("BTCUSDT", "bybit", "1h", "2023-02-01", "2023-01-01")
    with pytest.raises(MarketDataError, match="must be before"):
        client.get_historical_data("BTCUSDT", "bybit", "1h", "2023-01-01", "2023-01-01")
    with pytest.raises(MarketDataError, match="cannot parse"):
        client.get_historical_data("BTCUSDT", "bybit", "1h", "yesterday-ish", "2023-01-01")
    with pytest.raises(MarketDataError, match="start_date is required"):
        client.get_historical_data("BTCUSDT", "bybit", "1h", None, "2023-01-01")
    with pytest.raises(MarketDataError, match="expected an ISO date"):
        client.get_historical_data("BTCUSDT", "bybit", "1h", 1672531200, "2023-01-02")
    with pytest.raises(
        MarketDataError, match="stored from 2022-12-31T00:00:00\\+00:00 to 2023-02-01T23:00:00\\+00:00"
    ):
        client.get_historical_data("BTCUSDT", "bybit", "1h", "2021-01-01", "2022-01-01")


def test_a_range_inside_the_stored_span_without_candles_is_empty_not_an_error(client):
    frame = client.get_historical_data("BTCUSDT", "bybit", "1h", "2023-01-10", "2023-01-20")
    assert frame.empty
    assert list(frame.columns)[:5] == ["open", "high", "low", "close", "volume"]


def test_available_lists_series_with_gap_counts(client):
    available = client.available()
    assert available[
        ["exchange", "symbol", "timeframe", "rows", "incomplete_bins", "gap_count"]
    ].values.tolist() == [
        ["binance", "ETHUSDT", "1m", 1440, 0, 0],
        ["bybit", "BTCUSDT", "1h", 120, 5, 1],
    ]
    assert available["first"].iloc[1] == pd.Timestamp("2022-12-31T00:00Z")
    assert available["last"].iloc[1] == pd.Timestamp("2023-02-01T23:00Z")


def test_dvol(client):
    frame = client.dvol("btc", "1h", "2022-12-31T12:00", "2023-01-02")
    assert len(frame) == 36 and list(frame.columns) == ["open", "high", "low", "close", "filled"]
    assert frame.index.name == "timestamp" and not frame["filled"].any()
    with pytest.raises(MarketDataError, match="stored: BTC 1h"):
        client.dvol("ETH", "1h", "2023-01-01", "2023-01-02")


def test_duckdb_views(client):
    con = client.duckdb()
    assert con.execute("SELECT count(*) FROM candles WHERE exchange = 'bybit'").fetchone() == (120,)
    assert con.execute("SELECT kind, minutes FROM gaps").fetchall() == [("missing", 1)]
    assert con.execute("SELECT count(*) FROM dvol").fetchone() == (48,)


def test_modes_and_root_resolution(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unsupported mode 'live'"):
        MarketDataClient(mode="live", root=str(tmp_path))

    _fill(StorageRoot.from_uri(tmp_path / "store"))
    monkeypatch.setenv("MARKETDATA_ROOT", str(tmp_path / "store"))
    assert len(MarketDataClient().available()) == 2

    monkeypatch.delenv("MARKETDATA_ROOT")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "environment: test\nstorage:\n  root: ./store\n"
        "venues:\n  bybit:\n    symbols: [BTC/USDT]\n    start_date: 2023-01-01\n"
    )
    monkeypatch.setenv("MARKETDATA_CONFIG", str(config))
    assert MarketDataClient().root.base == str((tmp_path / "store").resolve())

    monkeypatch.setenv("MARKETDATA_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(MarketDataError, match="MARKETDATA_ROOT"):
        MarketDataClient()


def test_empty_store_says_so(tmp_path):
    client = MarketDataClient(root=str(tmp_path))
    with pytest.raises(MarketDataError, match="no candles are stored yet"):
        client.get_historical_data("BTCUSDT", "bybit", "1h", "2023-01-01", "2023-01-02")
    assert client.available().empty
