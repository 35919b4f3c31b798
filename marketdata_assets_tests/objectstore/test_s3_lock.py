"""Month locks on an object-store root: PostgreSQL advisory locks across processes, or (without a lock
database) threads of one process only, as :mod:`marketdata_assets.storage.root` documents."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import date

import psycopg2
import pytest

from marketdata_assets.storage.locks import (
    LOCK_DSN_ENV,
    StorageLockError,
    advisory_lock_id,
    lock_dsn_from_env,
)
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import CANDLES, candle_keys, read_served_candles, write_served_days
from marketdata_assets_tests.objectstore.workers import write_days
from marketdata_assets_tests.storage.helpers import minute_candles

MAY = [date(2024, 5, d) for d in range(1, 13)]
KEYS = candle_keys("1m", "binance", "BTCUSDT")
SEGMENTS = CANDLES.month_segments(KEYS, "2024-05")


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    yield conn
    conn.close()


def _stored_days(root: StorageRoot) -> dict[date, float]:
    stored = read_served_candles(root, "1m", "binance", "BTCUSDT")
    assert stored["timestamp"].is_unique
    return {d: float(g["close"].min()) for d, g in stored.groupby(stored["timestamp"].dt.date)}


def _advisory_waiters(conn, target: str) -> int:
    """Sessions waiting (not granted) for the advisory lock of ``target``."""
    lock_id = advisory_lock_id(target) & 0xFFFFFFFFFFFFFFFF
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
            (lock_id >> 32, lock_id & 0xFFFFFFFF),
        )
        return cur.fetchone()[0]


def _holder_pid(conn, target: str) -> int:
    lock_id = advisory_lock_id(target) & 0xFFFFFFFFFFFFFFFF
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
            (lock_id >> 32, lock_id & 0xFFFFFFFF),
        )
        (pid,) = cur.fetchone()
        return pid


@pytest.mark.postgres
def test_a_writer_in_another_process_waits_for_the_month_lock(s3_root_uri, pg_dsn, pg):
    root = StorageRoot.from_uri(s3_root_uri, lock_dsn=pg_dsn)
    write_served_days(root, "1m", "binance", "BTCUSDT", {MAY[0]: minute_candles(MAY[0], base=1.0)})
    target = root.path(*SEGMENTS)
    spawn = multiprocessing.get_context("spawn")
    with root.lock(*SEGMENTS):
        worker = spawn.Process(target=write_days, args=(s3_root_uri, pg_dsn, [MAY[1]]))
        worker.start()
        deadline = time.monotonic() + 60
        while _advisory_waiters(pg, target) == 0:  # the worker reached the lock and is blocked on it
            assert worker.is_alive() and time.monotonic() < deadline, "worker never waited for the lock"
            time.sleep(0.05)
        assert _stored_days(root) == {MAY[0]: 1.0}  # it has not rewritten the month under our lock
    worker.join(60)
    assert worker.exitcode == 0
    assert _stored_days(root) == {MAY[0]: 1.0, MAY[1]: 2.0}


@pytest.mark.postgres
def test_concurrent_processes_rewriting_one_month_lose_no_day(s3_root_uri, pg_dsn):
    """Three processes x four days, each day its own read-modify-write of the same month object: without
    a cross-process lock, a rewrite based on a stale read drops the days written in between."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(3)
    workers = [
        spawn.Process(target=write_days, args=(s3_root_uri, pg_dsn, MAY[i::3], barrier)) for i in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    root = StorageRoot.from_uri(s3_root_uri, lock_dsn="")
    assert _stored_days(root) == {d: float(d.day) for d in MAY}


@pytest.mark.postgres
def test_waiting_is_bounded(s3_root_uri, pg_dsn, pg):
    root = StorageRoot.from_uri(s3_root_uri, lock_dsn=pg_dsn)
    with pg.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (advisory_lock_id(root.path(*SEGMENTS)),))
    try:
        with (
            pytest.raises(StorageLockError, match=r"timed out after 0.2 s .*month=2024-05"),
            root.lock(*SEGMENTS, timeout_s=0.2),
        ):
            pytest.fail("the lock was granted while another session held it")
    finally:
        with pg.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock_all()")


@pytest.mark.postgres
def test_a_lock_lost_mid_write_is_reported(s3_root_uri, pg_dsn, pg):
    root = StorageRoot.from_uri(s3_root_uri, lock_dsn=pg_dsn)
    target = root.path(*SEGMENTS)
    with (
        pytest.raises(StorageLockError, match="lost the month lock .* re-run this write"),
        root.lock(*SEGMENTS),
        pg.cursor() as cur,
    ):
        cur.execute("SELECT pg_terminate_backend(%s)", (_holder_pid(pg, target),))
    with root.lock(*SEGMENTS, timeout_s=5):  # released with the session: nothing stale is left behind
        pass


def test_an_unreachable_lock_database_is_an_error_not_a_downgrade(s3_root_uri, s3_env):
    dsn = "host=127.0.0.1 port=1 dbname=locks user=writer password=hunter2 connect_timeout=2"
    root = StorageRoot.from_uri(s3_root_uri, lock_dsn=dsn)
    assert "hunter2" not in repr(root)
    with pytest.raises(StorageLockError, match=r"writer@127.0.0.1:1/locks") as raised:
        write_served_days(root, "1m", "binance", "BTCUSDT", {MAY[0]: minute_candles(MAY[0])})
    assert "hunter2" not in str(raised.value)
    assert s3_env.keys(s3_root_uri.split("/", 3)[3]) == []  # nothing written without the lock


def test_without_a_lock_database_threads_of_one_process_are_serialised(s3_root_uri, caplog):
    root = StorageRoot.from_uri(s3_root_uri, lock_dsn="")
    assert root.lock_dsn is None
    errors: list[BaseException] = []

    def run(days: list[date]) -> None:
        try:
            for day in days:
                write_served_days(
                    root, "1m", "binance", "BTCUSDT", {day: minute_candles(day, base=float(day.day))}
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="marketdata_assets.storage.root"):
        threads = [threading.Thread(target=run, args=(MAY[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert _stored_days(root) == {d: float(d.day) for d in MAY}
    warnings = [
        r.getMessage() for r in caplog.records if "serialised within this process only" in r.getMessage()
    ]
    assert len(warnings) == 1 and s3_root_uri in warnings[0]


def test_lock_database_from_the_environment(monkeypatch, s3_env):
    for name in (
        LOCK_DSN_ENV,
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    ):
        monkeypatch.delenv(name, raising=False)
    assert lock_dsn_from_env() is None
    pg_env = {
        "DAGSTER_PG_HOST": "db.internal",
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": "it's secret",
        "DAGSTER_PG_DB": "dagster",
    }
    dsn = lock_dsn_from_env(pg_env)
    assert dsn == "host='db.internal' port='5432' dbname='dagster' user='dagster' password='it\\'s secret'"
    assert psycopg2.extensions.parse_dsn(dsn)["password"] == "it's secret"
    assert (
        lock_dsn_from_env({**pg_env, LOCK_DSN_ENV: "postgresql://locks@pg/locks"})
        == "postgresql://locks@pg/locks"
    )
    monkeypatch.setenv(LOCK_DSN_ENV, "postgresql://locks@pg/locks")
    assert StorageRoot.from_uri("s3://bucket/prefix").lock_dsn == "postgresql://locks@pg/locks"
    assert StorageRoot.from_uri("s3://bucket/prefix", lock_dsn="").lock_dsn is None
    assert StorageRoot.from_uri("/tmp/x").lock_dsn is None  # local roots lock with flock
