"""kill -9 of the real ``marketdata serve`` process, then a restart: nothing duplicated, nothing missed.

The service runs as a child process (``serve_child``: the real command line, its clock read from a file
the test steps) against an in-process simulator on the same clock and the real Redis. The test lets it
publish, kills it with SIGKILL right after a minute closes (the poll for it may be in flight), keeps it
down while more minutes close, restarts it and checks the Redis streams, the served buffer and the
simulator's own candles against each other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from marketdata_assets.frames import MINUTE_MS
from marketdata_assets.live.events import RedisStreamPublisher, series_name
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.venues.ccxt_venue import CcxtCandleSource
from marketdata_assets_tests.live.conftest import REDIS_URL, at, write_settings

BTC = {"binance": ["BTC/USDT"]}
START_TIMEOUT_S = 60.0


class FileClock:
    """The test's clock: read by the in-process simulator, written to a file for the child service."""

    def __init__(self, path: Path, start_s: float) -> None:
        self.path = path
        self.now_s = start_s
        self._write()

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(self.now_s))
        os.replace(tmp, self.path)  # the child never reads a half-written number


class ServeProcess:
    """``marketdata serve`` in a child process; ``url`` once its buffers are filled and it listens."""

    def __init__(self, clock_file: Path, config: Path, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marketdata_assets_tests.live.serve_child", str(clock_file)]
            + ["serve", "--config", str(config), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            text=True,
        )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in self.proc.stdout:  # "Live service on http://127.0.0.1:PORT  (API ...)"
            if line.startswith("Live service on "):
                return line.split()[3]
            if time.monotonic() > deadline:
                break
        self.proc.kill()
        raise AssertionError(f"marketdata serve did not start: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def serve_processes() -> Iterator[list[ServeProcess]]:
    procs: list[ServeProcess] = []
    yield procs
    for proc in procs:
        proc.stop()


def _buffer(url: str, timeframe: str) -> list[dict]:
    body = httpx.get(f"{url}/api/v1/market-data/binance/BTCUSDT/buffer/{timeframe}", timeout=10).json()
    return body["candles"]


def _wait_settled(url: str, last_open: str, timeout_s: float = 15.0) -> None:
    """Until the service's 1m buffer ends with the candle opening at ``last_open`` (its poll is done)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        candles = _buffer(url, "1m")
        if candles and candles[-1]["timestamp"] == last_open:
            return
        time.sleep(0.1)
    raise AssertionError(f"the service never settled {last_open}; buffer ends {candles[-1]['timestamp']}")


def test_kill_9_of_the_live_service_then_a_restart_loses_and_repeats_nothing(
    make_simulator: Callable[..., SimulatorServer],
    redis_prefix: str,
    serve_processes: list[ServeProcess],
    tmp_path: Path,
) -> None:
    clock = FileClock(tmp_path / "clock", at("2024-03-10T06:00:30").timestamp())
    sim = make_simulator(seed=5, limits_enabled=False, clock=clock)
    config = write_settings(tmp_path / "live.yaml", sim, BTC, redis=True)
    doc = yaml.safe_load(config.read_text())
    doc["live"]["events"]["stream_prefix"] = redis_prefix
    config.write_text(yaml.safe_dump(doc))
    log = tmp_path / "serve.log"

    first = ServeProcess(tmp_path / "clock", config, log)
    serve_processes.append(first)
    _wait_settled(first.url, "2024-03-10T05:59:00+00:00")
    for minute in range(2):  # the polling thread publishes 06:00 and 06:01 as they close
        clock.advance(60)
        _wait_settled(first.url, f"2024-03-10T06:0{minute}:00+00:00")
    redis = RedisStreamPublisher(REDIS_URL, prefix=redis_prefix)
    one = series_name("binance", "BTCUSDT", "1m")
    before_kill = redis.read(one)
    assert before_kill[-1]["timestamp"] == "2024-03-10T06:01:00+00:00"

    clock.advance(60)  # 06:02 closes; SIGKILL before or while the polling thread handles it
    time.sleep(0.3)
    first.kill9()
    assert first.proc.returncode == -signal.SIGKILL
    clock.advance(7 * 60)  # 06:03 .. 06:09 close while nothing runs

    second = ServeProcess(tmp_path / "clock", config, log)
    serve_processes.append(second)
    _wait_settled(second.url, "2024-03-10T06:09:00+00:00")  # the missed minutes, fetched at start
    for minute in (10,):
        clock.advance(60)
        _wait_settled(second.url, f"2024-03-10T06:{minute}:00+00:00")

    # Redis: every stream contiguous (seq = bin index: no gap, no repeat) through the last closed bin
    expected_last = {"1m": "06:10", "5m": "06:05", "15m": "05:45", "1h": "05:00"}
    for tf, last in expected_last.items():
        entries = redis.read(series_name("binance", "BTCUSDT", tf))
        seqs = [e["seq"] for e in entries]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), tf
        assert entries[-1]["timestamp"] == f"2024-03-10T{last}:00+00:00", tf
    stream = redis.read(one)
    assert stream[: len(before_kill)] == before_kill  # what was published before the kill is unchanged

    # served buffer == Redis stream == the venue's candles, minute for minute
    buffer = {c["timestamp"]: c for c in _buffer(second.url, "1m")}
    by_time = {e["timestamp"]: e for e in stream}
    fields = ("open", "high", "low", "close", "volume")
    assert set(buffer) <= set(by_time)
    for ts, candle in buffer.items():
        assert [candle[f] for f in fields] == [by_time[ts][f] for f in fields], ts
    start_ms = int(at("2024-03-10T04:31:00").timestamp() * 1000)
    with CcxtCandleSource("binance", sim.venue_base_url("binance"), clock=clock, shared_limiter=False) as src:
        venue = src.fetch_range("BTC/USDT", start_ms, start_ms + 100 * MINUTE_MS).frame
    assert len(venue) == 100 and list(buffer) == [t.isoformat() for t in venue["timestamp"]]
    for row, candle in zip(venue.itertuples(), buffer.values(), strict=True):
        assert [getattr(row, f) for f in fields] == [candle[f] for f in fields]
