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

Month locks (:meth:`StorageRoot.lock`, held around every read-modify-write of a month file):

* Local roots: ``fcntl.flock`` on ``_locks/<segments>.lock``. Excludes threads and processes on the
  host (and hosts sharing the directory over a filesystem with working ``flock``).
* Object stores with a lock database: a PostgreSQL session advisory lock (``pg_advisory_lock``) keyed
  by a 64-bit hash of the object path, taken on a dedicated connection for the duration of the rewrite.
  It excludes every process on every machine that uses the same database, and a writer that dies
  releases its lock with its session (no stale leases to expire). The database is ``MARKETDATA_LOCK_DSN``
  (a libpq DSN or ``postgresql://`` URL), else the Dagster instance's Postgres from ``DAGSTER_PG_HOST``,
  ``DAGSTER_PG_PORT`` (5432), ``DAGSTER_PG_USER``, ``DAGSTER_PG_PASSWORD``, ``DAGSTER_PG_DB``, else the
  ``lock_dsn`` argument of :meth:`StorageRoot.from_uri`. A configured database that cannot be reached is
  an error, never a silent downgrade. Waiting is bounded (``lock_timeout``, default 300 s).
* Object stores without a lock database: a lock that serialises the threads of one process only. S3
  has no lock primitive pyarrow can use (conditional puts exist, but pyarrow does not expose them, and
  a lease object needs expiry and fencing), so concurrent writers of the same month in different
  processes could lose each other's days. In that configuration the writers of one
  exchange/symbol/month must be serialised outside (the Dagster per-venue pools with limit 1, or a
  single worker process); a warning is logged once per root.

What S3 itself guarantees, and the writes rely on: an object appears whole or not at all (a PUT or a
server-side copy is atomic per key), so readers never see half a file (see :mod:`.atomic`). A reader
must still not mix two versions of one object across its range requests: the filesystem of an S3 root
is wrapped in :class:`~marketdata_assets.storage.objectstore.SnapshotReads` for that.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import posixpath
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from marketdata_assets.storage.atomic import write_bytes_atomic
from marketdata_assets.storage.objectstore import SnapshotReads

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
# A finished path segment: a validated name, ``key=value`` of validated names, or a data file name.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]+(=[A-Za-z0-9_-]+)?|[A-Za-z0-9_-]+\.(parquet|json)")
LOCKS_DIR = "_locks"
CLAIM_FILE = "_root.json"
DATA_FILE = "data.parquet"
LOCK_DSN_ENV = "MARKETDATA_LOCK_DSN"
DEFAULT_LOCK_TIMEOUT_S = 300.0

log = logging.getLogger(__name__)


class InvalidNameError(ValueError):
    """A name that may not become part of a storage path."""


class StorageRootError(ValueError):
    """A storage root that cannot be used (unknown scheme, or data of the wrong kind already there)."""


class StorageLockError(RuntimeError):
    """A month lock that could not be taken (lock database unreachable, timeout) or was lost."""


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


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


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
                fs=pafs.PyFileSystem(SnapshotReads(_s3_from_env())),
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
        """Exclusive lock for a read-modify-write of the file at ``segments``.

        Local roots: ``fcntl.flock`` on ``<root>/_locks/<segments>.lock``, which excludes other threads and
        other processes on the same host (and hosts sharing the directory over a filesystem with working
        ``flock``). Object stores: a PostgreSQL advisory lock when the root has a lock database
        (``lock_dsn``), which excludes every process using that database; without one, only the threads
        of this process are serialised (see the module docstring). ``timeout_s`` bounds the wait for the
        advisory lock (:class:`StorageLockError` after it).
        """
        target = self.path(*segments)
        if not self.local:
            with _thread_lock(target):
                if self.lock_dsn:
                    with _advisory_lock(self.lock_dsn, target, self.display(target), timeout_s):
                        yield
                else:
                    _warn_process_local_lock(self.uri)
                    yield
            return
        lock_path = Path(self.path(LOCKS_DIR, *segments[:-1])) / f"{segments[-1]}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

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


@contextmanager
def _thread_lock(key: str) -> Iterator[None]:
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(key, threading.Lock())
    with lock:
        yield


def lock_dsn_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The PostgreSQL DSN of the object-store month locks: ``MARKETDATA_LOCK_DSN``, else a DSN built from
    the Dagster instance's ``DAGSTER_PG_*`` variables (when ``DAGSTER_PG_HOST`` is set), else None."""
    env = os.environ if environ is None else environ
    explicit = env.get(LOCK_DSN_ENV, "").strip()
    if explicit:
        return explicit
    host = env.get("DAGSTER_PG_HOST", "").strip()
    if not host:
        return None
    parts = {
        "host": host,
        "port": env.get("DAGSTER_PG_PORT", "").strip() or "5432",
        "dbname": env.get("DAGSTER_PG_DB", "").strip(),
        "user": env.get("DAGSTER_PG_USER", "").strip(),
        "password": env.get("DAGSTER_PG_PASSWORD", ""),
    }
    return " ".join(f"{k}={_libpq_quote(v)}" for k, v in parts.items() if v)


def _libpq_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def advisory_lock_id(target: str) -> int:
    """The signed 64-bit ``pg_advisory_lock`` key of an object path (blake2b of the path)."""
    digest = hashlib.blake2b(f"marketdata_assets:{target}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def describe_dsn(dsn: str) -> str:
    """``user@host:port/dbname`` of a DSN, for messages (never the password)."""
    try:
        from psycopg2.extensions import parse_dsn

        info = parse_dsn(dsn)
    except Exception:  # noqa: BLE001 - an unparsable DSN is reported as such, without its text
        return "<unparsable lock DSN>"
    user = f"{info['user']}@" if info.get("user") else ""
    return f"{user}{info.get('host', 'localhost')}:{info.get('port', '5432')}/{info.get('dbname', '')}"


@contextmanager
def _advisory_lock(dsn: str, target: str, what: str, timeout_s: float) -> Iterator[None]:
    """Hold ``pg_advisory_lock(advisory_lock_id(target))`` on a dedicated session while the body runs."""
    import psycopg2
    import psycopg2.errors

    where = describe_dsn(dsn)
    try:
        conn = psycopg2.connect(dsn, connect_timeout=10, application_name="marketdata_assets month lock")
    except psycopg2.Error as exc:
        raise StorageLockError(
            f"cannot reach the lock database {where} to lock {what}: {str(exc).strip()} "
            f"(set {LOCK_DSN_ENV} or DAGSTER_PG_* to a reachable PostgreSQL, or unset them)"
        ) from None
    lock_id = advisory_lock_id(target)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT set_config('lock_timeout', %s, false)", (f"{max(1, int(timeout_s * 1000))}ms",)
            )
            try:
                cur.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
            except psycopg2.errors.LockNotAvailable:
                raise StorageLockError(
                    f"timed out after {timeout_s:g} s waiting for the month lock on {what} ({where}); "
                    "another writer holds it"
                ) from None
        completed = False
        try:
            yield
            completed = True
        finally:
            held = _release(conn, lock_id)
        if completed and not held:
            raise StorageLockError(
                f"lost the month lock on {what} while writing (the session to {where} ended); another "
                "writer may have rewritten the month at the same time: re-run this write"
            )
    finally:
        conn.close()


def _release(conn: object, lock_id: int) -> bool:
    """Unlock; False when the lock was no longer held (the session broke) or unlocking failed."""
    try:
        with conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
            return bool(cur.fetchone()[0])
    except Exception:  # noqa: BLE001 - closing the session releases the lock anyway
        return False


_warned_roots: set[str] = set()


def _warn_process_local_lock(uri: str) -> None:
    if uri in _warned_roots:
        return
    _warned_roots.add(uri)
    log.warning(
        "%s: no lock database (%s / DAGSTER_PG_HOST unset), so month rewrites are serialised within this "
        "process only; concurrent writers of the same exchange/symbol/month in other processes must be "
        "serialised by the Dagster per-venue pools",
        uri,
        LOCK_DSN_ENV,
    )


def _s3_base(uri: str) -> str:
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise StorageRootError(f"invalid S3 root {uri!r}: expected s3://bucket/prefix")
    parts = [p for p in parsed.path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise StorageRootError(f"invalid S3 root {uri!r}: '.' or '..' in the prefix")
    prefix = "/".join(parts)
    return f"{parsed.netloc}/{prefix}" if prefix else parsed.netloc


def _s3_from_env(environ: Mapping[str, str] | None = None) -> pafs.S3FileSystem:
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
