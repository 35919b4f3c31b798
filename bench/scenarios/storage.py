"""``storage``: bytes per candle of the served 1m vs feather, plain Parquet and freqtrade's json.gz.

Two data sets: the real recorded Binance ADA/BTC days in ``bench/data/`` (see its SOURCES.md) and a
synthetic year (random walk on a 0.01 tick). The project's size is what
``storage.served.write_served_days`` leaves under ``candles/timeframe=1m`` (zstd Parquet, one file per
month, with the completeness columns it adds); the others hold the same six columns
(timestamp, open, high, low, close, volume): feather as freqtrade writes it (lz4, level 9), Parquet with
pyarrow's defaults (snappy), and json.gz as freqtrade's json format (``[[ms, o, h, l, c, v], ...]``,
gzip).

Lossless: the project's files are read back without our code by pyarrow, pandas, DuckDB
(``read_parquet``) and Polars, and every timestamp, price and volume must equal what was written bit
for bit; the result is a note on each case (``lossless: ...``). The size per column (compressed column
chunks, summed over the month files) is kept in the samples.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench import synthetic
from bench.common import BENCH_DIR, Row, ScenarioResult, timed_load

NAME = "storage"
DEFAULT_REPEATS = 1  # sizes are deterministic
COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
REAL_FILES = sorted((BENCH_DIR / "data").glob("binance_spot_ADABTC_1m_*.csv"))


def real_candles() -> pd.DataFrame:
    from marketdata_assets.frames import TIMESTAMP_DTYPE

    parts = [pd.read_csv(f, header=None, usecols=range(6), names=COLUMNS) for f in REAL_FILES]
    frame = pd.concat(parts, ignore_index=True)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True).astype(TIMESTAMP_DTYPE)
    return frame


def sizes(frame: pd.DataFrame, workdir: Path, key: str) -> dict[str, Any]:
    from marketdata_assets.storage.root import StorageRoot
    from marketdata_assets.storage.served import write_served_days

    root_dir = workdir / key / "root"
    root = StorageRoot.from_uri(root_dir)
    by_month: dict[str, dict] = {}
    for day, part in synthetic.by_day(frame).items():
        by_month.setdefault(day.strftime("%Y-%m"), {})[day] = part
    for frames in by_month.values():
        write_served_days(root, "1m", "binance", key, frames)
    files = sorted((root_dir / "candles" / "timeframe=1m").rglob("*.parquet"))
    project = sum(f.stat().st_size for f in files)
    flat = frame[COLUMNS].reset_index(drop=True)
    feather = workdir / key / "candles.feather"
    flat.to_feather(feather, compression="lz4", compression_level=9)
    parquet = workdir / key / "candles.parquet"
    pq.write_table(pa.Table.from_pandas(flat, preserve_index=False), parquet)
    json_gz = workdir / key / "candles.json.gz"
    ms = flat["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")
    values = flat[["open", "high", "low", "close", "volume"]].to_numpy().tolist()
    rows = [[int(t), *v] for t, v in zip(ms, values, strict=True)]
    with gzip.open(json_gz, "wt") as out:
        json.dump(rows, out)
    return {
        "lossless": lossless(frame[COLUMNS], files),
        "columns": column_bytes(files),
        "project": project,
        "feather (lz4, freqtrade)": feather.stat().st_size,
        "parquet (pyarrow defaults)": parquet.stat().st_size,
        "json.gz (freqtrade)": json_gz.stat().st_size,
        "rows": len(flat),
    }


def lossless(frame: pd.DataFrame, files: list[Path]) -> str:
    """Which readers (without our code) give back every value bit for bit: ``all 4`` or the failures."""
    import duckdb
    import numpy as np

    want = frame.sort_values("timestamp").reset_index(drop=True)
    want_bits = {c: want[c].to_numpy(dtype="float64").view("uint64") for c in COLUMNS[1:]}
    want_ms = want["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")
    names = [str(f) for f in files]
    got: dict[str, dict[str, np.ndarray]] = {
        "pyarrow": pa.concat_tables([pq.read_table(f) for f in names]).to_pandas(),
        "pandas": pd.concat([pd.read_parquet(f) for f in names], ignore_index=True),
    }
    listing = ", ".join(f"'{n}'" for n in names)
    got["duckdb"] = duckdb.sql(
        f"SELECT epoch_ms(timestamp) AS ms, * EXCLUDE (timestamp) FROM read_parquet([{listing}]) ORDER BY ms"
    ).df()
    try:
        import polars as pl

        got["polars"] = pl.read_parquet(names).sort("timestamp").to_pandas()
    except ImportError:  # pragma: no cover - polars is in the dev group
        pass
    failed = []
    for reader, read in got.items():
        ms = (
            read["ms"].to_numpy()
            if "ms" in read
            else read["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")
        )
        same = len(read) == len(want) and np.array_equal(ms, want_ms)
        for column, bits in want_bits.items():
            values = read[column].to_numpy()
            same = same and values.dtype == np.float64 and np.array_equal(values.view("uint64"), bits)
        if not same:
            failed.append(reader)
    return f"all {len(got)} readers" if not failed else "NOT by " + ", ".join(failed)


def column_bytes(files: list[Path]) -> dict[str, int]:
    """Compressed bytes per column (column chunks, all row groups of all files)."""
    sizes: dict[str, int] = {}
    for f in files:
        metadata = pq.ParquetFile(f).metadata
        for group in range(metadata.num_row_groups):
            for i in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(i)
                sizes[chunk.path_in_schema] = sizes.get(chunk.path_in_schema, 0) + chunk.total_compressed_size
    return sizes


def run(workdir: Path, repeats: int, quick: bool = False) -> ScenarioResult:
    result = ScenarioResult(NAME, repeats=1)
    data: dict[str, dict[str, Any]] = {}
    with timed_load(result):
        if REAL_FILES:
            data["real ADA/BTC 2 days"] = sizes(real_candles(), workdir, "ADABTC")
        else:
            result.notes.append("bench/data has no real ADABTC files: real case skipped")
        days = 31 if quick else 365
        data[f"synthetic {days} days"] = sizes(synthetic.minutes(date(2023, 1, 1), days), workdir, "BTCUSDT")
    for case, s in data.items():
        rows = s["rows"]
        note = f"{rows:,} rows; lossless: {s['lossless']}"
        for name, size in s.items():
            if name in ("project", "rows", "lossless", "columns"):
                continue
            result.rows.append(
                Row(NAME, case, "bytes/candle", "B", s["project"] / rows, size / rows, name, note)
            )
    result.samples = {"bytes": data}
    return result
