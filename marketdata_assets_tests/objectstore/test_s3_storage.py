"""The storage layer on a real S3 server (moto over HTTP on loopback): the same code as local roots."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketdata_assets.storage import atomic, objectstore
from marketdata_assets.storage.catalog import connect, inventory
from marketdata_assets.storage.compaction import compact
from marketdata_assets.storage.raw import (
    raw_candle_days,
    raw_dvol_days,
    read_raw_candles,
    read_raw_dvol,
    write_raw_candles,
    write_raw_dvol,
)
from marketdata_assets.storage.root import InvalidNameError, StorageRoot, StorageRootError
from marketdata_assets.storage.served import (
    read_gaps,
    read_served_candles,
    read_served_dvol,
    write_gap_days,
    write_served_days,
    write_served_dvol_days,
)
from marketdata_assets_tests.s3 import MotoS3
from marketdata_assets_tests.storage.helpers import dvol_points, gap_rows, hourly_candles, minute_candles

DAY = date(2024, 1, 1)
RAW_KEY = "raw/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-01-01/data.parquet"
MONTH_KEY = "candles/timeframe=1m/exchange=binance/symbol=BTCUSDT/month=2024-05/data.parquet"


def _prefix(uri: str) -> str:
    return uri.split("/", 3)[3]


def _objects(s3: MotoS3, uri: str) -> list[str]:
    """Object keys under the root, relative to it."""
    prefix = _prefix(uri)
    return [k.removeprefix(prefix + "/") for k in s3.keys(prefix)]


def _wait_for_next_second() -> None:
    time.sleep(1.05 - time.time() % 1.0)


def _object_bytes(s3: MotoS3, uri: str, key: str) -> bytes:
    with s3.filesystem().open_input_stream(f"{s3.bucket}/{_prefix(uri)}/{key}") as stream:
        return stream.read()


def test_root_from_s3_uri_uses_the_env_endpoint(s3_root_uri):
    root = StorageRoot.from_uri(s3_root_uri + "/")
    assert not root.local and atomic.is_object_store(root.fs)
    assert root.uri == s3_root_uri and root.base == s3_root_uri.removeprefix("s3://")
    assert root.read_claim() is None


def test_raw_days_round_trip_and_list(s3_env, s3_root_uri):
    root = StorageRoot.from_uri(s3_root_uri)
    frame = minute_candles(DAY, skip=(5, 6))
    info = write_raw_candles(root, "binance", "BTCUSDT", DAY, frame)
    assert info.path == f"{s3_root_uri}/{RAW_KEY}" and info.rows == 1438
    assert info.bytes == len(_object_bytes(s3_env, s3_root_uri, RAW_KEY))
    pd.testing.assert_frame_equal(read_raw_candles(root, "binance", "BTCUSDT", DAY), frame)
    write_raw_candles(root, "binance", "BTCUSDT", date(2024, 1, 2), minute_candles(date(2024, 1, 2)).iloc[:0])
    assert raw_candle_days(root, "binance", "BTCUSDT") == [DAY, date(2024, 1, 2)]
    write_raw_dvol(root, "BTC", DAY, dvol_points(DAY))
    assert raw_dvol_days(root, "BTC") == [DAY]
    assert set(read_raw_dvol(root, "BTC", DAY)["resolution_s"]) == {3600}
    # Only the data objects: no temp objects, no directory marker objects.
    assert _objects(s3_env, s3_root_uri) == [
        "raw/dvol/currency=BTC/date=2024-01-01/data.parquet",
        RAW_KEY,
        "raw/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-01-02/data.parquet",
    ]
    with pytest.raises(FileNotFoundError, match=r"s3://.*date=2024-01-03"):
        read_raw_candles(root, "binance", "BTCUSDT", date(2024, 1, 3))


def test_objects_declare_their_sha256_and_a_copy_keeps_it(s3_env, s3_root_uri):
    root = StorageRoot.from_uri(s3_root_uri)
    write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY))
    root.claim(synthetic=True, environment="demo")
    for key, media_type in ((RAW_KEY, "application/vnd.apache.parquet"), ("_root.json", "application/json")):
        with s3_env.filesystem().open_input_file(f"{s3_env.bucket}/{_prefix(s3_root_uri)}/{key}") as source:
            metadata = source.metadata()
        digest = hashlib.sha256(_object_bytes(s3_env, s3_root_uri, key)).hexdigest()
        assert metadata["Content-Type"].decode() == f"{media_type}; sha256={digest}"


def test_identical_rows_give_identical_objects(s3_env, s3_root_uri):
    root = StorageRoot.from_uri(s3_root_uri)
    write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY))
    first = _object_bytes(s3_env, s3_root_uri, RAW_KEY)
    write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY))
    assert _object_bytes(s3_env, s3_root_uri, RAW_KEY) == first


def test_served_months_read_modify_write(s3_env, s3_root_uri):
    root = StorageRoot.from_uri(s3_root_uri)
    days = [date(2024, 5, d) for d in (1, 2, 3)]
    (info,) = write_served_days(
        root, "1m", "binance", "BTCUSDT", {d: minute_candles(d, base=1.0) for d in days}
    )
    assert info.path == f"{s3_root_uri}/{MONTH_KEY}" and info.rows == 3 * 1440
    # Replace day 2 only: days 1 and 3 are kept from the stored month object.
    write_served_days(root, "1m", "binance", "BTCUSDT", {days[1]: minute_candles(days[1], base=9.0)})
    stored = read_served_candles(root, "1m", "binance", "BTCUSDT")
    closes = stored.groupby(stored["timestamp"].dt.date)["close"].min().round().to_dict()
    assert closes == {days[0]: 1.0, days[1]: 9.0, days[2]: 1.0}
    ranged = read_served_candles(
        root, "1m", "binance", "BTCUSDT", pd.Timestamp("2024-05-02T23:00Z"), pd.Timestamp("2024-05-03T01:00Z")
    )
    assert len(ranged) == 120 and ranged["timestamp"].is_monotonic_increasing
    # A batch spanning two months rewrites two month objects.
    two = {
        date(2024, 5, 31): hourly_candles(date(2024, 5, 31)),
        date(2024, 6, 1): hourly_candles(date(2024, 6, 1)),
    }
    assert [i.rows for i in write_served_days(root, "1h", "binance", "BTCUSDT", two)] == [24, 24]
    write_served_dvol_days(root, "1h", "BTC", {DAY: dvol_points(DAY)})
    assert len(read_served_dvol(root, "1h", "BTC")) == 24
    write_gap_days(root, "binance", "BTCUSDT", {days[0]: gap_rows(days[0], 10, 20)})
    assert list(read_gaps(root, "binance", "BTCUSDT")["minutes"]) == [5, 5]
    assert not [k for k in _objects(s3_env, s3_root_uri) if atomic.TMP_PREFIX in k]


def test_failed_write_keeps_the_old_object_and_leaves_no_partial_one(s3_env, s3_root_uri, monkeypatch):
    root = StorageRoot.from_uri(s3_root_uri)
    old = minute_candles(DAY, base=100.0)
    write_raw_candles(root, "binance", "BTCUSDT", DAY, old)
    before = _object_bytes(s3_env, s3_root_uri, RAW_KEY)

    def crash(table, sink, **kwargs):
        sink.write(b"PAR1 half a file")
        raise RuntimeError("connection reset mid-upload")

    monkeypatch.setattr(atomic.pq, "write_table", crash)
    with pytest.raises(RuntimeError, match="mid-upload"):
        write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY, base=200.0))
    with pytest.raises(RuntimeError, match="mid-upload"):  # a new key: no object may appear at all
        write_raw_candles(root, "binance", "BTCUSDT", date(2024, 1, 2), minute_candles(date(2024, 1, 2)))
    monkeypatch.undo()

    assert _object_bytes(s3_env, s3_root_uri, RAW_KEY) == before
    assert _objects(s3_env, s3_root_uri) == [RAW_KEY]  # no temp object, no half object at day 2
    pd.testing.assert_frame_equal(read_raw_candles(root, "binance", "BTCUSDT", DAY), old)


def test_why_the_temp_key_is_needed_a_failed_s3_stream_still_commits(s3_env, s3_root_uri):
    """pyarrow's S3 output stream creates the object when it is closed, and leaving a ``with`` block by
    an exception closes it: writing straight to the final key would publish the half object. Hence
    write to a temp key, then server-side copy (atomic per object) to the final key."""
    fs = s3_env.filesystem()
    key = f"{s3_env.bucket}/{_prefix(s3_root_uri)}/direct.parquet"
    with pytest.raises(RuntimeError), fs.open_output_stream(key) as sink:
        sink.write(b"PAR1 half")
        assert fs.get_file_info(key).type == pa.fs.FileType.NotFound  # not visible while open
        raise RuntimeError("crash")
    assert fs.get_file_info(key).size == len(b"PAR1 half")


def test_a_failing_month_rewrite_keeps_the_month_object(s3_env, s3_root_uri, monkeypatch):
    root = StorageRoot.from_uri(s3_root_uri)
    (info,) = write_served_days(
        root, "1m", "binance", "BTCUSDT", {date(2024, 5, 1): minute_candles(date(2024, 5, 1))}
    )
    before = _object_bytes(s3_env, s3_root_uri, MONTH_KEY)
    monkeypatch.setattr(atomic.pq, "write_table", lambda *a, **k: (_ for _ in ()).throw(OSError("io")))
    with pytest.raises(OSError, match="io"):
        write_served_days(
            root, "1m", "binance", "BTCUSDT", {date(2024, 5, 2): minute_candles(date(2024, 5, 2))}
        )
    monkeypatch.undo()
    assert _object_bytes(s3_env, s3_root_uri, MONTH_KEY) == before
    assert _objects(s3_env, s3_root_uri) == [MONTH_KEY]


def test_compaction_merges_leftovers_and_a_rerun_changes_nothing(s3_env, s3_root_uri):
    root = StorageRoot.from_uri(s3_root_uri)
    fs = s3_env.filesystem()
    days = [date(2024, 5, d) for d in (1, 2, 3, 4)]
    write_served_days(root, "1m", "binance", "BTCUSDT", {d: minute_candles(d, base=1.0) for d in days[:2]})
    month_dir = f"{s3_env.bucket}/{_prefix(s3_root_uri)}/{MONTH_KEY.rsplit('/', 1)[0]}"
    # A peer tool's files: a flat part file and a nested per-day file written after data.parquet (so it
    # wins for its day), plus a crashed writer's temp object. S3 keeps LastModified to the second and
    # ties go to data.parquet, so "after" means in a later second.
    with fs.open_output_stream(f"{month_dir}/part-0.parquet") as sink:
        pq.write_table(pa.Table.from_pandas(minute_candles(days[2], base=2.0), preserve_index=False), sink)
    _wait_for_next_second()
    with fs.open_output_stream(f"{month_dir}/date=2024-05-02/data.parquet") as sink:
        pq.write_table(pa.Table.from_pandas(minute_candles(days[1], base=3.0), preserve_index=False), sink)
    with fs.open_output_stream(f"{month_dir}/.tmp-deadbeef.tmp") as sink:
        sink.write(b"PAR1 crashed")

    report = compact(root, "candles", now=datetime.now(UTC) + timedelta(hours=1))
    assert len(report.removed_tmp) == 1 and report.removed_tmp[0].startswith(s3_root_uri)
    assert len(report.merged) == 2 and [w.rows for w in report.written] == [3 * 1440]
    assert _objects(s3_env, s3_root_uri) == [MONTH_KEY]
    merged = _object_bytes(s3_env, s3_root_uri, MONTH_KEY)
    stored = read_served_candles(root, "1m", "binance", "BTCUSDT")
    closes = stored.groupby(stored["timestamp"].dt.date)["close"].min().round().to_dict()
    assert closes == {days[0]: 1.0, days[1]: 3.0, days[2]: 2.0}

    again = compact(root, "candles", now=datetime.now(UTC) + timedelta(hours=1))
    assert not again.changed and again.skipped == []
    assert _object_bytes(s3_env, s3_root_uri, MONTH_KEY) == merged


def test_catalog_views_and_inventory_over_s3(s3_env, s3_root_uri):
    root = StorageRoot.from_uri(s3_root_uri)
    days = [date(2024, 1, 31), date(2024, 2, 1)]
    for exchange in ("binance", "okx"):
        write_served_days(
            root, "1h", exchange, "BTCUSDT", {d: hourly_candles(d, incomplete_hours=(5,)) for d in days}
        )
    write_gap_days(root, "binance", "BTCUSDT", {days[0]: gap_rows(days[0], 1, 50)})
    write_served_dvol_days(root, "1h", "ETH", {d: dvol_points(d) for d in days})

    con = connect(root)
    rows = con.execute(
        "SELECT count(*), min(timestamp) FROM candles WHERE exchange = 'okx' AND month = '2024-02' "
        "AND timestamp < TIMESTAMPTZ '2024-02-01 06:00:00+00'"
    ).fetchone()
    assert rows[0] == 6 and pd.Timestamp(rows[1]) == pd.Timestamp("2024-02-01T00:00Z")
    assert con.execute("SELECT count(*) FROM gaps").fetchone() == (2,)
    assert con.execute("SELECT currency, count(*) FROM dvol GROUP BY ALL").fetchall() == [("ETH", 48)]
    # No DuckDB extension was needed: the files were read through pyarrow's S3 filesystem.
    loaded = con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()
    assert ("httpfs",) not in loaded
    table = inventory(root, con)
    assert list(table["exchange"]) == ["binance", "okx"]
    assert list(table["rows"]) == [48, 48] and list(table["incomplete_bins"]) == [2, 2]
    assert list(table["gap_count"]) == [2, 0]
    with pytest.raises(ValueError, match="use 'arrow' for object stores"):
        connect(root, engine="duckdb")


def test_claim_marks_the_s3_root_and_refuses_the_other_kind(s3_env, s3_root_uri):
    root = StorageRoot.from_uri(s3_root_uri)
    root.claim(synthetic=True, environment="demo")
    assert _objects(s3_env, s3_root_uri) == ["_root.json"]
    # Another process (a new root object on the same URI) sees the claim.
    again = StorageRoot.from_uri(s3_root_uri)
    assert again.read_claim() == {"environment": "demo", "synthetic": True}
    again.claim(synthetic=True, environment="demo2")  # same kind: fine
    with pytest.raises(StorageRootError, match="synthetic .*different storage root"):
        again.claim(synthetic=False, environment="prod")


@pytest.mark.parametrize("symbol", ["../x", "BTC/USDT", "a b", "", "..", "x\x00"])
def test_names_are_validated_before_reaching_a_key(s3_env, s3_root_uri, symbol):
    root = StorageRoot.from_uri(s3_root_uri)
    with pytest.raises(InvalidNameError):
        write_raw_candles(root, "binance", symbol, DAY, minute_candles(DAY))
    assert _objects(s3_env, s3_root_uri) == []


@pytest.mark.parametrize("uri", ["s3://", "s3:///prefix", "s3://bucket/../other", "s3://bucket/a/./b"])
def test_bad_s3_roots_are_refused(uri):
    with pytest.raises(StorageRootError, match="invalid S3 root"):
        StorageRoot.from_uri(uri)


def test_a_missing_bucket_is_a_clear_error(s3_env):
    root = StorageRoot.from_uri("s3://no-such-bucket/prefix")
    with pytest.raises(OSError, match="no-such-bucket"):
        write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY))


def test_catalog_partition_filters_fetch_only_the_matching_month_objects(s3_env, s3_root_uri, monkeypatch):
    root = StorageRoot.from_uri(s3_root_uri)
    for day in (date(2024, 1, 15), date(2024, 2, 15), date(2024, 3, 15)):
        for exchange in ("binance", "okx"):
            write_served_days(root, "1h", exchange, "BTCUSDT", {day: hourly_candles(day)})
    fetched: list[str] = []
    real = objectstore.read_snapshot
    monkeypatch.setattr(
        objectstore, "read_snapshot", lambda fs, path: (fetched.append(path), real(fs, path))[1]
    )
    con = connect(root)
    count = con.execute(
        "SELECT count(*) FROM candles WHERE exchange = 'okx' AND month = '2024-02'"
    ).fetchone()
    assert count == (24,)
    assert [p.split(f"{_prefix(s3_root_uri)}/")[1] for p in fetched] == [
        "candles/timeframe=1h/exchange=okx/symbol=BTCUSDT/month=2024-02/data.parquet"
    ]
