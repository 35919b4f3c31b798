"""The DuckDB catalog: in-memory views over the month files, and the inventory."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from marketdata_assets.storage.catalog import INVENTORY_COLUMNS, connect, inventory
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import write_gap_days, write_served_days, write_served_dvol_days
from marketdata_assets_tests.storage.helpers import dvol_points, gap_rows, hourly_candles, minute_candles

DAYS = [date(2024, 1, 31), date(2024, 2, 1)]


@pytest.fixture
def root(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    for exchange in ("binance", "okx"):
        write_served_days(root, "1m", exchange, "BTCUSDT", {d: minute_candles(d) for d in DAYS})
        write_served_days(
            root, "1h", exchange, "BTCUSDT", {d: hourly_candles(d, incomplete_hours=(5, 6)) for d in DAYS}
        )
    write_gap_days(root, "binance", "BTCUSDT", {DAYS[0]: gap_rows(DAYS[0], 1, 50, 90)})
    write_served_dvol_days(root, "1h", "ETH", {d: dvol_points(d) for d in DAYS})
    return root


@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
def test_views_are_queryable_with_partition_columns(root, engine):
    con = connect(root, engine=engine)
    rows = con.execute(
        "SELECT count(*), min(timestamp), max(timestamp) FROM candles "
        "WHERE timeframe = '1m' AND exchange = 'okx' AND symbol = 'BTCUSDT' "
        "AND timestamp >= TIMESTAMPTZ '2024-01-31 23:00:00+00' AND timestamp < TIMESTAMPTZ '2024-02-01 01:00:00+00'"
    ).fetchone()
    assert rows[0] == 120
    assert pd.Timestamp(rows[1]) == pd.Timestamp("2024-01-31T23:00Z")
    assert con.execute("SELECT DISTINCT month FROM candles ORDER BY 1").fetchall() == [
        ("2024-01",),
        ("2024-02",),
    ]
    assert con.execute("SELECT count(*) FROM gaps WHERE exchange = 'binance'").fetchone() == (3,)
    assert con.execute("SELECT currency, count(*) FROM dvol GROUP BY ALL").fetchall() == [("ETH", 48)]
    columns = [c[0] for c in con.execute("DESCRIBE candles").fetchall()]
    assert columns[:4] == ["timeframe", "exchange", "symbol", "month"]
    assert "complete" in columns


def test_connect_writes_no_database_file(root, tmp_path):
    before = sorted(p for p in tmp_path.rglob("*"))
    connect(root).execute("SELECT count(*) FROM candles").fetchone()
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_empty_root_has_empty_views_with_every_column(tmp_path):
    con = connect(StorageRoot.from_uri(tmp_path))
    assert con.execute("SELECT count(*) FROM candles").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM gaps").fetchone() == (0,)
    assert "filled" in [c[0] for c in con.execute("DESCRIBE dvol").fetchall()]
    frame = inventory(StorageRoot.from_uri(tmp_path))
    assert frame.empty and list(frame.columns) == INVENTORY_COLUMNS


def test_stray_files_are_not_in_the_views(root, tmp_path):
    month_dir = tmp_path / "candles/timeframe=1m/exchange=binance/symbol=BTCUSDT/month=2024-01"
    (month_dir / "stray.parquet").write_bytes(b"garbage")
    (month_dir / ".tmp-0123.tmp").write_bytes(b"garbage")
    assert connect(root).execute("SELECT count(*) FROM candles WHERE timeframe = '1m'").fetchone() == (
        4 * 1440,
    )


def test_inventory_lists_every_series(root):
    frame = inventory(root)
    assert list(frame.columns) == INVENTORY_COLUMNS
    # timeframes in order of length, not as text
    assert frame[["exchange", "timeframe", "rows", "incomplete_bins", "gap_count"]].values.tolist() == [
        ["binance", "1m", 2880, 0, 3],
        ["binance", "1h", 48, 4, 3],
        ["okx", "1m", 2880, 0, 0],
        ["okx", "1h", 48, 4, 0],
    ]
    assert frame["first"].iloc[1] == pd.Timestamp("2024-01-31T00:00Z")
    assert frame["last"].iloc[0] == pd.Timestamp("2024-02-01T23:59Z")
    assert str(frame["first"].dtype) == "datetime64[ms, UTC]"
