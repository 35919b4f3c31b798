"""Atomic, deterministic Parquet writes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
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


def _record_fsyncs(monkeypatch) -> list[tuple[str, int]]:
    """Wrap ``os.fsync``: each call recorded as (kind, inode)."""
    calls: list[tuple[str, int]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        calls.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_a_local_write_fsyncs_the_file_before_the_rename_and_the_directories_after(tmp_path, monkeypatch):
    root = StorageRoot.from_uri(tmp_path)
    calls = _record_fsyncs(monkeypatch)
    (info,) = write_served_days(root, "1m", "binance", "BTCUSDT", {DAY: minute_candles(DAY)})
    final = Path(info.path)
    # the file's data (same inode before and after the rename), then its directory
    assert calls.index(("file", final.stat().st_ino)) < calls.index(("dir", final.parent.stat().st_ino))
    # every directory this write created is recorded in its parent: root/candles ... month=2024-01
    for created in [*final.parents][: len(final.relative_to(tmp_path).parts) - 1]:
        assert ("dir", created.parent.stat().st_ino) in calls, created

    calls.clear()  # a rewrite of the month: file + its directory again, nothing else needed
    (info,) = write_served_days(root, "1m", "binance", "BTCUSDT", {DAY: minute_candles(DAY, base=101.0)})
    assert calls == [("file", final.stat().st_ino), ("dir", final.parent.stat().st_ino)]


def test_small_files_are_fsynced_too(tmp_path, monkeypatch):
    root = StorageRoot.from_uri(tmp_path)
    calls = _record_fsyncs(monkeypatch)
    target = tmp_path / "verdicts" / "x.json"
    atomic.write_bytes_atomic(root.fs, str(target), b'{"ok": true}')
    assert calls.index(("file", target.stat().st_ino)) < calls.index(("dir", target.parent.stat().st_ino))
    assert ("dir", tmp_path.stat().st_ino) in calls  # verdicts/ was created: its entry in the root


def test_a_write_killed_before_the_rename_leaves_the_old_file(tmp_path):
    """A real process, killed (``os._exit``: no cleanup, no exception handler) after its temp file is
    written and synced but before the rename: the final file is the old one, whole."""
    root = StorageRoot.from_uri(tmp_path)
    info = write_raw_candles(root, "binance", "BTCUSDT", DAY, minute_candles(DAY, base=100.0))
    before = Path(info.path).read_bytes()
    script = textwrap.dedent(
        f"""
        import os
        from datetime import date
        from marketdata_assets.storage import atomic
        from marketdata_assets.storage.raw import write_raw_candles
        from marketdata_assets.storage.root import StorageRoot
        from marketdata_assets_tests.storage.helpers import minute_candles

        real = atomic._sync_file
        def sync_then_die(fs, path):
            real(fs, path)
            os._exit(9)  # power cut / kill -9 between the fsync and the rename
        atomic._sync_file = sync_then_die
        day = date(2024, 1, 1)
        write_raw_candles(StorageRoot.from_uri({str(tmp_path)!r}), "binance", "BTCUSDT", day,
                          minute_candles(day, base=200.0))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr.decode()
    assert Path(info.path).read_bytes() == before
    leftovers = list(Path(info.path).parent.glob(".tmp-*"))
    assert len(leftovers) == 1  # the synced temp file, for compaction to remove
    pd.testing.assert_frame_equal(
        read_raw_candles(root, "binance", "BTCUSDT", DAY), minute_candles(DAY, base=100.0)
    )


def _reference_table(frame: pd.DataFrame, schema) -> object:
    """What table_from_frame built before its column-by-column path: pyarrow's own from_pandas."""
    import pyarrow as pa

    names = list(schema.names)
    try:
        table = pa.Table.from_pandas(frame[names], schema=schema, preserve_index=False, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        return f"cannot convert to the storage schema: {exc}"
    return table.replace_schema_metadata(None)


def test_tables_from_frames_are_what_from_pandas_builds():
    """The fast conversion gives pyarrow's from_pandas table, and its error message when a value does
    not fit (lossy cast, overflow, wrong type, null in a non-nullable field)."""
    import pyarrow as pa

    from marketdata_assets.storage import schemas

    stamps = pd.Series(pd.date_range("2024-01-01", periods=4, freq="min", tz="UTC")).astype(
        "datetime64[ms, UTC]"
    )
    gaps = pd.DataFrame(
        {
            "venue": ["binance", "binance", None, "x"],
            "start": stamps,
            "end": stamps + pd.Timedelta(minutes=1),
            "minutes": [1, 2, 3, 4],
            "kind": ["outage", "no_trades", "filler", "quarantined"],
            "day": [DAY] * 4,
        }
    )
    served = minute_candles(DAY).head(4).assign(n_minutes=1, expected_minutes=1, complete=True)
    cases = [
        (schemas.RAW_CANDLES, minute_candles(DAY)),
        (schemas.SERVED_CANDLES, served),
        (schemas.SERVED_CANDLES, served.assign(n_minutes=[1.0, 2.5, 3.0, 4.0])),  # lossy
        (schemas.SERVED_CANDLES, served.assign(n_minutes=[1, 2, 3, 70_000])),  # overflows int16
        (schemas.SERVED_CANDLES, served.assign(complete=["yes", True, True, True])),
        (schemas.SERVED_CANDLES, served.assign(open=["1.0", 2.0, 3.0, 4.0])),
        (schemas.SERVED_CANDLES, served.assign(n_minutes=pd.array([1, None, 3, 4], dtype="Int16"))),
        (schemas.GAPS, gaps),
        (schemas.GAPS, gaps.assign(day=["2024-01-01"] * 4)),
        (schemas.RAW_CANDLES, minute_candles(DAY).astype({"timestamp": "datetime64[ns, UTC]"})),
        (
            schemas.RAW_CANDLES,
            minute_candles(DAY).assign(timestamp=lambda f: f["timestamp"] + pd.Timedelta(1)),
        ),
        (pa.schema([pa.field("x", pa.int32(), nullable=False)]), pd.DataFrame({"x": [1.0, None]})),
    ]
    for schema, frame in cases:
        expected = _reference_table(frame, schema)
        if isinstance(expected, str):
            with pytest.raises(ValueError) as caught:
                atomic.table_from_frame(frame, schema, what="t")
            assert str(caught.value) == f"t: {expected}"
        else:
            got = atomic.table_from_frame(frame, schema, what="t")
            assert got.equals(expected, check_metadata=True)
            assert got.schema.metadata == expected.schema.metadata
