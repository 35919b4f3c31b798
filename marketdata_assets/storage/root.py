"""Where the data lives: a pyarrow FileSystem plus a base path, and the only way to build paths under it.

A :class:`StorageRoot` comes from a plain path, a ``file://`` URI or an ``s3://bucket/prefix`` URI. All
reads and writes go through ``root.fs`` (a :class:`pyarrow.fs.FileSystem`), so the same code serves a
local directory and an object store. For S3 the endpoint and credentials come from the environment:
``AWS_ENDPOINT_URL`` (e.g. ``http://127.0.0.1:9000`` for MinIO), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.

Every path component is validated before it reaches a path: names (exchange, symbol key, timeframe,
currency, dataset parts) must match ``^[A-Za-z0-9_-]+$``, days and months are built from
:class:`datetime.date` objects, and the joined path is checked to stay inside the root. A symbol like
``../x`` or ``BTC/USDT`` is rejected with a :class:`InvalidNameError`, never joined.

Month locks (:meth:`StorageRoot.lock`, held around every read-modify-write of a month file) are
:mod:`.locks`' (flock on local roots, PostgreSQL advisory locks for object stores).

What S3 itself guarantees, and the writes rely on: an object appears whole or not at all (a PUT or a
server-side copy is atomic per key), so readers never see half a file (see :mod:`.atomic`). A reader
must still not mix two versions of one object across its range requests: the filesystem of an S3 root
is wrapped in :class:`~marketdata_assets.storage.objectstore.SnapshotReads` for that.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from marketdata_assets.storage.atomic import write_bytes_atomic
from marketdata_assets.storage.locks import (
    DEFAULT_LOCK_TIMEOUT_S,
    file_lock,
    lock_dsn_from_env,
    object_store_lock,
)
from marketdata_assets.storage.objectstore import SnapshotReads, s3_filesystem_from_env

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
# A finished path segment: a validated name, ``key=value`` of validated names, or a data file name.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]+(=[A-Za-z0-9_-]+)?|[A-Za-z0-9_-]+\.(parquet|json)")
LOCKS_DIR = "_locks"
CLAIM_FILE = "_root.json"
DATA_FILE = "data.parquet"

log = logging.getLogger(__name__)


class InvalidNameError(ValueError):
    """A name that may not become part of a storage path."""


class StorageRootError(ValueError):
    """A storage root that cannot be used (unknown scheme, or data of the wrong kind already there)."""


def check_local_root(path: str | os.PathLike[str], setting: str = "storage root") -> str:
    """``path`` resolved, if it can hold the data; else one :class:`StorageRootError` naming ``setting``.

    Refused: a filesystem root (``/``), the home directory itself (the data would be spread over it and
    compaction would walk it), and a path that exists but is not a directory (every write would fail
    deep inside a run). A directory that does not exist yet is fine: it is created on the first write.
    """
    resolved = Path(path).expanduser().resolve()
    problem = None
    if resolved == Path(resolved.anchor):
        problem = "is a filesystem root"
    elif resolved == Path.home().resolve():
        problem = "is the home directory itself"
    elif resolved.exists() and not resolved.is_dir():
        problem = "exists and is not a directory"
    if problem:
        shown = str(resolved) if os.fspath(path) == str(resolved) else f"{os.fspath(path)} ({resolved})"
        raise StorageRootError(
            f"{setting} = {shown} {problem}; point it at a directory of its own for the data"
        )
    return str(resolved)


def validate_name(value: object, what: str) -> str:
    """``value`` if it is a safe path name (``^[A-Za-z0-9_-]+$``), else :class:`InvalidNameError`."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidNameError(f"invalid {what} {value!r}: expected letters, digits, '_' or '-' only")
    return value


def hive_segment(key: str, value: str) -> str:
    """``key=value`` after validating both (the Hive partition directory name)."""
    return f"{validate_name(key, 'partition key')}={validate_name(value, key)}"


def day_segment(day: date) -> str:
    """``date=YYYY-MM-DD`` of a UTC day (a :class:`date`, not a string or datetime)."""
    return f"date={_as_day(day).isoformat()}"


def month_of(day: date) -> str:
    """``YYYY-MM`` of a day: the monthly file a row of that day belongs to."""
    day = _as_day(day)
    return f"{day.year:04d}-{day.month:02d}"


def month_segment(month: str) -> str:
    """``month=YYYY-MM`` after checking the month is a real calendar month."""
    parse_month(month)
    return f"month={month}"


def parse_month(month: str) -> date:
    """The first day of a ``YYYY-MM`` month; :class:`InvalidNameError` for anything else."""
    match = _MONTH_RE.fullmatch(month) if isinstance(month, str) else None
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise InvalidNameError(f"invalid month {month!r}: expected YYYY-MM")
    return date(int(match.group(1)), int(match.group(2)), 1)


def dataset_segments(dataset: str) -> list[str]:
    """``raw/ohlcv_1m`` -> ``["raw", "ohlcv_1m"]``, each part validated."""
    if not isinstance(dataset, str) or not dataset:
        raise InvalidNameError(f"invalid dataset {dataset!r}")
    return [validate_name(part, "dataset name part") for part in dataset.split("/")]


def key_segments(keys: Mapping[str, str], expected: tuple[str, ...]) -> list[str]:
    """Hive segments of ``keys`` in the order ``expected`` gives; the key names must match exactly."""
    if set(keys) != set(expected):
        raise InvalidNameError(f"partition keys {sorted(keys)} do not match the dataset's {list(expected)}")
    return [hive_segment(k, keys[k]) for k in expected]


