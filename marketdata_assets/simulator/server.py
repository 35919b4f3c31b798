"""Run the simulator: uvicorn in a background thread on a loopback port.

>>> from marketdata_assets.simulator import SimulatorConfig, SimulatorServer
>>> with SimulatorServer(SimulatorConfig(seed=7)) as sim:          # doctest: +SKIP
...     exchange = make_ccxt_exchange("binance", sim.venue_base_url("binance"))
...     sim.add_fault("binance:http500:count=1")
...     print(sim.stats()["venues"]["binance"]["requests"])

Port 0 (the default) picks a free ephemeral port; :attr:`SimulatorServer.url` tells which.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

from marketdata_assets.universe import VENUES
from marketdata_assets.venues.endpoints import ccxt_api_urls

from .app import SimulatorApp, venues_document
from .config import Outage, SimulatorConfig
from .core import Simulator
from .faults import Fault

START_TIMEOUT_S = 10.0


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.x.y.z`` and ``::1``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SimulatorServer:
    """The simulator on a real socket; a context manager (``with SimulatorServer() as sim: ...``).

    ``host`` must be a loopback address unless ``allow_non_loopback=True``.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_non_loopback: bool = False,
    ) -> None:
        if not allow_non_loopback and not is_loopback(host):
            raise ValueError(f"refusing to bind {host!r}: the simulator only listens on loopback addresses")
        self.config = config or SimulatorConfig()
        self.host = host
        self.requested_port = port
        self.simulator = Simulator(self.config)
        self.app = SimulatorApp(self.simulator)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SimulatorServer:
        if self._thread is not None:
            return self
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host.strip("[]") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host.strip("[]"), self.requested_port))
        self._socket = sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"marketdata-sim:{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the simulator server thread exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simulator did not start within {START_TIMEOUT_S} s")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host.strip("[]") else self.host
        return f"http://{host}:{self.port}"

    def venue_base_url(self, venue: str) -> str:
        """The root a venue's native paths append to, e.g. ``http://127.0.0.1:PORT/binance``."""
        if venue not in VENUES:
            raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}")
        return f"{self.url}/{venue}"

    def ccxt_api_urls(self, venue: str) -> dict[str, str]:
        """``exchange.urls['api'].update(...)`` mapping pointing a stock ccxt client here."""
        return ccxt_api_urls(venue, self.venue_base_url(venue))

    def venues(self) -> dict[str, Any]:
        """What ``GET /__sim/venues`` answers."""
        return venues_document(self.url)

    # -- observability and control ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What ``GET /__sim/stats`` answers."""
        return self.simulator.stats_snapshot()

    def reset_stats(self) -> None:
        self.simulator.stats.reset()

    def reset_limits(self) -> None:
        """Forget every rate-limit window, strike and ban."""
        self.simulator.limiter.reset()

    def add_fault(self, fault: Fault | str | dict[str, Any]) -> Fault:
        """Add a fault (spec string, :class:`Fault` or JSON-style dict); returns it with its id."""
        return self.simulator.faults.add(fault)

    def remove_fault(self, fault_id: int) -> bool:
        return self.simulator.faults.remove(fault_id)

    def clear_faults(self) -> None:
        self.simulator.faults.clear()

    def faults(self) -> list[Fault]:
        return self.simulator.faults.list()

    def add_outage(self, venue: str, start_ms: int, end_ms: int, symbol: str | None = None) -> Outage:
        """A data gap: no candles of ``venue`` (one ``symbol`` or all) in ``[start_ms, end_ms)``."""
        outage = Outage(venue, start_ms, end_ms, symbol)
        self.simulator.add_outage(outage)
        return outage

    def now_ms(self) -> int:
        """The simulator clock."""
        return self.simulator.now_ms()
