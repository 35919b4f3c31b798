"""Object-store reads that see one version of an object: :class:`SnapshotReads`, and the checksum
every object this package writes carries so that a reader can prove it.

pyarrow's S3 input file learns an object's size with a HEAD request and then reads byte ranges with
separate GETs (the Parquet footer first, then column chunks). A month file replaced between those
requests (the served layer rewrites month objects in place, atomically per object) gives a reader the
footer of one version and the pages of another. Worse, when a ranged GET returns fewer bytes than
asked for (the object shrank after the HEAD), pyarrow 18-26 still reports the full length and the
tail of the buffer is whatever the memory held. Both were measured against a real S3 server: readers
racing a writer failed with ``Page was smaller than expected`` or got bytes that were neither version.

So every object written through :mod:`.atomic` on an object store declares its own SHA-256 in its
``Content-Type`` (a media-type parameter, ``application/vnd.apache.parquet; sha256=<hex>``: the one
piece of object metadata pyarrow both writes and reads back, and which a server-side copy keeps), and
:class:`SnapshotReads`, the wrapper around the S3 filesystem of every object-store
:class:`~marketdata_assets.storage.root.StorageRoot`, reads each file whole: one HEAD (size and
declared digest of the current version), one ranged GET of ``[0, size)`` (``read_at``, which issues
exactly one request), then a hash check. A mismatch means the object changed between the two requests;
the read is retried (:data:`READ_ATTEMPTS` times, then :class:`ObjectChangedError`). The bytes handed
to the reader are then exactly one version, so every reader built on ``root.fs`` (single-file reads,
pyarrow datasets, the DuckDB catalog over those datasets) sees each file as of one moment.

Objects without a declared digest (written by another tool) get best-effort checks only (the Parquet
``PAR1`` trailer); a rewrite racing such a read can still go unnoticed. The price of whole-object reads
is that a read fetches the whole file even if it needs a few columns or row groups; month files are a
few MB at most (a month of 1-minute candles is ~1 MB), so that is one request instead of several.
Writes, listings, copies and deletes go straight to the wrapped filesystem.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Mapping
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

PARQUET_MAGIC = b"PAR1"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
_DIGEST_RE = re.compile(r";\s*sha256=([0-9a-f]{64})\s*(?:;|$)")
READ_ATTEMPTS = 5
_BACKOFF_S = (0.02, 0.1, 0.3, 0.6)


class ObjectChangedError(OSError):
    """An object kept changing while it was being read."""


class DelegatingHandler(pafs.FileSystemHandler):
    """A :class:`pyarrow.fs.FileSystemHandler` passing every call to ``inner``; subclasses change reads."""

    type_name = "delegating"

    def __init__(self, inner: pafs.FileSystem) -> None:
        self.inner = inner

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.inner.equals(self.inner)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return f"{self.inner.type_name}+{self.type_name}"

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.inner.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of the whole filesystem")

    def delete_file(self, path: str) -> None:
        self.inner.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.inner.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.inner.copy_file(src, dest)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.inner.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.inner.open_input_file(path)

    def open_output_stream(self, path: str, metadata: dict[str, str] | None = None) -> pa.NativeFile:
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: dict[str, str] | None = None) -> pa.NativeFile:
        return self.inner.open_append_stream(path, metadata=metadata)


class SnapshotReads(DelegatingHandler):
    """Reads whole objects in one GET and checks their declared digest (see the module doc)."""

    type_name = "snapshot"

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return pa.BufferReader(read_snapshot(self.inner, path))

    def open_input_file(self, path: str) -> pa.NativeFile:
        return pa.BufferReader(read_snapshot(self.inner, path))


def checksummed_metadata(payload: pa.Buffer | bytes, media_type: str) -> dict[str, str]:
    """Object metadata declaring ``payload``'s SHA-256: ``{"Content-Type": "<media type>; sha256=<hex>"}``."""
    return {"Content-Type": f"{media_type}; sha256={hashlib.sha256(payload).hexdigest()}"}


def declared_sha256(metadata: Mapping[str, object]) -> str | None:
    """The digest an object declares in its ``Content-Type`` (None when it declares none)."""
    for key, value in metadata.items():
        if str(key).lower() == "content-type":
            text = value.decode() if isinstance(value, bytes) else str(value)
            match = _DIGEST_RE.search(text)
            return match.group(1) if match else None
    return None


def read_snapshot(fs: pafs.FileSystem, path: str) -> pa.Buffer:
    """The bytes of one version of the object at ``path`` (re-read while it changes under the read)."""
    problem = ""
    for attempt in range(READ_ATTEMPTS):
        if attempt:
            time.sleep(_BACKOFF_S[min(attempt - 1, len(_BACKOFF_S) - 1)])
        with fs.open_input_file(path) as source:  # HEAD: size and declared digest of the current version
            size = source.size()
            expected = declared_sha256(source.metadata())
            # read_at is one GET of [0, size); read_buffer/read would issue more GETs after a short
            # response. A short response still comes back as ``size`` bytes (see the module docstring).
            data = pa.py_buffer(source.read_at(size, 0) if size else b"")
        if expected is not None:
            if hashlib.sha256(data).hexdigest() == expected:
                return data
            problem = "content does not match the SHA-256 its metadata declares"
            continue
        if path.endswith(".parquet") and size >= 8 and data[size - 4 :].to_pybytes() != PARQUET_MAGIC:
            problem = "no Parquet footer at the end"
            continue
        return data
    raise ObjectChangedError(
        f"{path}: the object changed during {READ_ATTEMPTS} read attempts ({problem}); "
        "a writer is rewriting it continuously, or it is not a complete file"
    )


def s3_filesystem_from_env(environ: Mapping[str, str] | None = None) -> pafs.S3FileSystem:
    """An S3 filesystem configured from the standard AWS environment variables."""
    env = os.environ if environ is None else environ
    options: dict[str, object] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = parsed.netloc
        options["scheme"] = parsed.scheme
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        options["access_key"] = env["AWS_ACCESS_KEY_ID"]
        options["secret_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            options["session_token"] = env["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**options)
