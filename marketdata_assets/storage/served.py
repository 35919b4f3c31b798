"""The served layer backtests read: one Parquet file per (partition keys, UTC month), Hive-style.

Layouts (readable by DuckDB, pandas, Polars and Spark without this package)::

    candles/timeframe=1h/exchange=binance/symbol=BTCUSDT/month=2024-01/data.parquet
        timestamp, open, high, low, close, volume, n_minutes, expected_minutes, complete
    dvol/timeframe=1h/currency=BTC/month=2024-01/data.parquet
        timestamp, open, high, low, close, filled
    gaps/exchange=binance/symbol=BTCUSDT/month=2024-01/data.parquet
        venue, start, end, minutes, kind, day

Partition columns live only in the directory names (as Spark writes them), so no reader ever sees a
column twice. A year of 1-minute candles is 12 files, not 365.

All three are one mechanism, :class:`MonthlyDataset`: every row belongs to a UTC day (its
``day_column``, or the day of its ``time_column``), and writing a batch of days is, per month, a
read-modify-write of the month file under an exclusive lock: rows of the written days are replaced,
all other rows are kept, the result is sorted and written atomically. Re-writing the same days with
the same rows gives a byte-identical file. The lock is ``fcntl.flock`` on ``_locks/...`` for local
roots and a PostgreSQL advisory lock for object stores with a lock database (else in-process only);
see :meth:`StorageRoot.lock` and :mod:`marketdata_assets.storage.root`.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from marketdata_assets.frames import DAY_MS as _DAY_MS
from marketdata_assets.frames import symbol_key as to_symbol_key
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
    key_segments,
    month_of,
    month_segment,
    parse_month,
    validate_name,
)

Prepare = Callable[[pd.DataFrame, Mapping[str, str]], pd.DataFrame]

# Below this many rows a month file is decoded on the calling thread: handing its few pages to the
# thread pool cost more than decoding them (a month of 1h, 744 rows: 0.8 vs 0.45 ms per file).
THREADED_READ_ROWS = 20_000
_UTC_MS = pd.DatetimeTZDtype("ms", "UTC")
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class MonthlyDataset:
    """A dataset stored as one file per month under ``<name>/<key>=<value>/.../month=YYYY-MM/``.

    ``day_column`` (a date column) says which day a row belongs to; without one, the UTC day of
    ``time_column`` does. ``unique_by`` columns must not repeat within a month. ``prepare`` fills
    defaults for optional columns before the frame is checked against ``schema``.
    """

    name: str
    partition_keys: tuple[str, ...]
    schema: pa.Schema
    time_column: str
    sort_by: tuple[str, ...]
    day_column: str | None = None
    unique_by: tuple[str, ...] = ()
    prepare: Prepare | None = field(default=None, compare=False)

    def month_segments(self, keys: Mapping[str, str], month: str) -> list[str]:
        return [
            *dataset_segments(self.name),
            *key_segments(keys, self.partition_keys),
            month_segment(month),
            DATA_FILE,
        ]

    def month_path(self, root: StorageRoot, keys: Mapping[str, str], month: str) -> str:
        return root.path(*self.month_segments(keys, month))

    def days_of(self, frame: pd.DataFrame) -> pd.Series:
        """The UTC day of each row, as midnight ``datetime64`` values (tz-naive)."""
        if self.day_column is not None:
            return pd.to_datetime(frame[self.day_column]).dt.normalize()
        return frame[self.time_column].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()

    def to_table(self, frame: pd.DataFrame, keys: Mapping[str, str], day: date) -> pa.Table:
        """One day's rows as a checked Arrow table (partition columns verified and dropped)."""
        where = f"{self.name} {dict(keys)} {day.isoformat()}"
        if len(frame) == 0:
            return self.schema.empty_table()
        frame = _drop_partition_columns(frame, keys, where)
        if self.day_column is not None and self.day_column not in frame.columns:
            frame = frame.assign(**{self.day_column: [day] * len(frame)})
        if self.prepare is not None:
            frame = self.prepare(frame, keys)
        table = table_from_frame(frame, self.schema, what=where)
        wrong = self._rows_of_other_days(frame, day)
        if wrong:
            raise ValueError(f"{where}: {wrong} rows belong to another UTC day")
        return table

    def _rows_of_other_days(self, frame: pd.DataFrame, day: date) -> int:
        """How many rows of ``frame`` :meth:`days_of` places on another day than ``day``."""
        if self.day_column is None and frame[self.time_column].dtype == _UTC_MS:
            # the same answer from the epoch milliseconds (NaT, the smallest int64, is another day)
            days = frame[self.time_column].array.asi8 // _DAY_MS
            return int((days != (day - _EPOCH).days).sum())
        return int((self.days_of(frame) != pd.Timestamp(day)).sum())

    def write_days(
        self, root: StorageRoot, keys: Mapping[str, str], frames_by_day: Mapping[date, pd.DataFrame]
    ) -> list[WriteInfo]:
        """Replace the rows of each given day; one atomic rewrite per month touched, months ascending."""
        key_segments(keys, self.partition_keys)  # validate before anything else looks at the keys
        by_month: dict[str, dict[date, pa.Table]] = defaultdict(dict)
        for day, frame in sorted(frames_by_day.items()):
            by_month[month_of(day)][day] = self.to_table(frame, keys, day)
        return [self._rewrite_month(root, keys, month, tables) for month, tables in sorted(by_month.items())]

    def _rewrite_month(
        self, root: StorageRoot, keys: Mapping[str, str], month: str, new: Mapping[date, pa.Table]
    ) -> WriteInfo:
        segments = self.month_segments(keys, month)
        path = root.path(*segments)
        with root.lock(*segments):
            parts = [table for table in new.values() if table.num_rows]
            if root.exists(path):
                existing = read_table(root.fs, path, self.schema)
                parts.insert(0, self.without_days(existing, new.keys()))
            return self.commit_month(root, path, parts)

    def without_days(self, table: pa.Table, days: Iterable[date]) -> pa.Table:
        """``table`` minus the rows that belong to ``days``."""
        replaced = pd.to_datetime(list(days))
        keep = ~self.days_of(frame_from_table(table)).isin(replaced)
        return table.filter(pa.array(keep.to_numpy()))

    def commit_month(self, root: StorageRoot, path: str, parts: list[pa.Table]) -> WriteInfo:
        """Sort, check and atomically write the month file (removing it when no rows remain).

        The caller holds the month lock.
        """
        parts = [p for p in parts if p.num_rows]
        if not parts:
            if root.exists(path):
                root.fs.delete_file(path)
            return WriteInfo(path=root.display(path), rows=0, bytes=0)
        table = pa.concat_tables(parts).sort_by([(c, "ascending") for c in self.sort_by]).combine_chunks()
        self._check_unique(table, path)
        size = write_table_atomic(root.fs, path, table)
        return WriteInfo(path=root.display(path), rows=table.num_rows, bytes=size)

    def _check_unique(self, table: pa.Table, path: str) -> None:
        if not self.unique_by:
            return
        frame = table.select(list(self.unique_by)).to_pandas()
        dupes = frame[frame.duplicated(keep=False)]
        if len(dupes):
            raise ValueError(
                f"{path}: {len(dupes)} rows share {', '.join(self.unique_by)} "
                f"(first: {dupes.iloc[0].to_dict()}); dedupe before serving"
            )

    def months(self, root: StorageRoot, keys: Mapping[str, str]) -> list[str]:
        """The months stored for ``keys``, ascending."""
        directory = root.path(*dataset_segments(self.name), *key_segments(keys, self.partition_keys))
        found = []
        for info in root.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True)):
            if info.type == pafs.FileType.Directory and info.base_name.startswith("month="):
                month = info.base_name.removeprefix("month=")
                try:
                    parse_month(month)
                except ValueError:
                    continue
                if root.exists(self.month_path(root, keys, month)):
                    found.append(month)
        return sorted(found)

    def partitions(self, root: StorageRoot) -> list[dict[str, str]]:
        """Every combination of partition values that has a directory, e.g. ``{timeframe, exchange, symbol}``."""
        found: list[dict[str, str]] = [{}]
        for key in self.partition_keys:
            deeper = []
            for values in found:
                directory = root.path(*dataset_segments(self.name), *key_segments(values, tuple(values)))
                selector = pafs.FileSelector(directory, allow_not_found=True)
                for info in root.fs.get_file_info(selector):
                    name = info.base_name
                    if info.type != pafs.FileType.Directory or not name.startswith(f"{key}="):
                        continue
                    value = name.removeprefix(f"{key}=")
                    try:
                        validate_name(value, key)
                    except ValueError:
                        continue
                    deeper.append({**values, key: value})
            found = deeper
        return sorted(found, key=lambda d: tuple(d.values()))

    def read(
        self,
        root: StorageRoot,
        keys: Mapping[str, str],
        months: Iterable[str],
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows of the given months with ``start <= time_column < end``, sorted by ``sort_by``; only
        those month files are opened, each once (so a read racing a rewrite sees one version of it).

        ``columns``: the columns to return (all of ``schema`` when None), in that order.

        Month files are written sorted (:meth:`commit_month`) and hold only their month's rows, so for
        datasets sorted by their time column the files are read in month order, row groups wholly
        outside the range are skipped from the footer statistics, the edges are sliced off (no row
        filter, no sort) and the tables are concatenated as they are; a file found out of order
        (not written by this module) is sorted instead.
        """
        names = list(self.schema.names) if columns is None else list(columns)
        wanted = pa.schema([self.schema.field(n) for n in names])
        paths = [self.month_path(root, keys, m) for m in sorted(set(months))]
        infos = root.fs.get_file_info(paths) if paths else []
        present = [info.path for info in infos if info.type == pafs.FileType.File]
        if not self.time_sorted:
            return self._read_filtered(root, present, start, end, names)
        read_names = names if self.time_column in names else [*names, self.time_column]
        target = pa.schema([self.schema.field(n) for n in read_names])
        parts = [
            part
            for path in present
            if (part := self._read_sorted_file(root, path, start, end, target)) is not None
        ]
        if not parts:
            return wanted.empty_table()
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        edges = [
            (_epoch_ms_of(p.column(self.time_column)[0]), _epoch_ms_of(p.column(self.time_column)[-1]))
            for p in parts
        ]
        if any(before[1] >= after[0] for before, after in zip(edges, edges[1:], strict=False)):
            table = table.sort_by([(c, "ascending") for c in self.sort_by])  # months overlap: not ours
        return table.select(names)

    @property
    def time_sorted(self) -> bool:
        """True when rows are stored in ``time_column`` order (so ranges are contiguous slices)."""
        return self.sort_by[:1] == (self.time_column,)

    def _read_sorted_file(
        self,
        root: StorageRoot,
        path: str,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
        target: pa.Schema,
    ) -> pa.Table | None:
        """One month file's rows in ``[start, end)``, as ``target`` (None when it has none, or is gone)."""
        lo = None if start is None else _epoch_ms(start)
        hi = None if end is None else _epoch_ms(end)
        try:
            source = root.fs.open_input_file(path)
        except FileNotFoundError:  # the month was emptied (and removed) since it was listed
            return None
        with source:
            parquet = pq.ParquetFile(source)
            groups = _row_groups_overlapping(parquet.metadata, self.time_column, lo, hi)
            if not groups:
                return None
            stored = set(parquet.schema_arrow.names)
            rows = sum(parquet.metadata.row_group(g).num_rows for g in groups)
            table = parquet.read_row_groups(
                groups,
                columns=[n for n in target.names if n in stored],
                use_threads=rows >= THREADED_READ_ROWS,
            )
        table = _conform_columns(table, target)
        if not _strictly_increasing(table.column(self.time_column)):
            table = table.sort_by([(c, "ascending") for c in self.sort_by])
        return _slice_range(table, self.time_column, lo, hi)

    def _read_filtered(
        self,
        root: StorageRoot,
        present: list[str],
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
        names: list[str],
    ) -> pa.Table:
        """Datasets not stored in time order (gaps): filter with pushdown, then sort."""
        wanted = pa.schema([self.schema.field(n) for n in names])
        if not present:
            return wanted.empty_table()
        dataset = ds.dataset(present, schema=self.schema, format="parquet", filesystem=root.fs)
        scan = [*names, *(c for c in self.sort_by if c not in names)]
        table = dataset.to_table(columns=scan, filter=_time_filter(self.time_column, start, end))
        return table.sort_by([(c, "ascending") for c in self.sort_by]).select(names)


def _epoch_ms(stamp: pd.Timestamp) -> int:
    """A UTC timestamp as epoch milliseconds, truncated: the stored resolution, and what comparing
    with a ``timestamp[ms]`` scalar (:func:`_time_filter`) does."""
    return pd.Timestamp(stamp).value // 1_000_000


def _row_groups_overlapping(
    metadata: pq.FileMetaData, column: str, lo: int | None, hi: int | None
) -> list[int]:
    """Row groups that may hold ``lo <= column < hi`` (epoch ms), from their min/max statistics; every
    group whose statistics are missing or not plain int64 milliseconds is kept."""
    groups = list(range(metadata.num_row_groups))
    if lo is None and hi is None:
        return groups
    schema = metadata.schema
    index = next((i for i in range(len(schema)) if schema.column(i).path == column), None)
    if index is None:
        return groups
    logical = schema.column(index).logical_type
    if schema.column(index).physical_type != "INT64" or '"timeUnit":"milliseconds"' not in logical.to_json():
        return groups
    kept = []
    for group in groups:
        stats = metadata.row_group(group).column(index).statistics
        known = stats is not None and stats.has_min_max
        if known and ((hi is not None and stats.min_raw >= hi) or (lo is not None and stats.max_raw < lo)):
            continue
        kept.append(group)
    return kept


def _slice_range(table: pa.Table, column: str, lo: int | None, hi: int | None) -> pa.Table | None:
    """The rows of a time-sorted table with ``lo <= column < hi`` (epoch ms): a zero-copy slice, or
    None when there are none."""
    if table.num_rows == 0:
        return None
    times = table.column(column)
    first, last = _epoch_ms_of(times[0]), _epoch_ms_of(times[-1])
    if (lo is None or first >= lo) and (hi is None or last < hi):
        return table
    values = times.to_numpy().view("int64")
    begin = 0 if lo is None else int(np.searchsorted(values, lo, side="left"))
    stop = len(values) if hi is None else int(np.searchsorted(values, hi, side="left"))
    return table.slice(begin, stop - begin) if begin < stop else None


def _epoch_ms_of(value: pa.Scalar) -> int:
    return value.value if isinstance(value, pa.TimestampScalar) else value.cast(pa.int64()).as_py()


def _strictly_increasing(column: pa.ChunkedArray) -> bool:
    """True when ``column`` (integers or timestamps) has no nulls and strictly increases row to row."""
    if column.null_count:
        return False
    previous = None
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        values = chunk.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "M":
            values = values.view("int64")
        if (previous is not None and values[0] <= previous) or not (values[1:] > values[:-1]).all():
            return False
        previous = values[-1]
    return True


def _conform_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns and types (files of an older layout may lack a
    column, which then reads as nulls, or store a type differently)."""
    if table.schema.equals(schema):
        return table
    arrays = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _drop_partition_columns(frame: pd.DataFrame, keys: Mapping[str, str], where: str) -> pd.DataFrame:
    """Partition values live in the path: a frame may carry them as columns only if they agree."""
    present = [k for k in keys if k in frame.columns]
    for key in present:
        values = frame[key].astype(str)
        if key == "symbol":
            values = values.map(to_symbol_key)
        wrong = values[values != keys[key]]
        if len(wrong):
            raise ValueError(f"{where}: column {key!r} holds {wrong.iloc[0]!r}, not {keys[key]!r}")
    return frame.drop(columns=present) if present else frame


def months_for_range(start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """The ``YYYY-MM`` months overlapping ``[start, end)`` (UTC timestamps), ascending."""
    if end <= start:
        return []
    first = start.tz_convert("UTC").date().replace(day=1)
    last = (end.tz_convert("UTC") - pd.Timedelta(milliseconds=1)).date()
    months = []
    current = first
    while current <= last:
        months.append(month_of(current))
        current = current + timedelta(days=calendar.monthrange(current.year, current.month)[1])
    return months


def _fill_minute_completeness(frame: pd.DataFrame, keys: Mapping[str, str]) -> pd.DataFrame:
    """1-minute candles are complete by construction: n_minutes = expected_minutes = 1 when absent."""
    if keys["timeframe"] != "1m":
        return frame
    defaults = {"n_minutes": 1, "expected_minutes": 1, "complete": True}
    missing = {column: value for column, value in defaults.items() if column not in frame.columns}
    return frame.assign(**missing) if missing else frame


def _default_not_filled(frame: pd.DataFrame, keys: Mapping[str, str]) -> pd.DataFrame:
    """Points without a ``filled`` column are published values (e.g. hourly candles of real points)."""
    return frame if "filled" in frame.columns else frame.assign(filled=False)


def _fill_gap_venue(frame: pd.DataFrame, keys: Mapping[str, str]) -> pd.DataFrame:
    if "venue" not in frame.columns:
        return frame.assign(venue=keys["exchange"])
    return frame


CANDLES = MonthlyDataset(
    name="candles",
    partition_keys=("timeframe", "exchange", "symbol"),
    schema=schemas.SERVED_CANDLES,
    time_column="timestamp",
    sort_by=("timestamp",),
    unique_by=("timestamp",),
    prepare=_fill_minute_completeness,
)
DVOL = MonthlyDataset(
    name="dvol",
    partition_keys=("timeframe", "currency"),
    schema=schemas.SERVED_DVOL,
    time_column="timestamp",
    sort_by=("timestamp",),
    unique_by=("timestamp",),
    prepare=_default_not_filled,
)
GAPS = MonthlyDataset(
    name="gaps",
    partition_keys=("exchange", "symbol"),
    schema=schemas.GAPS,
    time_column="start",
    day_column="day",
    sort_by=("day", "start", "end", "kind", "venue"),
    prepare=_fill_gap_venue,
)
MONTHLY_DATASETS = {d.name: d for d in (CANDLES, DVOL, GAPS)}


def candle_keys(timeframe: str, exchange: str, symbol_key: str) -> dict[str, str]:
    return {"timeframe": timeframe, "exchange": exchange, "symbol": symbol_key}


def write_served_days(
    root: StorageRoot,
    timeframe: str,
    exchange: str,
    symbol_key: str,
    frames_by_day: Mapping[date, pd.DataFrame],
) -> list[WriteInfo]:
    """Replace the candles of the given UTC days in their month files (one rewrite per month).

    Frames hold the candle columns plus ``n_minutes``, ``expected_minutes``, ``complete``; for
    ``1m`` the three may be omitted (1, 1, True). An empty frame clears its day.
    """
    return CANDLES.write_days(root, candle_keys(timeframe, exchange, symbol_key), frames_by_day)


def write_served_dvol_days(
    root: StorageRoot, timeframe: str, currency: str, frames_by_day: Mapping[date, pd.DataFrame]
) -> list[WriteInfo]:
    """Replace the DVOL points (timestamp, open, high, low, close[, filled]) of the given days;
    ``filled`` defaults to False."""
    return DVOL.write_days(root, {"timeframe": timeframe, "currency": currency}, frames_by_day)


def write_gap_days(
    root: StorageRoot, exchange: str, symbol_key: str, frames_by_day: Mapping[date, pd.DataFrame]
) -> list[WriteInfo]:
    """Replace the gaps recorded for the given days (venue, start, end, minutes, kind[, day]).

    ``day`` defaults to the dict key; ``venue`` to ``exchange``; a ``symbol`` column must match
    ``symbol_key`` and is dropped (it lives in the path). An empty frame means "no gaps that day".
    """
    return GAPS.write_days(root, {"exchange": exchange, "symbol": symbol_key}, frames_by_day)


def _time_filter(column: str, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pc.Expression | None:
    expression = None
    if start is not None:
        expression = pc.field(column) >= pa.scalar(start, type=schemas.UTC_MS)
    if end is not None:
        upper = pc.field(column) < pa.scalar(end, type=schemas.UTC_MS)
        expression = upper if expression is None else expression & upper
    return expression


def read_range_table(
    root: StorageRoot,
    dataset: MonthlyDataset,
    keys: Mapping[str, str],
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """Rows with ``start <= time_column < end`` (UTC) as an Arrow table, sorted; only the month files
    of the range are opened. ``columns``: which columns, in that order (default: all)."""
    start = None if start is None else pd.Timestamp(start).tz_convert("UTC")
    end = None if end is None else pd.Timestamp(end).tz_convert("UTC")
    if start is not None and end is not None:
        months = months_for_range(start, end)
    else:
        months = [
            m
            for m in dataset.months(root, keys)
            if (start is None or m >= month_of(start.date()))
            and (end is None or pd.Timestamp(parse_month(m), tz="UTC") < end)
        ]
    return dataset.read(root, keys, months, start, end, columns)


def read_range(
    root: StorageRoot,
    dataset: MonthlyDataset,
    keys: Mapping[str, str],
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """:func:`read_range_table` as a frame (``time_column`` a column, not the index)."""
    return frame_from_table(read_range_table(root, dataset, keys, start, end, columns))


def read_served_candles(
    root: StorageRoot,
    timeframe: str,
    exchange: str,
    symbol_key: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Served candles in ``[start, end)`` as a frame with a ``timestamp`` column, sorted."""
    return read_range(root, CANDLES, candle_keys(timeframe, exchange, symbol_key), start, end)


def read_served_dvol(
    root: StorageRoot,
    timeframe: str,
    currency: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    return read_range(root, DVOL, {"timeframe": timeframe, "currency": currency}, start, end)


def read_gaps(
    root: StorageRoot,
    exchange: str,
    symbol_key: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Gaps whose ``start`` lies in ``[start, end)``, with ``exchange`` and ``symbol`` columns added."""
    frame = read_range(root, GAPS, {"exchange": exchange, "symbol": symbol_key}, start, end)
    return frame.assign(exchange=exchange, symbol=symbol_key)
