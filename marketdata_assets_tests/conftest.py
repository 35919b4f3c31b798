"""Top-level pytest fixtures: the local exchange simulator on an ephemeral loopback port.

* ``simulator``: a fresh server per test, rate limits ON with the venues' real numbers.
* ``make_simulator(**config)``: a factory for servers with a custom
  :class:`~marketdata_assets.simulator.SimulatorConfig` (``seed``, ``limit_scale``, ``clock``, ``faults``,
  ``replay``...); every server it makes is stopped after the test.
* ``shared_simulator``: one server for the whole session, for read-only tests (limits OFF so the
  order tests run in cannot trip a limit; do not add faults to it).

Each server exposes ``.url``, ``.venue_base_url(venue)``, ``.stats()`` and the fault API.

Every test also gets its own shared rate-limit state directory (``MARKETDATA_STATE_DIR``, inherited
by the processes it starts): the sources book every request in a machine-wide state file
(``venues/limiter.py``), and a ban recorded by one test against a simulator port must not outlive the
test and block a later simulator that happens to get the same ephemeral port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from marketdata_assets.simulator import SimulatorConfig, SimulatorServer
from marketdata_assets.venues.limiter import STATE_DIR_ENV
from marketdata_assets_tests.faults import FAULT_TESTS, T

# Folders whose tests run real Dagster runs, a Postgres instance or an S3 server: the integration tests.
# Everything else tests the core directly (no Dagster) and runs in seconds: `make test-core`.
INTEGRATION_FOLDERS = ("dagster", "deploy", "objectstore")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.nodeid.split("[", 1)[0].removeprefix(T) in FAULT_TESTS:
            item.add_marker(pytest.mark.faults)  # the fault matrix: marketdata_assets_tests/faults.py
        parts = Path(str(item.fspath)).relative_to(here).parts
        if parts[0] in INTEGRATION_FOLDERS or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.integration)
    # Longest first: the suite runs on pytest-xdist workers (pyproject addopts), which take tests in
    # this order; the end-to-end tests (subprocesses, daemons: 10-90 s each) start at once and the
    # thousand quick ones fill in around them, instead of one long test starting last and running alone.
    # A stable sort: within each tier, files and tests keep their order.
    items.sort(key=_run_tier)


def _run_tier(item: pytest.Item) -> int:
    if item.get_closest_marker("e2e"):
        return 0
    return 1 if item.get_closest_marker("integration") else 2


@pytest.fixture(autouse=True)
def no_leftover_defs_state_storage() -> Iterator[None]:
    """Loading Definitions reads Dagster's "current" defs-state storage (a context variable that an
    instance sets while it is entered). Start every test without one, so a test never depends on what
    an earlier test's instance, closed since, left there ("undefined DagsterInstance weakref")."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture(autouse=True)
def isolated_limiter_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path_factory.mktemp("limiter-state")
    monkeypatch.setenv(STATE_DIR_ENV, str(state))
    return state


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., SimulatorServer]]:
    servers: list[SimulatorServer] = []

    def factory(**config: Any) -> SimulatorServer:
        server = SimulatorServer(SimulatorConfig(**config)).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def simulator(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    return make_simulator()


@pytest.fixture(scope="session")
def shared_simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorConfig(seed=0, limits_enabled=False)) as server:
        yield server
