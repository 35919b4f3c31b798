"""Run the live service: build it from the settings, serve the API on uvicorn, poll in a thread.

>>> with LiveServer(build_service(load_settings())) as live:      # doctest: +SKIP
...     print(live.url)                                          # http://127.0.0.1:PORT

:class:`LiveServer` starts the service (buffers filled), binds a loopback port (0: ephemeral), runs
uvicorn in a background thread and, with ``auto_poll=True``, a thread that polls shortly after each
minute closes. Tests pass ``auto_poll=False`` and a manual clock, and call :meth:`LiveServer.poll`.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from marketdata_assets.live.api import build_app
from marketdata_assets.live.events import RedisStreamPublisher
from marketdata_assets.live.service import Clock, LiveService, SeriesSpec

START_TIMEOUT_S = 10.0


def build_service(
    settings: Any,
    *,
    clock: Clock = time.time,
    root: Any = None,
    stream_prefix: str | None = None,
    redis_url: str | None = None,
) -> LiveService:
    """A :class:`LiveService` as ``settings`` (a ``LoadedSettings``) say: the ``live:`` block's series,
    each venue's source with its base URL, pacing, timeout and shared budget, the served root, and a
    Redis publisher when ``live.events.backend`` is ``redis`` (``stream_prefix`` overrides the prefix)."""
    from marketdata_assets.storage.root import StorageRoot
    from marketdata_assets.venues.limiter import SharedLimiter
    from marketdata_assets.venues.registry import get_source

    live = settings.live
    series = [SeriesSpec(venue, symbol) for venue, symbol in settings.live_universe]
    sources = {}
    for venue in dict.fromkeys(s.exchange for s in series):
        cfg = settings.venues[venue]
        limits = cfg.shared_rate_limit
        limiter: Any = False
        if limits.enabled:
            limiter = SharedLimiter.for_venue(
                venue, cfg.base_url, limit=limits.limit, window_s=limits.window_s, safety=limits.safety
            )
        sources[venue] = get_source(
            venue,
            cfg.base_url,
            rate_limit_ms=cfg.rate_limit_ms,
            timeout_ms=cfg.timeout_ms,
            max_retries=live.max_retries,
            shared_limiter=limiter,
            clock=clock,
        )
    redis = None
    if live.events.backend == "redis" or redis_url:
        redis = RedisStreamPublisher(
            redis_url or live.events.redis_url,
            prefix=stream_prefix or live.events.stream_prefix,
            maxlen=live.events.stream_maxlen,
        )
    return LiveService(
        series,
        sources,
        root=root if root is not None else StorageRoot.from_uri(settings.storage_root),
        clock=clock,
        buffer_length=live.buffer_length,
        history_days=live.history_days,
        poll_delay_s=live.poll_delay_s,
        redis=redis,
    )


class LiveServer:
    """The service on a real socket, a context manager; ``url`` once started."""

    def __init__(
        self, service: LiveService, *, host: str = "127.0.0.1", port: int = 0, auto_poll: bool = True
    ) -> None:
        self.service = service
        self.host = host
        self.requested_port = port
        self.auto_poll = auto_poll
        self.app = build_app(service)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._socket: socket.socket | None = None
        self._port: int | None = None

    def start(self) -> LiveServer:
        import uvicorn

        if not self.service.started:
            self.service.start()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self._socket = sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"marketdata-live:{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the live service's HTTP server did not start")
            time.sleep(0.005)
        if self.auto_poll:
            self._poller = threading.Thread(
                target=self.service.run, args=(self._stop,), name="marketdata-live-poll", daemon=True
            )
            self._poller.start()
        return self

    def poll(self) -> list:
        """One poll now (tests: after moving the clock)."""
        return self.service.poll_once()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        for thread in (self._poller, self._thread):
            if thread is not None:
                thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._poller = self._socket = None

    def serve_forever(self) -> None:
        """Block until interrupted (``marketdata serve``)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=1)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the live service is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
