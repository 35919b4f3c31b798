"""``live``: the live service over real HTTP on loopback, against the simulator on one stepped clock.

The simulator and ``marketdata serve``'s service run in this process (``SimulatorServer`` and
``LiveServer`` on ephemeral loopback ports, one manual clock, as the live end-to-end tests do); the
clients run in another process (``bench/live_clients.py``), so their CPU is not the service's.

* **latency under load**: 8 concurrent clients (asyncio, httpx) GET the buffer (1m, 100 candles,
  JSON) and one month of served history (1h and 1m, JSON) of one series; floor: the same bytes from a
  bare Starlette route on uvicorn (precomputed body: HTTP and transfer only), interleaved round by
  round. p50 and p99 of every request of every round.
* **close to event**: the clock steps one minute, the service polls at once (``poll_delay_s`` 0;
  the shipped default adds 2 s), and the client process timestamps the 1m event's arrival over SSE
  and, when Redis answers on 127.0.0.1:6379, on the Redis stream (``XREAD BLOCK``); from the moment
  the minute closed (the clock step). Floor: one plain request of that minute's candle to the
  simulator (the venue round trip the poll cannot avoid), after each step.
* **memory per series**: the bytes a full series buffer retains (``tracemalloc`` while deep-copying
  it: 6 timeframes x 100 candles, plus the 1m rows of the open bins, ~23 h of them at the time
  measured); floor: the same values packed as 8-byte numbers.
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import threading
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import synthetic
from bench.common import PROJECT_DIR, PYTHON, Row, ScenarioResult, timed_load

NAME = "live"
DEFAULT_REPEATS = 2  # rounds of the load
CONCURRENCY = 8
VENUE, SYMBOL, KEY = "binance", "BTC/USDT", "BTCUSDT"
NOW = datetime(2024, 2, 1, 23, 0, 30, tzinfo=UTC)  # the market's clock at start: 23 h of today fetched
REDIS_URL = "redis://127.0.0.1:6379/15"
FLOOR = "same bytes, bare Starlette"


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self.now_s = start.timestamp()

    def __call__(self) -> float:
        return self.now_s


def build_served(root_dir: Path, first: date, days: int) -> None:
    """Synthetic served 1m and 5m..1d for ``days`` days from ``first`` (the project's own writer)."""
    from marketdata_assets.storage.root import StorageRoot
    from marketdata_assets.storage.served import write_served_days
    from marketdata_assets.transform.resample import resample_all

    root = StorageRoot.from_uri(root_dir)
    by_day = synthetic.by_day(synthetic.minutes(first, days))
    write_served_days(root, "1m", VENUE, KEY, by_day)
    resampled = {day: resample_all(part) for day, part in by_day.items()}
    for timeframe in next(iter(resampled.values())):
        write_served_days(root, timeframe, VENUE, KEY, {d: r[timeframe] for d, r in resampled.items()})


def redis_available() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return True
    except Exception:  # noqa: BLE001 - no Redis here: SSE only
        return False


def settings_file(path: Path, sim_url: str, root: Path, *, redis: bool) -> Path:
    import yaml

    doc = {
        "environment": "bench",
        "synthetic": True,
        "storage": {"root": str(root)},
        "venues": {
            VENUE: {
                "symbols": [SYMBOL],
                "start_date": "2024-01-01",
                "base_url": f"{sim_url}/{VENUE}",
                "rate_limit_ms": 1,
                "shared_rate_limit": {"enabled": False},
            }
        },
        "live": {
            "buffer_length": 100,
            "history_days": 0,
            "poll_delay_s": 0,
            "events": {"backend": "redis" if redis else "memory", "redis_url": REDIS_URL},
        },
    }
    path.write_text(yaml.safe_dump(doc))
    return path


class FloorServer:
    """A bare Starlette app on uvicorn answering each path with a precomputed body."""

    def __init__(self, bodies: dict[str, tuple[bytes, str]]) -> None:
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        def route(body: bytes, media: str) -> Any:
            async def endpoint(request: Any) -> Response:
                return Response(body, media_type=media)

            return endpoint

        self.app = Starlette(routes=[Route(p, route(*b)) for p, b in bodies.items()])

    def __enter__(self) -> FloorServer:
        import uvicorn

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()


def clients(mode: str, job: dict[str, Any]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PYTHON, "-m", "bench.live_clients", mode],
        cwd=PROJECT_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(job) + "\n")
    proc.stdin.close()
    return proc


