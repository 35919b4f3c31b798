"""The embedded instance's SQLite storage, with one pooled SQLAlchemy engine per database file.

Dagster's SQLite storages (1.13) build a new SQLAlchemy engine with ``NullPool`` for every read and
write. So every event pays, in the writing process: a new engine and an empty compiled-statement cache
(each INSERT is compiled again), opening the database file, and on close a WAL checkpoint of the file
(SQLite checkpoints and deletes the ``-wal`` file when its last connection closes). A symbol-day of a
backfill writes 20 events, most of them to two files (the run's shard and the index shard), so this
bookkeeping, not the candles, was the largest part of a backfill's CPU (docs/BENCHMARKS.md).

:class:`EmbeddedSqliteStorage` is Dagster's own ``DagsterSqliteStorage`` (same files, same schema, same
migrations: an existing ``dagster_home`` keeps working, and ``storage: sqlite`` can be put back at any
time) whose run, event-log and schedule storages keep one engine per file with a small connection pool:

- Statements are compiled once per process; connections stay open between events. Every transaction
  still commits (WAL, ``synchronous=FULL``, as Dagster sets the files up), so nothing written is less
  durable, and other processes (webserver, daemon, other backfills) read and write the same files as
  before: SQLite locks per transaction, not per connection.
- With connections left open, a run's events stay in ``<run_id>.db-wal`` until SQLite's automatic
  checkpoint, and Dagster's file watcher (the UI's live run view) only watches ``<run_id>.db``; the
  watcher here watches both files.
- At most :data:`MAX_OPEN_RUN_SHARDS` run databases stay open per process (least recently used closed
  first), so a long-lived webserver or daemon does not collect file handles.
- A process forked with open pools never uses its parent's connections (SQLite forbids it): the child
  drops them unused and opens its own.
- Dagster asks the index shard whether a table or an ``asset_keys`` column exists on every asset and
  check event; a "yes" is kept for the process (migrations only add), a "no" is asked again.

Selected in ``dagster_home/dagster.yaml`` (``storage: custom``). The team instance uses Postgres, whose
Dagster storage already pools its connections.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Private Dagster API: subclassing Dagster's SQLite storages keeps their files, schema and migrations;
# pinned by marketdata_assets_tests/dagster/test_sqlite_storage.py and the exact dagster pin.
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)

# Private Dagster API: the run and schedule storages, as above (test_sqlite_storage.py).
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage

# Private Dagster API: the composite storage and its directory layout (test_sqlite_storage.py).
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)

# Private Dagster API: the configurable-class data every storage carries (test_sqlite_storage.py).
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from watchdog.events import FileSystemEvent

MAX_OPEN_RUN_SHARDS = 8
"""Run-shard databases one process keeps open; a backfill writes to one run at a time."""


def _pooled_engine(conn_string: str) -> Engine:
    # One connection stays open: what a storage uses at a time in a backfill (the event log serialises
    # its access under its own lock). Threads that overlap (the webserver's GraphQL workers reading
    # runs) each get one more, closed again when returned, as with Dagster's own storage: never a wait
    # for a free connection (max_overflow=-1: no limit).
    return create_engine(
        conn_string,
        pool_size=1,
        max_overflow=-1,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )


class _Engines:
    """Pooled engines by key, least recently used closed beyond ``limit``; reset in a forked child."""

    def __init__(self, limit: int | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def get(self, key: str, conn_string: str) -> Engine:
        with self._lock:
            if os.getpid() != self._pid:  # forked: the parent's connections are not ours to use
                for engine in self._engines.values():
                    engine.dispose(close=False)
                self._engines.clear()
                self._pid = os.getpid()
            engine = self._engines.get(key)
            if engine is None:
                engine = self._engines[key] = _pooled_engine(conn_string)
            self._engines.move_to_end(key)
            while self._limit is not None and len(self._engines) > self._limit:
                _, oldest = self._engines.popitem(last=False)  # never `key`: it was just moved last
                oldest.dispose()
            return engine

    def dispose(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                if os.getpid() == self._pid:
                    engine.dispose()
                else:
                    engine.dispose(close=False)
            self._engines.clear()


class _BothFilesWatchdog(SqliteEventLogStorageWatchdog):
    """Dagster's run-log watcher, woken by writes to the run's ``.db`` or its ``-wal`` file."""

    def __init__(
        self, event_log_storage: SqliteEventLogStorage, run_id: str, callback: Any, cursor: str | None
    ):
        super().__init__(event_log_storage, run_id, callback, cursor)
        # PatternMatchingEventHandler keeps the patterns given to its __init__; widen them here
        self._patterns = [self._log_path, self._log_path + "-wal"]

    def on_modified(self, event: FileSystemEvent) -> None:
        self._process_log()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with a pooled engine per shard (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._index_engines = _Engines()
        self._run_engines = _Engines(limit=MAX_OPEN_RUN_SHARDS)
        self._present: set[tuple[str, str]] = set()  # (table, column or "") seen in the index shard
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            conn_string = self.conn_string_for_shard(shard)
            engine = (
                self._index_engine()
                if shard == INDEX_SHARD_NAME
                else self._run_engines.get(shard, conn_string)
            )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    # Dagster asks the index shard whether a table or column exists on every asset and check event
    # (a new engine and a PRAGMA each time: ~10% of an event's cost). Migrations only add tables and
    # columns, so a "yes" is kept for the process; a "no" is asked again. These run inside an open
    # index transaction (under _db_lock, which is not re-entrant), so they use a connection of their own.

    def has_table(self, table_name: str) -> bool:
        key = (table_name, "")
        if key not in self._present:
            with self._index_engine().connect() as conn:
                if conn.dialect.has_table(conn, table_name):
                    self._present.add(key)
        return key in self._present

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        key = ("asset_keys", column_name)
        if key not in self._present and super()._has_asset_key_col_on_connection(conn, column_name):
            self._present.add(key)
        return key in self._present

    def _index_engine(self) -> Engine:
        return self._index_engines.get(INDEX_SHARD_NAME, self.conn_string_for_shard(INDEX_SHARD_NAME))

    def watch(self, run_id: str, cursor: str | None, callback: Any) -> None:
        from watchdog.observers import Observer

        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        watchdog = _BothFilesWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (
            watchdog,
            self._obs.schedule(watchdog, self._base_dir, recursive=True),
        )

    def wipe(self) -> None:
        self._run_engines.dispose()  # the run files are deleted: no connection may outlive them
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._run_engines.dispose()
        self._index_engines.dispose()


class _OnePooledEngine:
    """``connect()`` of a one-file SQLite storage (runs, schedules) through one pooled engine."""

    _conn_string: str

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines = _Engines()
        super().__init__(conn_string, inst_data)  # type: ignore[call-arg]  # the Dagster storage's

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> Any:
        return cls.from_local(inst_data=inst_data, **config_value)  # type: ignore[attr-defined]

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engines.get("db", self._conn_string).connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engines.dispose()


class PooledSqliteRunStorage(_OnePooledEngine, SqliteRunStorage):
    """``SqliteRunStorage`` with one pooled engine (see the module docstring)."""


class PooledSqliteScheduleStorage(_OnePooledEngine, SqliteScheduleStorage):
    """``SqliteScheduleStorage`` with one pooled engine (see the module docstring)."""


class EmbeddedSqliteStorage(DagsterSqliteStorage):
    """The embedded instance's storage: Dagster's SQLite layout under ``base_dir``, pooled engines.

    In ``dagster.yaml``::

        storage:
          custom:
            module: marketdata_assets.defs.sqlite_storage
            class: EmbeddedSqliteStorage
            config:
              base_dir: {env: DAGSTER_HOME}
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> EmbeddedSqliteStorage:
        return cls(inst_data=inst_data, **config_value)
