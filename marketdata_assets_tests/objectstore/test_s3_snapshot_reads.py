"""Reads of an object being replaced see one version: the HEAD-then-ranged-GET race, on a real server."""

from __future__ import annotations

import threading
from datetime import date

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from marketdata_assets.storage.objectstore import (
    PARQUET_MEDIA_TYPE,
    ObjectChangedError,
    SnapshotReads,
    checksummed_metadata,
    read_snapshot,
)
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_served_candles, write_served_days
from marketdata_assets_tests.s3 import MotoS3
from marketdata_assets_tests.storage.helpers import minute_candles


def _parquet_bytes(rows: int, value: float) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": pa.array([value + i for i in range(rows)], pa.float64())}), sink)
    return sink.getvalue().to_pybytes()


class ReplaceAfterHead(pafs.FileSystemHandler):
    """Opens files on the real server, then (once per entry in ``replacements``) replaces the object
    between the HEAD that sized it and the GET that reads it: the race, made deterministic."""

    def __init__(
        self, inner: pafs.FileSystem, replacements: list[bytes], declare_digest: bool = True
    ) -> None:
        self.inner = inner
        self.declare_digest = declare_digest
        self.replacements = list(replacements)
        self.opens = 0

    def open_input_file(self, path: str) -> pa.NativeFile:
        self.opens += 1
        source = self.inner.open_input_file(path)
        source.size()  # the HEAD
        if self.replacements:
            payload = self.replacements.pop(0)
            metadata = checksummed_metadata(payload, PARQUET_MEDIA_TYPE) if self.declare_digest else None
            with self.inner.open_output_stream(path, metadata=metadata) as sink:
                sink.write(payload)
        return source

    def get_type_name(self) -> str:
        return "replace-after-head"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def normalize_path(self, path):
        return path

    def get_file_info(self, paths):
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.inner.get_file_info(selector)

    def create_dir(self, path, recursive):
        raise NotImplementedError

    def delete_dir(self, path):
        raise NotImplementedError

    def delete_dir_contents(self, path, missing_dir_ok=False):
        raise NotImplementedError

    def delete_root_dir_contents(self):
        raise NotImplementedError

    def delete_file(self, path):
        raise NotImplementedError

    def move(self, src, dest):
        raise NotImplementedError

    def copy_file(self, src, dest):
        raise NotImplementedError

    def open_input_stream(self, path):
        return self.open_input_file(path)

    def open_output_stream(self, path, metadata=None):
        raise NotImplementedError

    def open_append_stream(self, path, metadata=None):
        raise NotImplementedError


@pytest.fixture
def key(s3_env: MotoS3, s3_root_uri: str) -> str:
    return f"{s3_root_uri.removeprefix('s3://')}/month.parquet"


def _put(fs: pafs.FileSystem, key: str, payload: bytes) -> None:
    """Upload as :mod:`marketdata_assets.storage.atomic` does: with the declared SHA-256."""
    with fs.open_output_stream(key, metadata=checksummed_metadata(payload, PARQUET_MEDIA_TYPE)) as sink:
        sink.write(payload)


@pytest.mark.parametrize(("old_rows", "new_rows"), [(100, 5000), (5000, 100)], ids=["grows", "shrinks"])
def test_a_replacement_between_head_and_get_is_detected_and_reread(s3_env, key, old_rows, new_rows):
    fs = s3_env.filesystem()
    old, new = _parquet_bytes(old_rows, 1.0), _parquet_bytes(new_rows, 2.0)
    _put(fs, key, old)

    # Plain pyarrow: the GET sized by the first HEAD yields neither version (a prefix of the new one
    # when it grew; the new one plus stale memory, still reported as the old length, when it shrank).
    racing = ReplaceAfterHead(fs, [new])
    with racing.open_input_file(key) as source:
        mixed = source.read_at(source.size(), 0)
    assert mixed not in (old, new)

    _put(fs, key, old)
    racing = ReplaceAfterHead(fs, [new])
    assert read_snapshot(pafs.PyFileSystem(racing), key).to_pybytes() == new
    assert racing.opens == 2  # the torn first read was thrown away and the object read again


def test_without_a_declared_digest_a_grown_object_is_still_caught_by_its_trailer(s3_env, key):
    fs = s3_env.filesystem()
    old, new = _parquet_bytes(100, 1.0), _parquet_bytes(5000, 2.0)
    with fs.open_output_stream(key) as sink:  # another tool's upload: no digest
        sink.write(old)
    racing = ReplaceAfterHead(fs, [new], declare_digest=False)
    assert read_snapshot(pafs.PyFileSystem(racing), key).to_pybytes() == new
    assert racing.opens == 2


def test_an_object_that_never_settles_is_an_error_naming_it(s3_env, key):
    fs = s3_env.filesystem()
    _put(fs, key, _parquet_bytes(10, 0.0))
    versions = [_parquet_bytes(10 * (i + 2), float(i)) for i in range(10)]
    with pytest.raises(ObjectChangedError, match=r"month.parquet: the object changed during 5 read attempts"):
        read_snapshot(pafs.PyFileSystem(ReplaceAfterHead(fs, versions)), key)


def test_a_snapshot_read_returns_the_object_and_datasets_can_use_it(s3_env, key):
    fs = s3_env.filesystem()
    payload = _parquet_bytes(50_000, 3.0)
    _put(fs, key, payload)
    snapshot = pafs.PyFileSystem(SnapshotReads(fs))
    with snapshot.open_input_file(key) as source:
        assert source.read() == payload
    assert pq.read_table(key, filesystem=snapshot).num_rows == 50_000


def test_readers_racing_month_rewrites_always_see_a_whole_month(s3_root_uri):
    """A writer keeps replacing one month object with versions of different sizes while readers read
    it through the root; every read must decode to exactly one of the written versions."""
    root = StorageRoot.from_uri(s3_root_uri, lock_dsn="")
    days = [date(2024, 5, d) for d in range(1, 5)]
    versions = [
        {d: minute_candles(d, base=float(v), skip=tuple(range(v * 7))) for d in days} for v in range(1, 4)
    ]
    expected = {v + 1: 4 * (1440 - (v + 1) * 7) for v in range(3)}
    write_served_days(root, "1m", "binance", "BTCUSDT", versions[0])
    stop = threading.Event()
    seen: list[tuple[float, int]] = []
    errors: list[BaseException] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            write_served_days(root, "1m", "binance", "BTCUSDT", versions[i % 3])

    def reader() -> None:
        try:
            for _ in range(15):
                frame = read_served_candles(root, "1m", "binance", "BTCUSDT")
                seen.append((frame["close"].min().round(), len(frame)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join(120)
    stop.set()
    threads[0].join(60)
    assert errors == []
    assert len(seen) == 30
    assert all(expected[int(base)] == rows for base, rows in seen), seen
