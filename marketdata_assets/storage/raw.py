"""The raw layer: one Parquet file per (dataset, partition keys, UTC day), exactly as fetched.

Layout (Hive-style directories, one ``data.parquet`` per day)::

    raw/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-01-01/data.parquet
    raw/dvol/currency=BTC/date=2024-01-01/data.parquet              (+ resolution_s column)
    quarantine/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-01-01/data.parquet  (+ reason)

Raw rows keep the order they were fetched in (page-boundary duplicates included); a day with no
candles is stored as an empty file, so "fetched, nothing there" differs from "never fetched". Writing
a day again replaces its file atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from marketdata_assets.frames import day_bounds_ms
from marketdata_assets.storage import schemas
from marketdata_assets.storage.atomic import (
    WriteInfo,
    frame_from_table,
    read_table,
    table_from_frame,
    write_table_atomic,
)
from marketdata_assets.storage.root import (
    DATA_FILE,
    StorageRoot,
    dataset_segments,
    day_segment,
    key_segments,
)


@dataclass(frozen=True)
class DayDataset:
    """A dataset stored as one file per UTC day under ``<name>/<key>=<value>/.../date=<day>/``."""

    name: str
    partition_keys: tuple[str, ...]
    schema: pa.Schema
    rows_within_day: bool = True  # refuse rows whose timestamp falls outside the day

    def segments(self, keys: Mapping[str, str], day: date) -> list[str]:
        return [
            *dataset_segments(self.name),
            *key_segments(keys, self.partition_keys),
            day_segment(day),
            DATA_FILE,
        ]


RAW_CANDLES = DayDataset("raw/ohlcv_1m", ("exchange", "symbol"), schemas.RAW_CANDLES)
RAW_DVOL = DayDataset("raw/dvol", ("currency",), schemas.RAW_DVOL)
# Quarantined rows are the ones that failed validation: their timestamps may be anything.
QUARANTINE_CANDLES = DayDataset(
    "quarantine/ohlcv_1m", ("exchange", "symbol"), schemas.QUARANTINE_CANDLES, rows_within_day=False
)


def day_file_path(root: StorageRoot, dataset: DayDataset, keys: Mapping[str, str], day: date) -> str:
    """The file of one day (validated components; inside the root)."""
    return root.path(*dataset.segments(keys, day))


def write_day_file(
    root: StorageRoot, dataset: DayDataset, keys: Mapping[str, str], day: date, df: pd.DataFrame
) -> WriteInfo:
    """Store ``df`` as the day's file, replacing any previous one atomically."""
    path = day_file_path(root, dataset, keys, day)
    where = f"{dataset.name} {dict(keys)} {day.isoformat()}"
    table = table_from_frame(df, dataset.schema, what=where)
    if dataset.rows_within_day and table.num_rows:
        _check_within_day(df["timestamp"], day, where)
    size = write_table_atomic(root.fs, path, table)
    return WriteInfo(path=root.display(path), rows=table.num_rows, bytes=size)


def read_day_file(root: StorageRoot, dataset: DayDataset, keys: Mapping[str, str], day: date) -> pd.DataFrame:
    """The stored frame of one day; :class:`FileNotFoundError` if the day was never written."""
    path = day_file_path(root, dataset, keys, day)
    if not root.exists(path):
        raise FileNotFoundError(
            f"no {dataset.name} file for {dict(keys)} on {day.isoformat()} ({root.display(path)})"
        )
    return frame_from_table(read_table(root.fs, path, dataset.schema))


def list_days(root: StorageRoot, dataset: DayDataset, keys: Mapping[str, str]) -> list[date]:
    """The days stored for ``keys``, ascending."""
    directory = root.path(*dataset_segments(dataset.name), *key_segments(keys, dataset.partition_keys))
    selector = pafs.FileSelector(directory, allow_not_found=True, recursive=False)
    days = []
    for info in root.fs.get_file_info(selector):
        name = info.base_name
        if info.type == pafs.FileType.Directory and name.startswith("date="):
            try:
                day = date.fromisoformat(name.removeprefix("date="))
            except ValueError:
                continue
            if root.exists(day_file_path(root, dataset, keys, day)):
                days.append(day)
    return sorted(days)


