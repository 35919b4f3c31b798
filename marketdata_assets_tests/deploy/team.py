"""Helpers for tests of the team deployment outside Docker: a scratch Postgres database, a DAGSTER_HOME
holding a copy of ``dagster_home/team/dagster.yaml``, and the processes of the compose topology run as
local subprocesses (a ``dagster api grpc`` code server and ``dagster-daemon run``).

The fixtures that use these live in ``conftest.py`` next to this file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from marketdata_assets_tests.deploy.compose import TEAM_INSTANCE_YAML

PG_HOST = "127.0.0.1"
PG_PORT = 5432


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """A missing service fails the test in CI (``CI=true``) and skips it elsewhere, with the reason."""
    if condition:
        return
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str

    def connect(self, dbname: str = "postgres") -> Any:  # psycopg2 connection
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname=dbname, connect_timeout=5
        )


def find_pg_server(host: str = PG_HOST, port: int = PG_PORT) -> tuple[PgServer | None, str]:
    """The local Postgres (trust auth) as ``postgres`` or as the current OS user; else why not."""
    import getpass

    import psycopg2

    errors = []
    for user in dict.fromkeys(["postgres", getpass.getuser()]):
        server = PgServer(host, port, user)
        try:
            server.connect().close()
            return server, ""
        except psycopg2.Error as exc:
            errors.append(f"as {user}: {str(exc).strip()}")
    return None, f"PostgreSQL on {host}:{port} is not usable ({'; '.join(errors)})"


def create_database(server: PgServer, prefix: str = "marketdata_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = server.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return name


def drop_database(server: PgServer, name: str) -> None:
    conn = server.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


@dataclass(frozen=True)
class TeamHome:
    """A DAGSTER_HOME with the team dagster.yaml, and the environment that points it at a database."""

    path: Path
    server: PgServer
    database: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_HOME": str(self.path),
            "DAGSTER_PG_HOST": self.server.host,
            "DAGSTER_PG_PORT": str(self.server.port),
            "DAGSTER_PG_USER": self.server.user,
            "DAGSTER_PG_PASSWORD": "",  # trust auth; set but empty, as the yaml reads it
            "DAGSTER_PG_DB": self.database,
        }

    def sql(self, query: str, params: Iterable[Any] = ()) -> list[tuple]:
        """Rows of a query run directly against the scratch database (not through Dagster)."""
        conn = self.server.connect(self.database)
        try:
            with conn.cursor() as cur:
                cur.execute(query, tuple(params))
                return cur.fetchall()
        finally:
            conn.close()


def make_team_home(path: Path, server: PgServer, database: str) -> TeamHome:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(TEAM_INSTANCE_YAML.read_text())
    return TeamHome(path, server, database)


@contextmanager
def environment(values: Mapping[str, str]):  # noqa: ANN201 - context manager
    """Set environment variables for the block and restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def write_sim_config(path: Path, sim_url: str, data_root: Path) -> Path:
    """Settings for the simulator: the three candle venues (BTC/USDT, ETH/USDT) and BTC DVOL."""
    venues = "".join(
        f"""
          {venue}:
            symbols: [BTC/USDT, ETH/USDT]
            start_date: 2024-03-01
            base_url: {sim_url}/{venue}
            rate_limit_ms: 5
            timeout_ms: 3000
            max_retries: 3
        """
        for venue in ("binance", "bybit", "okx")
    )
    text = f"""
        environment: team-test
        synthetic: true
        storage:
          root: {data_root}
        venues:{venues}
        dvol:
          currencies: [BTC]
          start_date: 2024-03-01
          base_url: {sim_url}/deribit
          rate_limit_ms: 5
          minute_history_days: 100000
    """
    path.write_text(textwrap.dedent(text))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    """A subprocess in its own process group, its output in a file (read it with :meth:`output`)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Service:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its children (run workers) share its process group
            )
        return self

    def output(self, tail: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-tail:]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the process group this service started, SIGKILL after ``timeout``."""
        if self.process is None:
            return
        pgid = self.process.pid  # start_new_session: the group id is the child's pid
        if self.process.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                self.process.wait(10)
        _signal_group(pgid, signal.SIGKILL)  # whatever of the group outlived its leader

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before {what}:\n{self.output()}"
                )
            if ready():
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.name}: no {what} after {timeout:.0f} s:\n{self.output()}")


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def grpc_server_answers(port: int) -> bool:
    from dagster._grpc.client import DagsterGrpcClient

    try:
        DagsterGrpcClient(port=port, host="127.0.0.1").ping("ready?")
        return True
    except Exception:  # noqa: BLE001 - not up yet
        return False