def _answer(proc: subprocess.Popen, timeout_s: float) -> str:
    """The client process's last stdout line (its JSON answer), once it exited."""
    assert proc.stdout is not None
    out = proc.stdout.read()
    if proc.wait(timeout=timeout_s) != 0:
        raise RuntimeError(f"bench.live_clients exited with {proc.returncode}")
    return out.strip().splitlines()[-1]


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def run(workdir: Path, repeats: int, quick: bool = False) -> ScenarioResult:
    from marketdata_assets.live.server import LiveServer, build_service
    from marketdata_assets.settings import load_settings
    from marketdata_assets.simulator import SimulatorConfig, SimulatorServer

    result = ScenarioResult(NAME, repeats=repeats)
    with timed_load(result):
        days = 3 if quick else 31
        first = NOW.date() - timedelta(days=days)
        t0 = time.perf_counter()
        build_served(workdir / "root", first, days)
        result.notes.append(f"built {days} served days in {time.perf_counter() - t0:.1f} s")
        redis = redis_available()
        if not redis:
            result.notes.append(f"no Redis at {REDIS_URL}: SSE only")
        clock = ManualClock(NOW)
        prefix = f"mdbench:{uuid.uuid4().hex[:8]}:"
        with SimulatorServer(SimulatorConfig(seed=3, limits_enabled=False, clock=clock)) as sim:
            config = settings_file(workdir / "live.yaml", sim.url, workdir / "root", redis=redis)
            service = build_service(load_settings(config, environ={}), clock=clock, stream_prefix=prefix)
            with LiveServer(service, auto_poll=False) as live:
                try:
                    _latency(result, live.url, first, days, repeats, quick)
                    _close_to_event(result, live, clock, sim.url, redis, prefix, quick)
                    _memory(result, service.buffers[(VENUE, KEY)])
                finally:
                    if service.redis is not None:
                        service.redis.delete_prefix()
                        service.redis.close()
    return result


def _latency(result: ScenarioResult, url: str, first: date, days: int, repeats: int, quick: bool) -> None:
    import httpx

    api = f"{url}/api/v1/market-data/{VENUE}/{KEY}"
    span = f"start={first.isoformat()}&end=2024-02-01"
    label = "1 month" if days >= 28 else f"{days} days"
    # case -> (url, requests per client per round, rounds): a month of 1m as JSON (8 MB, ~1 s to
    # render) takes part in the first round only, to keep the scenario well under a minute
    cases = {
        "buffer 1m (100 candles)": (f"{api}/buffer/1m", 4 if quick else 20, repeats),
        f"history 1h, {label}": (f"{api}/history?timeframe=1h&{span}", 2 if quick else 10, repeats),
        f"history 1m, {label}": (f"{api}/history?timeframe=1m&{span}", 1, 1),
    }
    bodies, targets = {}, []
    for i, (case, (case_url, n, rounds)) in enumerate(cases.items()):
        answer = httpx.get(case_url, timeout=60)
        answer.raise_for_status()
        bodies[f"/floor{i}"] = (answer.content, answer.headers["content-type"])
        targets.append({"name": f"project {case}", "url": case_url, "requests": n, "rounds": rounds})
        targets.append(
            {"name": f"floor {case}", "url": None, "requests": n, "rounds": rounds, "path": f"/floor{i}"}
        )
    with FloorServer(bodies) as floor:
        for target in targets:
            if target["url"] is None:
                target["url"] = floor.url + target.pop("path")
        proc = clients("load", {"concurrency": CONCURRENCY, "rounds": repeats, "targets": targets})
        out = _answer(proc, 600)
    measured = json.loads(out)
    result.samples["latency_s"] = measured
    for case in cases:
        proj, base = measured[f"project {case}"], measured[f"floor {case}"]
        size = proj["bytes"]
        for q in (50, 99):
            result.rows.append(
                Row(
                    NAME,
                    f"{case}, {CONCURRENCY} clients",
                    f"p{q} latency ms",
                    "ms",
                    percentile([x * 1000 for x in proj["latencies"]], q),
                    percentile([x * 1000 for x in base["latencies"]], q),
                    FLOOR,
                    f"{len(proj['latencies'])} requests, {size:,} B" if q == 50 else "",
                )
            )
        if proj["errors"] or base["errors"]:
            result.notes.append(f"{case}: {proj['errors']} project / {base['errors']} floor non-200 answers")
        wall = sum(proj["wall_s"])
        result.notes.append(
            f"{case}: {len(proj['latencies']) / wall:.1f} requests/s with {CONCURRENCY} clients"
        )


