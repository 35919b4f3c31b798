"""A network cut between the code and Postgres in the middle of a backfill (issue #14).

A small TCP proxy on an ephemeral loopback port sits between the team instance (Postgres run and
event storage) and the real server; the test cuts it (every open connection reset, new ones refused)
while a ranged raw backfill is fetching, for long enough that the step ends and must write its
events inside the cut, restores it, and checks the end state through a direct connection: the run
completed (dagster-postgres retried its connections), every day whole, the run SUCCESS and nothing
left STARTED, and the next backfill of the same range completes changing nothing.

Measured while writing this test, not asserted here (it takes ~50 s): a cut that lasts fails the
run's process with ``DagsterPostgresException: too many retries for DB connection`` and leaves the
run STARTED in Postgres (its failure cannot be recorded without the database) -- see
docs/RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from marketdata_assets.definitions import build_definitions
from marketdata_assets.settings import load_settings
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.storage.raw import read_raw_candles
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets_tests.deploy.team import (
    PgServer,
    TeamHome,
    make_team_home,
    write_sim_config,
)

pytestmark = pytest.mark.postgres


class CuttableProxy:
    """TCP proxy 127.0.0.1:<ephemeral> -> upstream; :meth:`cut` resets every connection and refuses
    new ones until :meth:`restore`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self.cut_at: float | None = None
        self.refused = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self.cut_at is not None:
                    self.refused += 1
                    _reset(client)
                    continue
                server = socket.create_connection(self.upstream)
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            self.cut_at = time.monotonic()
            for sock in self._open:
                _reset(sock)
            self._open.clear()

    def restore(self) -> None:
        with self._lock:
            self.cut_at = None

    def close(self) -> None:
        self._stop = True
        self.cut()
        self.listener.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST (as a dropped route or a killed NAT entry looks to the peer)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    except OSError:
        pass


@pytest.fixture
def proxy(pg_server: PgServer) -> Iterator[CuttableProxy]:
    proxy = CuttableProxy((pg_server.host, pg_server.port))
    yield proxy
    proxy.close()


KEY = AssetKey(["binance", "ohlcv_1m_raw"])
CUT_S = 2.0  # cut this long after the first refused connection; dagster-postgres retries ~50 s
DAYS = [date(2024, 3, d) for d in range(1, 4)]


def _child(settings_path: str) -> None:
    """The backfill, in a process of its own (``python -c``): prints one JSON line with its end state.

    A process, not a thread of the test: a run blocked on the cut connection cannot outlive the test
    (it is killed), and its Dagster log handlers never share locks with the next test's logging setup.
    """
    import json
    import sys

    instance = DagsterInstance.get()
    try:
        result = _backfill(load_settings(settings_path, environ={}), instance)
        failures = [e.message for e in result.all_events if e.is_failure]
        print(json.dumps({"success": result.success, "run_id": result.run_id, "failures": failures}))
    finally:
        with contextlib.suppress(Exception):
            instance.dispose()
    sys.stdout.flush()


def _start(settings_path: Path, env: dict[str, str]) -> subprocess.Popen:
    code = f"from {__name__} import _child; _child({str(settings_path)!r})"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen, timeout: float) -> dict:
    import json

    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        raise AssertionError(
            f"the run hung on the cut connection for {timeout:.0f} s:\n{err[-2000:]}"
        ) from None
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert child.returncode == 0 and lines, f"backfill process exited {child.returncode}:\n{err[-2000:]}"
    return json.loads(lines[-1])


def _backfill(settings, instance: DagsterInstance) -> object:  # noqa: ANN001
    defs = build_definitions(settings)
    asset = next(a for a in defs.assets if KEY in getattr(a, "keys", ()))
    return materialize(
        [asset],
        selection=[KEY],
        resources=defs.resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{DAYS[0]}|BTCUSDT",
            "dagster/asset_partition_range_end": f"{DAYS[-1]}|BTCUSDT",
        },
        raise_on_error=False,
    )


def _step_started(home: TeamHome) -> bool:
    import psycopg2

    try:
        return bool(home.sql("SELECT 1 FROM event_logs WHERE dagster_event_type = 'STEP_START' LIMIT 1"))
    except psycopg2.errors.UndefinedTable:  # the instance has not created its tables yet
        return False


def test_a_network_cut_to_postgres_mid_backfill_is_retried_and_the_run_completes_losing_nothing(
    pg_server: PgServer,
    scratch_database: str,
    proxy: CuttableProxy,
    make_simulator: Callable[..., SimulatorServer],
    tmp_path: Path,
) -> None:
    direct = make_team_home(tmp_path / "direct", pg_server, scratch_database)  # SQL around the proxy
    home = make_team_home(
        tmp_path / "home", PgServer(pg_server.host, proxy.port, pg_server.user), scratch_database
    )
    sim = make_simulator(seed=9, limits_enabled=False, faults=["binance:slow:endpoint=klines,delay=0.4"])
    settings_path = write_sim_config(tmp_path / "settings.yaml", sim.url, tmp_path / "data")
    root = StorageRoot.from_uri(load_settings(settings_path, environ={}).storage_root)

    child = _start(settings_path, home.env)
    deadline = time.monotonic() + 120
    while not _step_started(direct):
        assert time.monotonic() < deadline and child.poll() is None, child.poll()
        time.sleep(0.05)
    time.sleep(0.5)  # the step is fetching its first pages (6 pages x 0.4 s)
    proxy.cut()  # every connection reset, new ones refused until the run has tried to write
    bite = time.monotonic() + 15
    while proxy.refused == 0 and child.poll() is None and time.monotonic() < bite:
        time.sleep(0.05)
    time.sleep(CUT_S)  # and for a while after: its connection retries keep failing
    proxy.restore()
    result = _finish(child, timeout=120)
    assert result["success"], result["failures"]  # retried, completed
    assert proxy.refused >= 1  # the cut bit: the run's writes were refused while it lasted

    # the end state, read around the proxy: every day whole, the run SUCCESS, nothing left STARTED
    assert {d: len(read_raw_candles(root, "binance", "BTCUSDT", d)) for d in DAYS} == dict.fromkeys(
        DAYS, 1440
    )
    assert direct.sql("SELECT status FROM runs WHERE run_id = %s", [result["run_id"]]) == [("SUCCESS",)]
    assert direct.sql("SELECT run_id FROM runs WHERE status IN ('STARTED', 'STARTING')") == []
    partitions = direct.sql(
        "SELECT DISTINCT partition FROM event_logs WHERE run_id = %s "
        "AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY partition",
        [result["run_id"]],
    )
    assert partitions == [(f"{d}|BTCUSDT",) for d in DAYS]

    # and the next backfill of the same range completes over the restored link, changing nothing
    before = {d: read_raw_candles(root, "binance", "BTCUSDT", d) for d in DAYS}
    again = _finish(_start(settings_path, home.env), timeout=120)
    assert again["success"], again["failures"]
    for d in DAYS:
        assert read_raw_candles(root, "binance", "BTCUSDT", d).equals(before[d])
