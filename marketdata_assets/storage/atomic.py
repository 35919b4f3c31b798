"""Atomic, deterministic Parquet writes, and the frame -> Arrow conversion with an explicit schema.

A write goes to ``.tmp-<uuid>.tmp`` in the target's directory and is then moved over the final
name (``fs.move``: a ``rename`` on local disks, so readers see the old file or the new one, never a
half-written one). The name keeps the temporary file out of every reader's view: the leading dot
hides it from pyarrow/pandas/Spark directory discovery, and the ``.tmp`` suffix from ``*.parquet``
globs (DuckDB's and Polars' globs do match dot-files, so a ``.tmp-*.parquet`` name would be read). A crash that kills the process before the move leaves a ``.tmp-*`` file behind, which
:func:`marketdata_assets.storage.compaction.remove_stale_tmp` deletes later.

**Power loss** (local roots). A rename is atomic for running processes, not for the disk: without a
flush the kernel may persist the rename before the file's data, and after a power cut the final name
holds a truncated or empty file; or persist neither and lose a write already reported as done. So on a
local filesystem (also when wrapped, ``py::local+...``) a write fsyncs the temp file's data before the
move, fsyncs the directory after it (the rename itself), and fsyncs the parent of every directory it
had to create. ``fsync`` applies to the file, not to one descriptor, so the file written through
pyarrow's stream is flushed through a second read-only descriptor.

On an object store (``s3://``) the same discipline holds with different primitives: the Parquet bytes
are built in memory, uploaded to the ``.tmp-*`` key, then server-side copied to the final key and the
temp key deleted (``fs.move``). A PUT or a copy makes an object appear whole or not at all, so the
final key holds the old version or the new one, never a part. The temp key matters: pyarrow's S3
output stream creates its object when the stream is closed, and leaving a ``with`` block by an
exception closes it, so an upload that fails half-way directly to the final key would publish the half
(measured; see ``marketdata_assets_tests/objectstore``). Each uploaded object declares its SHA-256 in
its ``Content-Type``, which the copy keeps, so readers can prove they read one version
(:mod:`marketdata_assets.storage.objectstore`). No directory marker objects are created. Nothing
needs fsyncing there: an object store acknowledges a PUT or a copy only once the object is durably
stored, and each key is replaced atomically (old object or new, never a part).

The writer settings are fixed and depend only on the schema (:func:`parquet_options`), and Parquet
footers carry no timestamps, so writing identical rows twice gives byte-identical files. They are
chosen for size, measured on real and synthetic 1m candles (docs/BENCHMARKS.md), while keeping plain
Parquet that any reader decodes to the same values without this package:

* timestamps ``DELTA_BINARY_PACKED`` (consecutive open times differ by a constant: ~0.04 B a row,
  where a dictionary of unique timestamps cost 4.3 B);
* float64 columns (prices, volumes) ``PLAIN``, no dictionary: zstd finds the repeated 8-byte values
  itself (1.4 B per real price vs 1.5 B with a dictionary; 3.4 vs 5.1 B on a random walk), and
  BYTE_STREAM_SPLIT measured 4x larger on real prices, whose repeats it splits up;
* other columns (counts, flags, strings, dates) dictionary + RLE, as pyarrow does by default;
* statistics (min/max per row group and page) on every column except floats: readers prune by time,
  not by price;
* zstd level 6 (level 3 was 5% larger; 9 to 19 gain 1-3% more at 2-12x the write time);
* no stored Arrow schema (``ARROW:schema``): every type used here (``timestamp[ms, UTC]``, int16,
  int32, bool, string, date32, float64) reads back identically from the Parquet types alone;
* one week of 1-minute rows per row group, no pandas metadata, no index, data page v1.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from marketdata_assets.storage import objectstore

TMP_PREFIX = ".tmp-"
# One week of 1-minute candles per row group: a month file has ~5 groups, so a timestamp filter
# inside a month skips most of the file via row-group statistics.
ROW_GROUP_SIZE = 10_080
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 6
# pyarrow filesystem type names without real directories.
OBJECT_STORE_TYPES = frozenset({"s3", "gcs"})


@dataclass(frozen=True)
class WriteInfo:
    """One committed file: where (a local path or an object-store URI), how many rows, how many bytes."""

    path: str
    rows: int
    bytes: int


def tmp_path_for(path: str) -> str:
    """A fresh temporary name beside ``path`` (same directory, so the final move is a rename)."""
    return posixpath.join(posixpath.dirname(path), f"{TMP_PREFIX}{uuid.uuid4().hex}.tmp")


def is_tmp_name(name: str) -> bool:
    return posixpath.basename(name).startswith(TMP_PREFIX)


def write_table_atomic(fs: pafs.FileSystem, path: str, table: pa.Table) -> int:
    """Write ``table`` to ``path`` atomically; returns the file size in bytes.

    On any error the temporary file is removed and ``path`` keeps its previous content.
    """
    created = _make_parent(fs, path)
    tmp = tmp_path_for(path)
    try:
        if is_object_store(fs):
            buffer = pa.BufferOutputStream()
            _write_parquet(table, buffer)
            payload = buffer.getvalue()
            metadata = objectstore.checksummed_metadata(payload, objectstore.PARQUET_MEDIA_TYPE)
            with fs.open_output_stream(tmp, metadata=metadata) as sink:
                sink.write(payload)
            size = payload.size
        else:
            with fs.open_output_stream(tmp) as sink:
                _write_parquet(table, sink)
            size = fs.get_file_info(tmp).size
            _sync_file(fs, tmp)
        fs.move(tmp, path)
    except BaseException:
        _remove_quietly(fs, tmp)
        raise
    _sync_dirs(fs, path, created)
    return int(size)


def write_bytes_atomic(
    fs: pafs.FileSystem, path: str, payload: bytes, media_type: str = "application/octet-stream"
) -> None:
    """Small non-Parquet files (e.g. the root's claim marker), same temp-then-move discipline."""
    created = _make_parent(fs, path)
    tmp = tmp_path_for(path)
    metadata = objectstore.checksummed_metadata(payload, media_type) if is_object_store(fs) else None
    try:
        with fs.open_output_stream(tmp, metadata=metadata) as sink:
            sink.write(payload)
        _sync_file(fs, tmp)
        fs.move(tmp, path)
    except BaseException:
        _remove_quietly(fs, tmp)
        raise
    _sync_dirs(fs, path, created)


def _make_parent(fs: pafs.FileSystem, path: str) -> list[str]:
    """Create the parent directory where directories exist; object stores have only keys, and
    ``create_dir`` there would write one empty marker object per path level (and cost requests).
    Returns the directories created, outermost first (local filesystems only)."""
    if is_object_store(fs):
        return []
    parent = posixpath.dirname(path)
    missing: list[str] = []
    if is_local(fs):
        probe = parent
        while probe and probe != posixpath.dirname(probe) and not os.path.isdir(probe):
            missing.insert(0, probe)
            probe = posixpath.dirname(probe)
    fs.create_dir(parent, recursive=True)
    return missing


def is_local(fs: pafs.FileSystem) -> bool:
    """True for the local filesystem, also when wrapped (``py::local+...``): paths are OS paths."""
    return fs.type_name.removeprefix("py::").split("+")[0] == "local"


def _sync_file(fs: pafs.FileSystem, path: str) -> None:
    """Flush a closed local file's data to the disk (no-op elsewhere)."""
    if not is_local(fs):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dirs(fs: pafs.FileSystem, path: str, created: list[str]) -> None:
    """After a rename into ``path``'s directory: flush that directory (the new entry) and the parent of
    each directory this write created (their entries), innermost last. No-op off local filesystems."""
    if not is_local(fs):
        return
    for directory in [*(posixpath.dirname(d) for d in created), posixpath.dirname(path)]:
        fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    """fsync a local directory, so the entries created, renamed or removed in it survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_object_store(fs: pafs.FileSystem) -> bool:
    """True for S3/GCS filesystems (also when wrapped, e.g. ``s3+snapshot``): keys, no directories."""
    return fs.type_name.removeprefix("py::").split("+")[0] in OBJECT_STORE_TYPES


def parquet_options(schema: pa.Schema) -> dict[str, object]:
    """The ``pyarrow.parquet.write_table`` settings for a table of ``schema`` (module doc)."""
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    times = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    others = [f.name for f in schema if f.name not in floats and f.name not in times]
    return {
        "compression": COMPRESSION,
        "compression_level": COMPRESSION_LEVEL,
        "row_group_size": ROW_GROUP_SIZE,
        "use_dictionary": others,
        "column_encoding": {**dict.fromkeys(floats, "PLAIN"), **dict.fromkeys(times, "DELTA_BINARY_PACKED")},
        "write_statistics": [*times, *others],
        "store_schema": False,
        "version": "2.6",
        "data_page_version": "1.0",
    }


def _write_parquet(table: pa.Table, sink: pa.NativeFile) -> None:
    pq.write_table(table, sink, **parquet_options(table.schema))


def _remove_quietly(fs: pafs.FileSystem, path: str) -> None:
    try:
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_file(path)
    except OSError:
        pass


def read_table(fs: pafs.FileSystem, path: str, schema: pa.Schema | None = None) -> pa.Table:
    """Read one Parquet file (no Hive inference: partition columns live in the path, not the file)."""
    with fs.open_input_file(path) as source:
        table = pq.read_table(source, schema=schema)
    return table


def table_from_frame(frame: pd.DataFrame, schema: pa.Schema, *, what: str) -> pa.Table:
    """``frame`` as an Arrow table with exactly ``schema`` (column order, types), metadata-free.

    Missing or unexpected columns, naive timestamps and lossy casts (e.g. sub-millisecond timestamps,
    fractional counts) raise :class:`ValueError` naming ``what``.
    """
    names = list(schema.names)
    missing = [n for n in names if n not in frame.columns]
    extra = [c for c in frame.columns if c not in names]
    if missing or extra:
        raise ValueError(
            f"{what}: columns do not match the schema ({', '.join(names)}); "
            f"missing: {missing or 'none'}, unexpected: {extra or 'none'}"
        )
    for f in schema:
        if pa.types.is_timestamp(f.type) and not isinstance(frame[f.name].dtype, pd.DatetimeTZDtype):
            raise ValueError(
                f"{what}: column {f.name!r} has dtype {frame[f.name].dtype}; expected tz-aware UTC timestamps"
            )
    table = _columns_to_table(frame, schema) if frame.columns.is_unique else None
    if table is None:
        try:
            table = pa.Table.from_pandas(frame[names], schema=schema, preserve_index=False, safe=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise ValueError(f"{what}: cannot convert to the storage schema: {exc}") from None
    return table.replace_schema_metadata(None)


def _columns_to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table | None:
    """What ``pa.Table.from_pandas(frame[names], schema=schema, safe=True)`` builds, column by column
    with the same ``pa.array`` call it makes, without its per-call costs (copying the frame, a thread
    pool per frame, the pandas metadata): ~5x faster on a day's frame. ``None`` whenever a column does
    not convert cleanly: the caller then runs ``from_pandas`` itself, for its exact error."""
    try:
        arrays = [pa.array(frame[f.name], type=f.type, from_pandas=True, safe=True) for f in schema]
    except Exception:  # noqa: BLE001 - any failure is reported by the from_pandas path
        return None
    if any(not f.nullable and a.null_count for f, a in zip(schema, arrays, strict=True)):
        return None
    return pa.Table.from_arrays(arrays, schema=schema)


def frame_from_table(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas, keeping ``timestamp[ms, UTC]`` as ``datetime64[ms, UTC]``."""
    return table.to_pandas(types_mapper=None, coerce_temporal_nanoseconds=False)
