"""The served layer: one file per month, day replacement, idempotence, concurrency, Hive readability."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import date, timedelta

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketdata_assets.client import MarketDataClient
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import (
    CANDLES,
    candle_keys,
    months_for_range,
    read_gaps,
    read_range,
    read_served_candles,
    read_served_dvol,
    write_gap_days,
    write_served_days,
    write_served_dvol_days,
)
from marketdata_assets_tests.storage.helpers import (
    dvol_points,
    gap_rows,
    hourly_candles,
    minute_candles,
    write_days_in_process,
)

JAN = [date(2024, 1, d) for d in range(1, 32)]


def _month_file(tmp_path, timeframe="1m", exchange="binance", symbol="BTCUSDT", month="2024-01"):
    return (
        tmp_path
        / f"candles/timeframe={timeframe}/exchange={exchange}/symbol={symbol}/month={month}/data.parquet"
    )


def test_days_of_one_month_share_one_file(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    days = [date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1)]
    infos = write_served_days(root, "1m", "binance", "BTCUSDT", {d: minute_candles(d) for d in days})
    assert [i.rows for i in infos] == [2880, 1440]
    assert sorted(
        p.relative_to(tmp_path).as_posix() for p in tmp_path.joinpath("candles").rglob("*.parquet")
    ) == [
        "candles/timeframe=1m/exchange=binance/symbol=BTCUSDT/month=2024-01/data.parquet",
        "candles/timeframe=1m/exchange=binance/symbol=BTCUSDT/month=2024-02/data.parquet",
    ]
    frame = pq.read_table(_month_file(tmp_path)).to_pandas()
    assert frame["timestamp"].is_monotonic_increasing
    assert frame[["n_minutes", "expected_minutes", "complete"]].drop_duplicates().values.tolist() == [
        [1, 1, True]
    ]
    assert str(frame["n_minutes"].dtype) == "int16"


def test_writing_a_day_replaces_only_that_day(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    write_served_days(root, "1m", "binance", "BTCUSDT", {d: minute_candles(d, base=1.0) for d in JAN[:3]})
    revised = minute_candles(JAN[1], base=9.0, skip=tuple(range(100)))
    write_served_days(root, "1m", "binance", "BTCUSDT", {JAN[1]: revised})
    stored = read_served_candles(root, "1m", "binance", "BTCUSDT")
    assert len(stored) == 1440 * 3 - 100
    by_day = stored.groupby(stored["timestamp"].dt.date)["open"].min()
    assert by_day[JAN[0]] < 2 and by_day[JAN[1]] > 9 and by_day[JAN[2]] < 2
    # an empty frame clears its day; clearing every day removes the month file
    write_served_days(root, "1m", "binance", "BTCUSDT", {JAN[1]: revised.iloc[:0]})
    assert len(read_served_candles(root, "1m", "binance", "BTCUSDT")) == 2880
    infos = write_served_days(root, "1m", "binance", "BTCUSDT", {d: pd.DataFrame() for d in JAN[:3]})
    assert infos[0].rows == 0 and not _month_file(tmp_path).exists()


def test_rewriting_the_same_days_is_byte_identical(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    days = {d: hourly_candles(d, incomplete_hours=(3,)) for d in JAN[:10]}
    write_served_days(root, "1h", "okx", "ETHUSDT", days)
    before = _month_file(tmp_path, "1h", "okx", "ETHUSDT").read_bytes()
    write_served_days(root, "1h", "okx", "ETHUSDT", days)
    write_served_days(root, "1h", "okx", "ETHUSDT", {JAN[4]: days[JAN[4]]})
    assert _month_file(tmp_path, "1h", "okx", "ETHUSDT").read_bytes() == before
    # the same month built day by day in another order gives the same bytes too
    other = StorageRoot.from_uri(tmp_path / "other")
    for day in reversed(JAN[:10]):
        write_served_days(other, "1h", "okx", "ETHUSDT", {day: days[day]})
    assert _month_file(tmp_path / "other", "1h", "okx", "ETHUSDT").read_bytes() == before


def test_frames_must_fit_their_day_and_be_unique(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    with pytest.raises(ValueError, match="belong to another UTC day"):
        write_served_days(root, "1m", "binance", "BTCUSDT", {JAN[0]: minute_candles(JAN[1])})
    doubled = pd.concat([minute_candles(JAN[0]), minute_candles(JAN[0]).iloc[:1]])
    with pytest.raises(ValueError, match="share timestamp"):
        write_served_days(root, "1m", "binance", "BTCUSDT", {JAN[0]: doubled})
    with pytest.raises(ValueError, match="missing: \\['n_minutes', 'expected_minutes', 'complete'\\]"):
        write_served_days(root, "1h", "binance", "BTCUSDT", {JAN[0]: hourly_candles(JAN[0]).iloc[:, :6]})
    with pytest.raises(ValueError, match="column 'symbol' holds 'ETHUSDT'"):
        write_served_days(
            root, "1m", "binance", "BTCUSDT", {JAN[0]: minute_candles(JAN[0]).assign(symbol="ETH/USDT")}
        )
    assert not list(tmp_path.rglob("*.parquet"))
    # a matching partition column is accepted and kept out of the file
    write_served_days(
        root, "1m", "binance", "BTCUSDT", {JAN[0]: minute_candles(JAN[0]).assign(symbol="BTC/USDT")}
    )
    assert "symbol" not in pq.read_schema(_month_file(tmp_path)).names


def test_concurrent_threads_writing_days_of_one_month_lose_nothing(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    barrier = threading.Barrier(8)
    errors = []

    def writer(days):
        try:
            barrier.wait()
            for day in days:
                write_served_days(root, "1m", "binance", "BTCUSDT", {day: minute_candles(day, base=day.day)})
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(JAN[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = read_served_candles(root, "1m", "binance", "BTCUSDT")
    assert len(stored) == 31 * 1440
    assert stored["timestamp"].is_unique and stored["timestamp"].is_monotonic_increasing


def test_concurrent_processes_writing_days_of_one_month_lose_nothing(tmp_path):
    context = multiprocessing.get_context("spawn")
    chunks = [JAN[i::3] for i in range(3)]
    with context.Pool(3) as pool:
        written = pool.starmap(write_days_in_process, [(str(tmp_path), chunk) for chunk in chunks])
    assert sum(written) == 31
    stored = read_served_candles(StorageRoot.from_uri(tmp_path), "1m", "binance", "BTCUSDT")
    assert len(stored) == 31 * 1440
    assert sorted(stored["timestamp"].dt.date.unique()) == JAN
    assert (tmp_path / "_locks").is_dir()  # the flock files live beside the data, not in it


def test_range_reads_are_start_inclusive_end_exclusive_across_months(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    days = [date(2024, 1, 31), date(2024, 2, 1), date(2024, 2, 29), date(2024, 3, 1)]
    write_served_days(root, "1h", "bybit", "BTCUSDT", {d: hourly_candles(d) for d in days})
    got = read_served_candles(
        root, "1h", "bybit", "BTCUSDT", pd.Timestamp("2024-01-31T23:00Z"), pd.Timestamp("2024-03-01T01:00Z")
    )
    assert got["timestamp"].iloc[0] == pd.Timestamp("2024-01-31T23:00Z")
    assert got["timestamp"].iloc[-1] == pd.Timestamp("2024-03-01T00:00Z")
    assert len(got) == 1 + 24 + 24 + 1
    assert months_for_range(pd.Timestamp("2024-01-31T23:00Z"), pd.Timestamp("2024-03-01T00:00Z")) == [
        "2024-01",
        "2024-02",
    ]
    assert months_for_range(pd.Timestamp("2024-12-15T00:00Z"), pd.Timestamp("2025-01-01T00:00:00.001Z")) == [
        "2024-12",
        "2025-01",
    ]


def test_range_reads_slice_sorted_months_exactly_like_a_row_filter(tmp_path):
    """Reads skip row groups by their statistics and slice the edges off the sorted month files: the
    rows must be exactly those a plain filter-and-sort over every row gives, for any edges."""
    root = StorageRoot.from_uri(tmp_path)
    days = [*JAN[-12:], *(date(2024, 2, d) for d in range(1, 13))]  # > one row group per month
    write_served_days(
        root, "1m", "binance", "BTCUSDT", {d: minute_candles(d, base=d.day, skip=(7, 8)) for d in days}
    )
    everything = read_served_candles(root, "1m", "binance", "BTCUSDT")
    assert everything["timestamp"].is_monotonic_increasing and len(everything) == 24 * 1438
    edges = [
        ("2024-01-20T00:00Z", "2024-02-12T00:00Z"),
        ("2024-01-25T13:07Z", "2024-02-03T00:00:00.0005Z"),  # sub-ms bounds truncate to the ms
        ("2024-01-20T00:07Z", "2024-01-20T00:09Z"),  # only skipped minutes: nothing
        ("2024-01-31T23:59Z", "2024-02-01T00:01Z"),
        ("2023-12-01T00:00Z", "2024-01-21T00:00Z"),
    ]
    for start, end in edges:
        lo, hi = pd.Timestamp(start).floor("ms"), pd.Timestamp(end).floor("ms")
        expected = everything[(everything["timestamp"] >= lo) & (everything["timestamp"] < hi)]
        got = read_served_candles(root, "1m", "binance", "BTCUSDT", pd.Timestamp(start), pd.Timestamp(end))
        pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_exact=True)
    only = read_range(root, CANDLES, candle_keys("1m", "binance", "BTCUSDT"), columns=["close", "timestamp"])
    assert list(only.columns) == ["close", "timestamp"] and len(only) == len(everything)


def test_a_month_file_written_out_of_order_by_another_tool_is_read_sorted(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    write_served_days(root, "1m", "binance", "BTCUSDT", {d: minute_candles(d) for d in JAN[:2]})
    expected = read_served_candles(root, "1m", "binance", "BTCUSDT")
    path = _month_file(tmp_path)
    shuffled = pq.read_table(path).to_pandas().sample(frac=1.0, random_state=3)
    pq.write_table(pa.Table.from_pandas(shuffled, schema=CANDLES.schema, preserve_index=False), path)
    pd.testing.assert_frame_equal(
        read_served_candles(root, "1m", "binance", "BTCUSDT"), expected, check_exact=True
    )
    start, end = pd.Timestamp("2024-01-01T10:00Z"), pd.Timestamp("2024-01-02T01:00Z")
    window = expected[(expected["timestamp"] >= start) & (expected["timestamp"] < end)].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        read_served_candles(root, "1m", "binance", "BTCUSDT", start, end), window, check_exact=True
    )


# How month files were written before the size-oriented encodings (atomic.parquet_options): pyarrow's
# dictionary for every column, statistics on every column, zstd level 3, the Arrow schema stored.
PREVIOUS_LAYOUT = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 10_080,
    "write_statistics": True,
    "store_schema": True,
    "version": "2.6",
    "data_page_version": "1.0",
}


def _encodings(path) -> dict[str, set[str]]:
    metadata = pq.ParquetFile(path).metadata
    found: dict[str, set[str]] = {}
    for group in range(metadata.num_row_groups):
        for i in range(metadata.num_columns):
            column = metadata.row_group(group).column(i)
            found.setdefault(column.path_in_schema, set()).update(column.encodings)
    return found


def test_month_files_of_the_previous_layout_are_read_and_upgraded_by_a_rewrite(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    days = {d: minute_candles(d, base=0.00002853 + d.day * 1e-8) for d in JAN[:3]}
    write_served_days(root, "1m", "binance", "BTCUSDT", days)
    current = read_served_candles(root, "1m", "binance", "BTCUSDT")
    path = _month_file(tmp_path)
    assert "DELTA_BINARY_PACKED" in _encodings(path)["timestamp"]
    assert "RLE_DICTIONARY" not in _encodings(path)["close"]
    assert b"ARROW:schema" not in (pq.ParquetFile(path).metadata.metadata or {})

    pq.write_table(pq.read_table(path), path, **PREVIOUS_LAYOUT)  # as the previous writer left it
    assert "RLE_DICTIONARY" in _encodings(path)["close"] and "RLE_DICTIONARY" in _encodings(path)["timestamp"]
    old = read_served_candles(root, "1m", "binance", "BTCUSDT")
    pd.testing.assert_frame_equal(old, current, check_exact=True)
    client = MarketDataClient(root=root)
    window = client.get_historical_data("BTCUSDT", "binance", "1m", "2024-01-02T10:00", "2024-01-03")
    assert len(window) == 14 * 60 and window.index[0] == pd.Timestamp("2024-01-02T10:00Z")

    # rewriting one day upgrades the whole month file; the other days come back bit for bit
    replacement = minute_candles(JAN[1], base=7.0)
    write_served_days(root, "1m", "binance", "BTCUSDT", {JAN[1]: replacement})
    assert "DELTA_BINARY_PACKED" in _encodings(path)["timestamp"]
    assert "RLE_DICTIONARY" not in _encodings(path)["close"]
    upgraded = read_served_candles(root, "1m", "binance", "BTCUSDT")
    untouched = upgraded["timestamp"].dt.date != JAN[1]
    pd.testing.assert_frame_equal(
        upgraded[untouched].reset_index(drop=True),
        current[current["timestamp"].dt.date != JAN[1]].reset_index(drop=True),
        check_exact=True,
    )
    assert upgraded.loc[~untouched, "close"].to_numpy().tobytes() == replacement["close"].to_numpy().tobytes()


def test_prices_and_volumes_read_back_bit_for_bit_by_any_parquet_reader(tmp_path):
    """Lossless without our code: pyarrow, pandas, DuckDB and Polars all decode the stored float64
    values to the exact bits written (including values with no short decimal form)."""
    import numpy as np

    rng = np.random.default_rng(5)
    frame = minute_candles(JAN[0])
    for column in ("open", "high", "low", "close", "volume"):
        frame[column] = np.round(rng.lognormal(-10, 3, len(frame)), 8)
    frame.loc[::7, "volume"] = rng.random(len(frame[::7]))  # arbitrary doubles, full mantissa
    frame.loc[3, "volume"] = 0.0
    frame.loc[4, "close"] = 5e-324  # the smallest subnormal
    root = StorageRoot.from_uri(tmp_path)
    write_served_days(root, "1m", "binance", "BTCUSDT", {JAN[0]: frame})
    path = str(_month_file(tmp_path))
    columns = ["open", "high", "low", "close", "volume"]
    want = frame[columns].to_numpy().view("uint64")
    readers = {
        "pyarrow": pq.read_table(path).to_pandas()[columns].to_numpy(),
        "pandas": pd.read_parquet(path)[columns].to_numpy(),
        "duckdb": duckdb.sql(
            f"SELECT {', '.join(columns)} FROM read_parquet('{path}') ORDER BY timestamp"
        ).fetchnumpy(),
    }
    readers["duckdb"] = np.column_stack([readers["duckdb"][c] for c in columns])
    polars = pytest.importorskip("polars")
    readers["polars"] = polars.read_parquet(path).sort("timestamp").select(columns).to_numpy()
    for name, got in readers.items():
        assert got.dtype == np.float64, name
        assert np.array_equal(got.view("uint64"), want), name
    stamps = duckdb.sql(f"SELECT epoch_ms(timestamp) FROM read_parquet('{path}') ORDER BY 1").fetchnumpy()
    assert np.array_equal(list(stamps.values())[0], frame["timestamp"].astype("int64").to_numpy())


def test_dvol_and_gaps_use_the_same_monthly_mechanism(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    write_served_dvol_days(root, "1h", "BTC", {d: dvol_points(d).assign(filled=False) for d in JAN[:2]})
    write_served_dvol_days(root, "1h", "BTC", {JAN[0]: dvol_points(JAN[0], base=70.0).assign(filled=True)})
    dvol = read_served_dvol(root, "1h", "BTC")
    assert len(dvol) == 48 and dvol["filled"].sum() == 24 and dvol["open"].iloc[0] == 70.0
    assert (tmp_path / "dvol/timeframe=1h/currency=BTC/month=2024-01/data.parquet").is_file()

    write_gap_days(
        root, "binance", "BTCUSDT", {JAN[0]: gap_rows(JAN[0], 10, 300), JAN[1]: gap_rows(JAN[1], 5)}
    )
    write_gap_days(root, "binance", "BTCUSDT", {JAN[0]: gap_rows(JAN[0], 20).assign(symbol="BTC/USDT")})
    gaps = read_gaps(root, "binance", "BTCUSDT")
    assert gaps[["day", "minutes"]].values.tolist() == [[JAN[0], 5], [JAN[1], 5]]
    assert gaps["start"].iloc[0] == pd.Timestamp("2024-01-01T00:20Z")
    assert set(gaps.columns) >= {"venue", "symbol", "exchange", "start", "end", "minutes", "kind", "day"}
    write_gap_days(root, "binance", "BTCUSDT", {JAN[0]: gap_rows(JAN[0]), JAN[1]: gap_rows(JAN[1])})
    assert read_gaps(root, "binance", "BTCUSDT").empty
    assert not (tmp_path / "gaps/exchange=binance/symbol=BTCUSDT/month=2024-01/data.parquet").exists()


def test_hive_layout_is_readable_without_our_code(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    for exchange in ("binance", "bybit"):
        write_served_days(root, "1m", exchange, "BTCUSDT", {d: minute_candles(d) for d in JAN[:2]})
        write_served_days(
            root, "1h", exchange, "ETHUSDT", {d: hourly_candles(d) for d in (JAN[0], date(2024, 2, 1))}
        )
    # stray temp files of a crashed writer are invisible to readers
    (_month_file(tmp_path).parent / ".tmp-0123456789abcdef0123456789abcdef.tmp").write_bytes(b"garbage")

    frame = pd.read_parquet(tmp_path / "candles")
    assert len(frame) == 2 * 2 * 1440 + 2 * 48
    assert set(frame["timeframe"].astype(str)) == {"1m", "1h"}
    assert set(frame["month"].astype(str)) == {"2024-01", "2024-02"}
    counts = frame.groupby(["exchange", "symbol", "timeframe"], observed=True).size().to_dict()
    assert counts[("bybit", "ETHUSDT", "1h")] == 48

    con = duckdb.connect()
    rows = con.execute(
        f"SELECT exchange, symbol, timeframe, month, count(*) FROM read_parquet('{tmp_path}/candles/**/*.parquet', "
        "hive_partitioning = true) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rows[0] == ("binance", "BTCUSDT", "1m", "2024-01", 2880)
    assert len(rows) == 6


def test_partitions_and_months_are_listed_from_directories(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    write_served_days(root, "1m", "binance", "BTCUSDT", {JAN[0]: minute_candles(JAN[0])})
    write_served_days(
        root,
        "1m",
        "binance",
        "BTCUSDT",
        {JAN[0] + timedelta(days=40): minute_candles(JAN[0] + timedelta(days=40))},
    )
    (tmp_path / "candles/timeframe=1m/exchange=bad name").mkdir()
    assert CANDLES.partitions(root) == [candle_keys("1m", "binance", "BTCUSDT")]
    assert CANDLES.months(root, candle_keys("1m", "binance", "BTCUSDT")) == ["2024-01", "2024-02"]


def test_rows_of_other_days_are_counted_as_days_of_places_them():
    """The epoch-millisecond count of rows outside a day agrees with ``days_of`` (NaT, midnight edges,
    days before 1970, other time zones and units)."""
    from marketdata_assets.storage.served import CANDLES

    day = date(2024, 1, 1)
    stamps = pd.to_datetime(
        [
            "2024-01-01 00:00",
            "2024-01-01 23:59:59.999",
            "2024-01-02 00:00",
            "2023-12-31 23:59:59.999",
            "1969-12-31 12:00",
            None,
        ],
        utc=True,
        format="ISO8601",
    ).astype("datetime64[ms, UTC]")
    for frame in (
        pd.DataFrame({"timestamp": stamps}),
        pd.DataFrame({"timestamp": stamps[:2]}),
        pd.DataFrame({"timestamp": stamps.astype("datetime64[ns, UTC]")}),
        pd.DataFrame({"timestamp": stamps.tz_convert("Asia/Tokyo")}),
    ):
        for target in (day, date(1969, 12, 31), date(2024, 1, 2)):
            expected = int((CANDLES.days_of(frame) != pd.Timestamp(target)).sum())
            assert CANDLES._rows_of_other_days(frame, target) == expected