def _close_to_event(
    result: ScenarioResult, live: Any, clock: ManualClock, sim_url: str, redis: bool, prefix: str, quick: bool
) -> None:
    import httpx

    from marketdata_assets.live.events import series_name

    steps = 3 if quick else 20
    series = series_name(VENUE, KEY, "1m")
    job = {
        "sse": f"{live.url}/api/v1/stream?series={series}",
        "redis_url": REDIS_URL if redis else None,
        "stream": f"{prefix}{series}",
        "count": steps,
    }
    proc = clients("events", job)
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip()
    if ready != "ready":
        raise RuntimeError(f"the event clients did not start: {ready!r}")
    closes: dict[int, float] = {}  # seq of the minute -> wall time it closed (the clock step)
    polled, floor = [], []
    with httpx.Client(timeout=10) as plain:
        for _ in range(steps):
            time.sleep(0.1)  # one event at a time, as once a minute
            minute_open_ms = int(clock.now_s // 60 * 60 * 1000)
            closes[minute_open_ms // 60_000] = time.time()
            clock.now_s += 60  # the minute closes
            t = time.perf_counter()
            events = live.poll()
            polled.append(time.perf_counter() - t)
            if not any(e.timeframe == "1m" for e in events):
                result.notes.append(f"step at {minute_open_ms}: no 1m event")
            t = time.perf_counter()
            answer = plain.get(
                f"{sim_url}/{VENUE}/api/v3/klines",
                params={"symbol": KEY, "interval": "1m", "startTime": minute_open_ms, "limit": 1},
            )
            floor.append(time.perf_counter() - t)
            answer.raise_for_status()
    out = _answer(proc, 90)
    arrivals = json.loads(out)
    result.samples["close_to_event"] = {
        "closes": closes,
        "arrivals": arrivals,
        "poll_s": polled,
        "floor_s": floor,
    }
    channels = {"poll returned (published)": [p * 1000 for p in polled]}
    for name, got in arrivals.items():
        channels[f"{name.upper()} event received"] = [
            (got[str(seq)] - closed) * 1000 for seq, closed in closes.items() if str(seq) in got
        ]
        missing = steps - len(channels[f"{name.upper()} event received"])
        if missing:
            result.notes.append(f"{name}: {missing} of {steps} events not received")
    floor_ms = [f * 1000 for f in floor]
    for channel, values in channels.items():
        for q in (50, 99):
            result.rows.append(
                Row(
                    NAME,
                    f"minute close -> {channel}",
                    f"p{q} ms",
                    "ms",
                    percentile(values, q),
                    percentile(floor_ms, q),
                    "1 venue request (simulator)",
                    f"{len(values)} minutes, poll_delay_s 0" if q == 50 else "",
                )
            )


def _memory(result: ScenarioResult, buffer: Any) -> None:
    candles = sum(len(c) for c in buffer.candles.values())
    minutes = len(buffer._minutes)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    clone = copy.deepcopy(buffer)
    retained = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del clone
    packed = candles * 10 * 8 + minutes * 6 * 8  # 10 fields a candle, 6 columns a minute row
    result.rows.append(
        Row(
            NAME,
            "one series buffer (6 tfs x 100 + open-bin 1m rows)",
            "KB retained",
            "KB",
            retained / 1024,
            packed / 1024,
            "values packed, 8 B each",
            f"{candles} candles + {minutes} minute rows",
        )
    )
