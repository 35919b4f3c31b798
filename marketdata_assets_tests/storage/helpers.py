"""Test data builders and a filesystem that counts what is opened (no Dagster)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from marketdata_assets.frames import TIMESTAMP_DTYPE
from marketdata_assets.storage.objectstore import DelegatingHandler
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import write_served_days


def minute_candles(day: date, *, base: float = 100.0, skip: tuple[int, ...] = ()) -> pd.DataFrame:
    """A canonical 1-minute candle frame for every minute of ``day`` except the ``skip`` offsets."""
    minutes = np.array([m for m in range(1440) if m not in set(skip)])
    start = pd.Timestamp(day, tz="UTC")
    close = base + minutes / 1000.0
    return pd.DataFrame(
        {
            "timestamp": (start + pd.to_timedelta(minutes, unit="min")).astype(TIMESTAMP_DTYPE),
            "open": close - 0.0005,
            "high": close + 0.01,
            "low": close - 0.01,
            "close": close,
            "volume": np.full(len(minutes), 2.5),
        }
    )


def hourly_candles(day: date, *, base: float = 100.0, incomplete_hours: tuple[int, ...] = ()) -> pd.DataFrame:
    """24 hourly candles with completeness columns; ``incomplete_hours`` have 59 of 60 minutes."""
    hours = np.arange(24)
    start = pd.Timestamp(day, tz="UTC")
    close = base + hours.astype(float)
    n_minutes = np.array([59 if h in incomplete_hours else 60 for h in hours], dtype="int16")
    return pd.DataFrame(
        {
            "timestamp": (start + pd.to_timedelta(hours, unit="h")).astype(TIMESTAMP_DTYPE),
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(24, 60.0),
            "n_minutes": n_minutes,
            "expected_minutes": np.full(24, 60, dtype="int16"),
            "complete": n_minutes == 60,
        }
    )


def dvol_points(day: date, *, freq: str = "1h", base: float = 50.0) -> pd.DataFrame:
    stamps = pd.date_range(pd.Timestamp(day, tz="UTC"), periods=24 if freq == "1h" else 1440, freq=freq)
    values = base + np.arange(len(stamps)) / 100.0
    return pd.DataFrame(
        {
            "timestamp": stamps.astype(TIMESTAMP_DTYPE),
            "open": values,
            "high": values + 0.5,
            "low": values - 0.5,
            "close": values,
        }
    )


def gap_rows(day: date, *starts_minutes: int, venue: str = "binance", length: int = 5) -> pd.DataFrame:
    """One gap of ``length`` missing minutes at each start offset (minutes after midnight)."""
    begin = pd.Timestamp(day, tz="UTC")
    starts = [begin + pd.Timedelta(minutes=m) for m in starts_minutes]
    return pd.DataFrame(
        {
            "venue": [venue] * len(starts),
            "start": pd.Series(starts, dtype=TIMESTAMP_DTYPE),
            "end": pd.Series([s + pd.Timedelta(minutes=length) for s in starts], dtype=TIMESTAMP_DTYPE),
            "minutes": np.full(len(starts), length, dtype="int32"),
            "kind": ["missing"] * len(starts),
        }
    )


class CountingHandler(DelegatingHandler):
    """Delegates to a real filesystem and records every path opened for reading."""

    type_name = "counting"

    def __init__(self, inner: pafs.FileSystem) -> None:
        super().__init__(inner)
        self.opened: list[str] = []

    def open_input_stream(self, path: str) -> pa.NativeFile:
        self.opened.append(path)
        return self.inner.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        self.opened.append(path)
        return self.inner.open_input_file(path)


def counting_root(path: str | Path) -> tuple[StorageRoot, CountingHandler]:
    """A local StorageRoot whose filesystem records opened files."""
    handler = CountingHandler(pafs.LocalFileSystem())
    base = str(Path(path).resolve())
    return StorageRoot(fs=pafs.PyFileSystem(handler), base=base, uri=base, local=True), handler


def write_days_in_process(root_uri: str, days: list[date]) -> int:
    """Worker for the multi-process test: write each day of 1-minute candles in its own call."""
    root = StorageRoot.from_uri(root_uri)
    for day in days:
        write_served_days(root, "1m", "binance", "BTCUSDT", {day: minute_candles(day, base=day.day)})
    return len(days)
