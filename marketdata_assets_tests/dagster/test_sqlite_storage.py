"""The embedded instance's pooled SQLite storage (marketdata_assets/defs/sqlite_storage.py).

Dagster's own files and schema, readable by Dagster's stock storage and back; every event visible to
other processes and to the UI's live run watcher while connections stay open; a bounded number of open
run files; safe across fork; and wipe.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DailyPartitionsDefinition,
    asset,
    materialize,
)
from dagster._core.instance.ref import InstanceRef
from dagster._core.test_utils import create_run_for_test

from marketdata_assets.defs.sqlite_storage import (
    MAX_OPEN_RUN_SHARDS,
    EmbeddedSqliteStorage,
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
    PooledSqliteScheduleStorage,
)
from marketdata_assets.settings import PROJECT_DIR

DAYS = DailyPartitionsDefinition("2024-03-01")


@asset(partitions_def=DAYS)
def candles() -> int:
    return 1440


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with the repository's embedded dagster.yaml, and a stock-storage config beside it."""
    shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    (tmp_path / "stock.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {tmp_path}\ntelemetry:\n  enabled: false\n"
    )
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return tmp_path


def embedded(home: Path) -> DagsterInstance:
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def stock(home: Path) -> DagsterInstance:
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home), config_filename="stock.yaml"))


def materialized(instance: DagsterInstance) -> set[str]:
    return set(instance.get_materialized_partitions(AssetKey("candles")))


def open_run_files(home: Path) -> list[str]:
    """Run-shard database files this process holds open (Linux /proc)."""
    runs = str(home / "history" / "runs") + os.sep
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return [t for t in targets if t.startswith(runs) and t.endswith(".db") and not t.endswith("index.db")]


def test_the_repository_config_selects_the_pooled_storage_in_dagsters_layout(home: Path) -> None:
    with embedded(home) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        assert isinstance(instance.run_storage, PooledSqliteRunStorage)
        assert isinstance(instance.schedule_storage, PooledSqliteScheduleStorage)
        result = materialize([candles], instance=instance, partition_key="2024-03-01")
        assert result.success
        assert materialized(instance) == {"2024-03-01"}
    for path in (
        "history/runs.db",
        "history/runs/index.db",
        f"history/runs/{result.run_id}.db",
        "schedules/schedules.db",
    ):
        assert (home / path).is_file(), path
    # a run launched by the daemon gets the instance by reference: the same pooled storage
    ref = embedded(home).get_ref()
    assert ref.storage_data.class_name == EmbeddedSqliteStorage.__name__
    assert ref.storage_data.module_name == "marketdata_assets.defs.sqlite_storage"
    with DagsterInstance.from_ref(ref) as rehydrated:
        assert isinstance(rehydrated.event_log_storage, PooledSqliteEventLogStorage)
        assert materialized(rehydrated) == {"2024-03-01"}


def test_dagsters_stock_storage_and_the_pooled_one_read_each_others_writes(home: Path) -> None:
    with embedded(home) as pooled:
        assert materialize([candles], instance=pooled, partition_key="2024-03-01").success
        with stock(home) as plain:
            assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
            assert materialized(plain) == {"2024-03-01"}  # written while the pooled connections are open
            assert materialize([candles], instance=plain, partition_key="2024-03-02").success
        assert materialized(pooled) == {"2024-03-01", "2024-03-02"}
        assert len(pooled.get_runs()) == 2


def test_the_live_run_watcher_sees_events_while_the_writer_keeps_its_connection(home: Path) -> None:
    """The UI's live run view is `watch_event_logs`; writes into the run's -wal file must wake it."""
    with embedded(home) as writer, embedded(home) as watcher:
        run = create_run_for_test(writer, job_name="watched")
        seen: list[str] = []
        arrived = {"first": threading.Event(), "second": threading.Event()}

        def on_event(entry, cursor) -> None:  # noqa: ANN001
            seen.append(entry.message)
            if entry.message in arrived:
                arrived[entry.message].set()

        writer.report_engine_event("first", run)  # creates the run's file (which touches the .db)
        watcher.watch_event_logs(run.run_id, None, on_event)
        try:
            writer.report_engine_event("second", run)  # from here on only the -wal file changes
            assert (home / "history" / "runs" / f"{run.run_id}.db-wal").exists()
            assert arrived["second"].wait(timeout=20), f"watcher saw only {seen}"
        finally:
            watcher.end_watch_event_logs(run.run_id, on_event)
        assert [m for m in seen if m in ("first", "second")] == ["first", "second"]