def write_grpc_workspace(path: Path, port: int, location_name: str = "marketdata_assets") -> Path:
    """The shape of workspace.docker.yaml, pointing at a local code server."""
    path.write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {port}\n"
        f"      location_name: {location_name}\n"
    )
    return path


def daemon_heartbeating(instance: Any, since: float, daemon_type: str = "QUEUED_RUN_COORDINATOR") -> bool:
    heartbeat = instance.get_daemon_heartbeats().get(daemon_type)
    return heartbeat is not None and heartbeat.timestamp >= since


def submit_asset_run(
    instance: Any,
    workspace_file: Path,
    asset_keys: Iterable[str],
    tags: Mapping[str, str] | None = None,
    location_name: str = "marketdata_assets",
) -> Any:  # DagsterRun
    """Create a run of ``asset_keys`` from the code location the workspace file names and submit it to
    the instance's run coordinator (queued: the daemon launches it), as the UI's Materialize button does."""
    [run] = submit_asset_runs(instance, workspace_file, [(asset_keys, tags)], location_name)
    return run


def submit_asset_runs(
    instance: Any,
    workspace_file: Path,
    requests: Iterable[tuple[Iterable[str], Mapping[str, str] | None]],
    location_name: str = "marketdata_assets",
) -> list[Any]:  # DagsterRun
    """:func:`submit_asset_run` for several (asset keys, tags) at once, over one workspace connection."""
    from dagster import AssetKey
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    submitted = []
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace_file)])) as process_ctx:
        context = process_ctx.create_request_context()
        location = context.get_code_location(location_name)
        [repo] = location.get_repositories().values()
        job_name = next(j.name for j in repo.get_all_jobs() if j.name.startswith("__ASSET_JOB"))
        for asset_keys, tags in requests:
            keys = [AssetKey.from_user_string(k) for k in asset_keys]
            selector = JobSubsetSelector(
                location_name=location.name,
                repository_name=repo.name,
                job_name=job_name,
                op_selection=None,
                asset_selection=keys,
            )
            remote_job = location.get_job(selector)
            plan = location.get_execution_plan(
                remote_job, {}, step_keys_to_execute=None, known_state=None, instance=instance
            )
            run = instance.create_run(
                job_name=job_name,
                run_id=None,
                run_config={},
                resolved_op_selection=None,
                step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
                op_selection=None,
                status=None,
                root_run_id=None,
                parent_run_id=None,
                tags={**remote_job.tags, **(tags or {})},
                job_snapshot=remote_job.job_snapshot,
                execution_plan_snapshot=plan.execution_plan_snapshot,
                parent_job_snapshot=remote_job.parent_job_snapshot,
                remote_job_origin=remote_job.get_remote_origin(),
                job_code_origin=remote_job.get_python_origin(),
                asset_selection=frozenset(keys),
                asset_check_selection=None,
                asset_graph=repo.asset_graph,
            )
            submitted.append(instance.submit_run(run.run_id, context))
    return submitted


def wait_for_runs(
    instance: Any, run_ids: Iterable[str], timeout: float, services: Iterable[Service] = ()
) -> dict[str, Any]:
    """Wait until every run is finished; fail naming each run that did not succeed, with its errors and
    the output of ``services``."""
    from dagster import DagsterRunStatus

    finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    ids = list(run_ids)
    deadline = time.monotonic() + timeout
    while True:
        runs = {run_id: instance.get_run_by_id(run_id) for run_id in ids}
        if all(run.status in finished for run in runs.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    bad = {run_id: run for run_id, run in runs.items() if run.status != DagsterRunStatus.SUCCESS}
    if bad:
        lines = []
        for run_id, run in bad.items():
            errors = [
                str(e.dagster_event.event_specific_data)[:800]
                for e in instance.all_logs(run_id)
                if e.dagster_event and e.dagster_event.is_failure
            ]
            lines.append(f"run {run_id}: {run.status.value} after {timeout:.0f} s; failures: {errors}")
        logs = "\n".join(f"--- {s.name} output ---\n{s.output()}" for s in services)
        raise AssertionError("\n".join(lines) + "\n" + logs)
    return runs