def _as_day(day: object) -> date:
    if isinstance(day, datetime) or not isinstance(day, date):
        raise InvalidNameError(f"expected a datetime.date for a day, got {type(day).__name__} {day!r}")
    return day


@dataclass(frozen=True)
class StorageRoot:
    """A filesystem and a base path; build one with :meth:`from_uri`."""

    fs: pafs.FileSystem
    base: str
    uri: str
    local: bool = False
    # PostgreSQL DSN of the cross-process month locks of an object-store root (None: in-process only).
    lock_dsn: str | None = field(default=None, repr=False)

    @classmethod
    def from_uri(cls, uri: str | os.PathLike[str], *, lock_dsn: str | None = None) -> StorageRoot:
        """A root from a plain path, ``file:///abs/path`` or ``s3://bucket/prefix``.

        ``lock_dsn`` (object stores only): the PostgreSQL database of the month locks; when None it is
        taken from the environment (:func:`lock_dsn_from_env`); ``""`` means no lock database.
        """
        text = os.fspath(uri)
        if not text.strip():
            raise StorageRootError("empty storage root")
        scheme = urlparse(text).scheme if "://" in text else ""
        if scheme == "":
            path = check_local_root(text)
            return cls(fs=pafs.LocalFileSystem(), base=path, uri=path, local=True)
        if scheme == "file":
            fs, path = pafs.FileSystem.from_uri(text)
            path = check_local_root(path)
            return cls(fs=fs, base=path, uri=text, local=True)
        if scheme == "s3":
            dsn = lock_dsn_from_env() if lock_dsn is None else lock_dsn
            return cls(
                fs=pafs.PyFileSystem(SnapshotReads(s3_filesystem_from_env())),
                base=_s3_base(text),
                uri=text.rstrip("/"),
                local=False,
                lock_dsn=dsn or None,
            )
        raise StorageRootError(
            f"unsupported storage root {text!r}: use a path, file:///... or s3://bucket/prefix"
        )

    def __str__(self) -> str:
        return self.uri

    def path(self, *segments: str) -> str:
        """The filesystem path of ``segments`` under the root (each segment already validated/built)."""
        for segment in segments:
            if segment != CLAIM_FILE and (not isinstance(segment, str) or not _SEGMENT_RE.fullmatch(segment)):
                raise InvalidNameError(f"invalid path segment {segment!r}")
        joined = posixpath.normpath(posixpath.join(self.base, *segments)) if segments else self.base
        self.check_inside(joined)
        return joined

    def check_inside(self, path: str) -> str:
        """``path`` if it lies under the root, else :class:`InvalidNameError`."""
        normalized = posixpath.normpath(path)
        if normalized != self.base and not normalized.startswith(self.base.rstrip("/") + "/"):
            raise InvalidNameError(f"path {path!r} escapes the storage root {self.base!r}")
        return normalized

    def relative(self, path: str) -> str:
        """``path`` relative to the root (it must be inside)."""
        normalized = self.check_inside(path)
        return normalized[len(self.base) :].lstrip("/")

    def display(self, path: str) -> str:
        """How to show a path to a person: a local path as is, an object-store path as a URI."""
        if self.local:
            return path
        return f"{self.uri}/{self.relative(path)}"

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    @contextmanager
    def lock(self, *segments: str, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
        """Exclusive lock for a read-modify-write of the file at ``segments`` (see :mod:`.locks`)."""
        target = self.path(*segments)
        if self.local:
            lock_path = Path(self.path(LOCKS_DIR, *segments[:-1])) / f"{segments[-1]}.lock"
            with file_lock(lock_path):
                yield
        else:
            with object_store_lock(target, self.display(target), self.lock_dsn, self.uri, timeout_s):
                yield

    def read_claim(self) -> dict[str, object] | None:
        """What :meth:`claim` recorded at this root, or None for an unclaimed root."""
        path = self.path(CLAIM_FILE)
        if not self.exists(path):
            return None
        with self.fs.open_input_stream(path) as stream:
            return json.loads(stream.read().decode())

    def claim(self, *, synthetic: bool, environment: str) -> None:
        """Mark the root as holding synthetic (simulator) or real data; refuse to mix the two.

        The first writer records ``{"synthetic": ..., "environment": ...}`` in ``_root.json``; a later
        writer whose ``synthetic`` flag differs gets a :class:`StorageRootError`, so demo data never lands
        in the real-exchange root (or the other way round).
        """
        validate_name(environment, "environment")
        existing = self.read_claim()
        if existing is not None:
            if bool(existing.get("synthetic")) != synthetic:
                kind = "synthetic (simulator)" if existing.get("synthetic") else "real-exchange"
                raise StorageRootError(
                    f"{self.uri} holds {kind} data (claimed by environment "
                    f"{existing.get('environment')!r}); environment {environment!r} with "
                    f"synthetic={synthetic} must use a different storage root"
                )
            return
        payload = json.dumps({"environment": environment, "synthetic": synthetic}, sort_keys=True).encode()
        write_bytes_atomic(self.fs, self.path(CLAIM_FILE), payload, media_type="application/json")


def _s3_base(uri: str) -> str:
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise StorageRootError(f"invalid S3 root {uri!r}: expected s3://bucket/prefix")
    parts = [p for p in parsed.path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise StorageRootError(f"invalid S3 root {uri!r}: '.' or '..' in the prefix")
    prefix = "/".join(parts)
    return f"{parsed.netloc}/{prefix}" if prefix else parsed.netloc
