"""Instrument reference files: layout, atomic idempotent replace, round trip, refusals; and the client."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pandas as pd
import pandas.testing as pdt
import pytest

from marketdata_assets.client import MarketDataClient, MarketDataError
from marketdata_assets.storage.reference import (
    instrument_exchanges,
    instruments_path,
    read_instruments,
    write_instruments,
)
from marketdata_assets.storage.root import InvalidNameError, StorageRoot
from marketdata_assets.venues.instruments import (
    INSTRUMENT_COLUMNS,
    empty_instruments,
    instruments_from_markets,
)

FETCHED = pd.Timestamp("2024-03-10 12:00", tz="UTC")


def _okx_markets(*symbols: str, state: str = "live") -> dict:
    markets = {}
    for i, symbol in enumerate(symbols):
        base, quote = symbol.split("/")
        markets[symbol] = {
            "symbol": symbol,
            "base": base,
            "quote": quote,
            "spot": True,
            "type": "spot",
            "info": {
                "instId": f"{base}-{quote}",
                "state": state,
                "tickSz": "0.1" if base == "BTC" else "0.01",
                "lotSz": "0.00000001",
                "minSz": "0.00001",
                "listTime": str(1548133413000 + i),
            },
        }
    return markets


def _frame(*symbols: str, state: str = "live") -> pd.DataFrame:
    return instruments_from_markets("okx", _okx_markets(*symbols, state=state), FETCHED)


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_layout_round_trip_and_byte_identical_rewrite(tmp_path: Path) -> None:
    root = StorageRoot.from_uri(tmp_path)
    frame = _frame("ETH/USDT", "BTC/USDT")
    first = write_instruments(root, "okx", frame)
    assert first.path == str(tmp_path / "reference/instruments/exchange=okx/data.parquet")
    assert first.rows == 2 and first.bytes > 0
    digest = _digest(first.path)
    assert _digest(write_instruments(root, "okx", frame.iloc[::-1]).path) == digest  # sorted by symbol
    back = read_instruments(root, "okx")
    pdt.assert_frame_equal(back, frame)
    assert list(back.columns) == INSTRUMENT_COLUMNS
    assert [p.name for p in (tmp_path / "reference/instruments/exchange=okx").iterdir()] == ["data.parquet"]


def test_a_refresh_replaces_the_file_and_other_exchanges_stay(tmp_path: Path) -> None:
    root = StorageRoot.from_uri(tmp_path)
    write_instruments(root, "okx", _frame("BTC/USDT", "ETH/USDT"))
    binance = instruments_from_markets("okx", _okx_markets("SOL/USDT"), FETCHED).assign(exchange="binance")
    write_instruments(root, "binance", binance)
    write_instruments(root, "okx", _frame("BTC/USDT", state="suspend"))
    assert instrument_exchanges(root) == ["binance", "okx"]
    okx = read_instruments(root, "okx")
    assert okx["symbol"].tolist() == ["BTC/USDT"] and okx["status"].tolist() == ["halted"]
    both = read_instruments(root)
    assert both[["exchange", "symbol"]].values.tolist() == [["binance", "SOL/USDT"], ["okx", "BTC/USDT"]]


def test_files_read_without_our_code_and_exchange_lives_in_the_path(tmp_path: Path) -> None:
    root = StorageRoot.from_uri(tmp_path)
    write_instruments(root, "okx", _frame("BTC/USDT", "ETH/USDT"))
    rows = duckdb.sql(
        f"SELECT exchange, symbol, tick_size FROM read_parquet('{tmp_path}/reference/instruments/*/data.parquet', "
        "hive_partitioning = true) ORDER BY symbol"
    ).fetchall()
    assert rows == [("okx", "BTC/USDT", 0.1), ("okx", "ETH/USDT", 0.01)]


def test_refusals(tmp_path: Path) -> None:
    root = StorageRoot.from_uri(tmp_path)
    with pytest.raises(InvalidNameError):
        instruments_path(root, "../x")
    with pytest.raises(ValueError, match="rows of other exchanges in the frame: \\['okx'\\]"):
        write_instruments(root, "binance", _frame("BTC/USDT"))
    twice = pd.concat([_frame("BTC/USDT"), _frame("BTC/USDT")], ignore_index=True)
    with pytest.raises(ValueError, match="symbols listed twice: BTC/USDT"):
        write_instruments(root, "okx", twice)
    with pytest.raises(FileNotFoundError, match="no instruments stored for exchange 'bybit'"):
        read_instruments(root, "bybit")
    assert read_instruments(root).empty and list(read_instruments(root).columns) == INSTRUMENT_COLUMNS
    assert write_instruments(root, "okx", empty_instruments()).rows == 0


def test_client_serves_instruments_and_names_what_exists(tmp_path: Path) -> None:
    root = StorageRoot.from_uri(tmp_path)
    client = MarketDataClient(root=root)
    with pytest.raises(MarketDataError, match="no instrument reference data is stored yet"):
        client.instruments()
    write_instruments(root, "okx", _frame("BTC/USDT", "ETH/USDT"))
    pdt.assert_frame_equal(client.instruments(exchange="OKX"), _frame("BTC/USDT", "ETH/USDT"))
    assert client.instruments()["exchange"].unique().tolist() == ["okx"]
    with pytest.raises(MarketDataError, match="no instruments for exchange 'kraken' at .*; stored: okx"):
        client.instruments("kraken")
    with pytest.raises(MarketDataError, match="invalid exchange '../okx'"):
        client.instruments("../okx")
