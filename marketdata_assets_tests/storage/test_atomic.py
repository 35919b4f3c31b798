"""Atomic, deterministic Parquet writes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from marketdata_assets.storage import atomic
from marketdata_assets.storage.raw import read_raw_candles, write_raw_candles
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import write_served_days
from marketdata_assets_tests.storage.helpers import minute_candles

DAY = date(2024, 1, 1)


def _files(tmp_path):
    return sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())


def test_write_leaves_only_the_final_file(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    info = write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY))
    assert _files(tmp_path) == ["raw/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-01-01/data.parquet"]
    assert info.rows == 1440
    assert info.bytes == (tmp_path / _files(tmp_path)[0]).stat().st_size


def test_a_writer_crashing_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    root = StorageRoot.from_uri(tmp_path)
    old = minute_candles(DAY, base=100.0)
    info = write_raw_candles(root, "binance", "BTCUSDT", DAY, old)
    before = Path(info.path).read_bytes()

    def crash(table, sink, **kwargs):
        sink.write(b"PAR1 half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(atomic.pq, "write_table", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY, base=200.0))
    monkeypatch.undo()

    assert Path(info.path).read_bytes() == before
    assert _files(tmp_path) == [info.path.removeprefix(str(tmp_path) + "/")]  # no temp file left
    pd.testing.assert_frame_equal(read_raw_candles(root, "binance", "BTCUSDT", DAY), old)


def test_a_failing_month_rewrite_keeps_the_month_file(tmp_path, monkeypatch):
    root = StorageRoot.from_uri(tmp_path)
    (info,) = write_served_days(root, "1m", "binance", "BTCUSDT", {DAY: minute_candles(DAY)})
    before = Path(info.path).read_bytes()
    monkeypatch.setattr(atomic.pq, "write_table", lambda *a, **k: (_ for _ in ()).throw(OSError("io")))
    with pytest.raises(OSError, match="io"):
        write_served_days(
            root, "1m", "binance", "BTCUSDT", {date(2024, 1, 2): minute_candles(date(2024, 1, 2))}
        )
    assert Path(info.path).read_bytes() == before
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_rewriting_identical_data_is_byte_identical(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    first = write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY))
    data = Path(first.path).read_bytes()
    second = write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY))
    assert Path(second.path).read_bytes() == data
    # and a separate root written from scratch gets the same bytes
    other = write_raw_candles(
        StorageRoot.from_uri(tmp_path / "b"), "binance", "BTCUSDT", DAY, minute_candles(DAY)
    )
    assert Path(other.path).read_bytes() == data


def test_files_carry_explicit_types_and_no_pandas_metadata(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    info = write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY))
    meta = pq.read_metadata(info.path)
    schema = pq.read_schema(info.path)
    assert str(schema.field("timestamp").type) == "timestamp[ms, tz=UTC]"
    assert str(schema.field("close").type) == "double"
    assert b"pandas" not in (schema.metadata or {})
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.row_group(0).column(0).statistics.has_min_max


def test_frames_that_do_not_fit_the_schema_are_refused(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    frame = minute_candles(DAY)
    with pytest.raises(ValueError, match="tz-aware"):
        write_raw_candles(
            root, "binance", "BTCUSDT", DAY, frame.assign(timestamp=frame["timestamp"].dt.tz_localize(None))
        )
    with pytest.raises(ValueError, match="unexpected: \\['extra'\\]"):
        write_raw_candles(root, "binance", "BTCUSDT", DAY, frame.assign(extra=1))
    with pytest.raises(ValueError, match="missing: \\['volume'\\]"):
        write_raw_candles(root, "binance", "BTCUSDT", DAY, frame.drop(columns=["volume"]))
    assert _files(tmp_path) == []