def _check_within_day(timestamps: pd.Series, day: date, where: str) -> None:
    start_ms, end_ms = day_bounds_ms(day)
    values = pd.to_datetime(timestamps, utc=True).dt.as_unit("ms").astype("int64")
    outside = values[(values < start_ms) | (values >= end_ms)]
    if len(outside):
        first = pd.Timestamp(int(outside.iloc[0]), unit="ms", tz="UTC")
        raise ValueError(f"{where}: {len(outside)} rows outside the UTC day (first: {first.isoformat()})")


def _candle_keys(exchange: str, symbol_key: str) -> dict[str, str]:
    return {"exchange": exchange, "symbol": symbol_key}


def write_raw_candles(
    root: StorageRoot, exchange: str, symbol_key: str, day: date, df: pd.DataFrame
) -> WriteInfo:
    """Store one day of fetched 1-minute candles (canonical candle frame, any row order)."""
    return write_day_file(root, RAW_CANDLES, _candle_keys(exchange, symbol_key), day, df)


def read_raw_candles(root: StorageRoot, exchange: str, symbol_key: str, day: date) -> pd.DataFrame:
    return read_day_file(root, RAW_CANDLES, _candle_keys(exchange, symbol_key), day)


def series_lock(root: StorageRoot, exchange: str, symbol_key: str) -> AbstractContextManager[None]:
    """The lock of one candle series (venue x symbol) across its layers.

    Held by each pipeline step that reads one layer of the series and writes another from it (storing a
    re-fetch over the raw day, validating raw into served 1m, resampling 1m into 5m..1d), so two runs of
    the same partitions at once serialise: the second reads what the first wrote instead of both reading
    the same old state and the last writer dropping the other's rows. Taken before any month lock, never
    inside one (no cycle). Same mechanism as the month locks (:meth:`StorageRoot.lock`).
    """
    return root.lock("series", *key_segments(_candle_keys(exchange, symbol_key), ("exchange", "symbol")))


def raw_candle_days(root: StorageRoot, exchange: str, symbol_key: str) -> list[date]:
    return list_days(root, RAW_CANDLES, _candle_keys(exchange, symbol_key))


def write_raw_dvol(
    root: StorageRoot, currency: str, day: date, df: pd.DataFrame, resolution_s: int | None = None
) -> WriteInfo:
    """Store one day of DVOL points; ``resolution_s`` is taken from the frame's column if it has one,
    else from the argument, else inferred from the smallest spacing between points (null when a day
    holds fewer than two points)."""
    frame = df.copy()
    if "resolution_s" not in frame.columns:
        resolution = resolution_s if resolution_s is not None else _smallest_spacing_s(frame["timestamp"])
        frame["resolution_s"] = pd.array([resolution] * len(frame), dtype="Int32")
    return write_day_file(root, RAW_DVOL, {"currency": currency}, day, frame)


def read_raw_dvol(root: StorageRoot, currency: str, day: date) -> pd.DataFrame:
    return read_day_file(root, RAW_DVOL, {"currency": currency}, day)


def raw_dvol_days(root: StorageRoot, currency: str) -> list[date]:
    return list_days(root, RAW_DVOL, {"currency": currency})


def write_quarantine_candles(
    root: StorageRoot, exchange: str, symbol_key: str, day: date, df: pd.DataFrame
) -> WriteInfo:
    """Store the rows of a day that failed validation, each with its ``reason``."""
    return write_day_file(root, QUARANTINE_CANDLES, _candle_keys(exchange, symbol_key), day, df)


def clear_quarantine_candles(root: StorageRoot, exchange: str, symbol_key: str, day: date) -> bool:
    """Remove a day's quarantine file (a re-validation found nothing to quarantine); True if one existed."""
    path = day_file_path(root, QUARANTINE_CANDLES, _candle_keys(exchange, symbol_key), day)
    if not root.exists(path):
        return False
    root.fs.delete_file(path)
    return True


def read_quarantine_candles(root: StorageRoot, exchange: str, symbol_key: str, day: date) -> pd.DataFrame:
    return read_day_file(root, QUARANTINE_CANDLES, _candle_keys(exchange, symbol_key), day)


def _smallest_spacing_s(timestamps: pd.Series) -> int | None:
    values = pd.to_datetime(timestamps, utc=True).drop_duplicates().sort_values()
    if len(values) < 2:
        return None
    return int(values.diff().dropna().min().total_seconds())
