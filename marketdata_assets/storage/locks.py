"""Month locks: who may rewrite a month file now.

Held around every read-modify-write of a month file (:meth:`StorageRoot.lock
<marketdata_assets.storage.root.StorageRoot.lock>`).

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

"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DSN_ENV = "MARKETDATA_LOCK_DSN"
DEFAULT_LOCK_TIMEOUT_S = 300.0


class StorageLockError(RuntimeError):
    """A month lock that could not be taken (lock database unreachable, timeout) or was lost."""


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """``fcntl.flock`` on ``lock_path`` (created): excludes threads and processes on this host."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def object_store_lock(
    target: str, what: str, dsn: str | None, root_uri: str, timeout_s: float
) -> Iterator[None]:
    """The lock of one object path: the threads of this process, then the advisory lock of the lock
    database when there is one (else a warning, once per root, that only this process is serialised)."""
    with _thread_lock(target):
        if dsn:
            with _advisory_lock(dsn, target, what, timeout_s):
                yield
        else:
            _warn_process_local_lock(root_uri)
            yield


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
