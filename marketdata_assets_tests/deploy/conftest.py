"""Fixtures for the team deployment against the real PostgreSQL on 127.0.0.1:5432 (trust auth).

* ``pg_server``: the server (connecting as ``postgres``, else as the OS user). Unreachable: the test
  fails in CI (``CI=true``) and is skipped elsewhere, with the reason.
* ``scratch_database``: a database with a random name for the whole test session, dropped at the end.
* ``postgres_dagster_home``: a temp DAGSTER_HOME with a copy of ``dagster_home/team/dagster.yaml`` and
  the ``DAGSTER_PG_*`` variables pointing at the scratch database (module scope; ``.env``, ``.sql()``).
* ``team_instance``: ``DagsterInstance.get()`` over that home, with the variables set in ``os.environ``
  for the test.
* ``team_sim_config``: a settings file pointing the venues at ``shared_simulator`` (``MARKETDATA_CONFIG``)
  and the data root at a temp dir.
* ``code_server``: ``dagster api grpc -m <code_server_module>`` on a free loopback port, plus a
  ``workspace.yaml`` (shape of ``workspace.docker.yaml``) in the home pointing at it. Override the
  ``code_server_module`` fixture in a test module to serve other definitions.
* ``running_daemon``: ``dagster-daemon run`` over that workspace, ready once its run queue heartbeats.

Together these are the compose topology (code server, daemon, Postgres) as local processes. Runs
submitted with :func:`~marketdata_assets_tests.deploy.team.submit_asset_run` are queued, dequeued by the
daemon within the instance's limits and executed by the code server (default run launcher). The
processes and the database are removed after use; their output is in the failure messages.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketdata_assets_tests.deploy.team import (
    PgServer,
    Service,
    TeamHome,
    create_database,
    daemon_heartbeating,
    drop_database,
    environment,
    find_pg_server,
    free_port,
    grpc_server_answers,
    make_team_home,
    require,
    write_grpc_workspace,
    write_sim_config,
)

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    server, reason = find_pg_server()
    require(server is not None, reason)
    return server


@pytest.fixture(scope="session")
def scratch_database(pg_server: PgServer) -> Iterator[str]:
    name = create_database(pg_server)
    yield name
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def postgres_dagster_home(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer, scratch_database: str
) -> TeamHome:
    return make_team_home(tmp_path_factory.mktemp("team_dagster_home"), pg_server, scratch_database)


@pytest.fixture
def team_instance(postgres_dagster_home: TeamHome) -> Iterator:
    from dagster import DagsterInstance

    with environment(postgres_dagster_home.env):
        instance = DagsterInstance.get()
        try:
            yield instance
        finally:
            instance.dispose()


@pytest.fixture(scope="module")
def team_sim_config(tmp_path_factory: pytest.TempPathFactory, shared_simulator) -> Path:  # noqa: ANN001
    base = tmp_path_factory.mktemp("team_sim")
    return write_sim_config(base / "settings.yaml", shared_simulator.url, base / "data")


@pytest.fixture(scope="module")
def code_server_module() -> str:
    return "marketdata_assets.definitions"


def _process_env(home: TeamHome, config: Path) -> dict[str, str]:
    env = {**os.environ, **home.env, "MARKETDATA_CONFIG": str(config)}
    env.pop("MARKETDATA_ROOT", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def code_server(
    postgres_dagster_home: TeamHome, team_sim_config: Path, code_server_module: str
) -> Iterator[tuple[Service, Path]]:
    """(the code server, the workspace file pointing at it)."""
    port = free_port()
    home = postgres_dagster_home
    service = Service(
        "code server",
        [str(BIN / "dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(port), "-m", code_server_module],
        _process_env(home, team_sim_config),
        home.path / f"code_server_{port}.log",
        cwd=Path(__file__).resolve().parents[2],
    ).start()
    try:
        service.wait_until(lambda: grpc_server_answers(port), 120, "answer on the gRPC port")
        yield service, write_grpc_workspace(home.path / "workspace.yaml", port)
    finally:
        service.stop()


@pytest.fixture(scope="module")
def running_daemon(
    postgres_dagster_home: TeamHome, team_sim_config: Path, code_server: tuple[Service, Path]
) -> Iterator[Service]:
    from dagster import DagsterInstance

    home = postgres_dagster_home
    _, workspace = code_server
    started = time.time()
    service = Service(
        "dagster-daemon",
        [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        _process_env(home, team_sim_config),
        home.path / "daemon.log",
        cwd=home.path,
    ).start()
    try:
        with environment(home.env):
            instance = DagsterInstance.get()
            try:
                service.wait_until(
                    lambda: daemon_heartbeating(instance, started), 120, "run queue heartbeat in Postgres"
                )
            finally:
                instance.dispose()
        yield service
    finally:
        service.stop()