def test_a_process_keeps_a_bounded_number_of_run_files_open(home: Path) -> None:
    with embedded(home) as instance:
        runs = [create_run_for_test(instance, job_name=f"job{i}") for i in range(MAX_OPEN_RUN_SHARDS + 4)]
        for run in runs:
            instance.report_engine_event("hello", run)
        assert 1 <= len(open_run_files(home)) <= MAX_OPEN_RUN_SHARDS
        for run in runs:  # the closed ones still read (reopened on demand)
            assert [e.message for e in instance.all_logs(run.run_id)] == ["hello"]
    assert open_run_files(home) == []  # closing the instance closes every file


def _write_in_child(home: str, run_id: str, queue) -> None:  # noqa: ANN001
    try:
        instance = _INHERITED[0]
        run = instance.get_run_by_id(run_id)
        instance.report_engine_event("from the child", run)
        queue.put("ok")
    except Exception as exc:  # pragma: no cover - reported to the parent
        queue.put(repr(exc))


_INHERITED: list[DagsterInstance] = []


def test_a_forked_child_opens_its_own_connections(home: Path) -> None:
    with embedded(home) as instance:
        run = create_run_for_test(instance, job_name="forked")
        instance.report_engine_event("before the fork", run)  # pools now hold open connections
        _INHERITED[:] = [instance]
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_write_in_child, args=(str(home), run.run_id, queue))
        child.start()
        child.join(timeout=60)
        _INHERITED.clear()
        assert child.exitcode == 0 and queue.get(timeout=5) == "ok"
        instance.report_engine_event("after the fork", run)
        messages = [e.message for e in instance.all_logs(run.run_id)]
        assert messages == ["before the fork", "from the child", "after the fork"]
    for db in (home / "history" / "runs").glob("*.db"):
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",), db


def test_wipe_closes_and_removes_the_run_files(home: Path) -> None:
    with embedded(home) as instance:
        first = materialize([candles], instance=instance, partition_key="2024-03-01").run_id
        instance.wipe()
        assert not (home / "history" / "runs" / f"{first}.db").exists()
        assert open_run_files(home) == []
        assert materialized(instance) == set()
        again = materialize([candles], instance=instance, partition_key="2024-03-02")
        assert again.success and materialized(instance) == {"2024-03-02"}


def test_overlapping_threads_never_wait_for_a_pooled_connection(home: Path) -> None:
    """The webserver reads runs from many threads at once: each gets a connection, none queues."""
    with embedded(home) as instance:
        run = create_run_for_test(instance, job_name="busy")
        barrier = threading.Barrier(16)
        errors: list[BaseException] = []

        def read() -> None:
            try:
                with instance.run_storage.connect() as conn:  # held by all 16 threads at once
                    barrier.wait(timeout=20)
                    assert conn.exec_driver_sql("SELECT count(*) FROM runs").scalar() == 1
                assert instance.get_run_by_id(run.run_id) is not None
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []


def test_schema_answers_are_kept_only_when_yes(home: Path) -> None:
    """Tables and columns Dagster looks up per event: a "yes" is kept, a "no" is asked again."""
    with embedded(home) as instance:
        storage = instance.event_log_storage
        assert storage.has_table("asset_check_executions") and storage.has_table("asset_event_tags")
        assert storage.has_asset_key_index_cols()
        assert not storage.has_table("added_later")
        with sqlite3.connect(home / "history" / "runs" / "index.db") as conn:  # a migration elsewhere
            conn.execute("CREATE TABLE added_later (id INTEGER)")
        assert storage.has_table("added_later")
