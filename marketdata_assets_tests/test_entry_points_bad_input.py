"""Bad input at every entry point: one clear error naming the problem, and nothing changed.

One table per entry point -- ``marketdata backfill``, ``marketdata serve`` and ``marketdata replay``
flags (with the settings file they name), :class:`MarketDataClient` arguments, the live API's path and
query parameters -- feeding bad names, paths (``..``, absolute, NUL), and dates (reversed, year 10000,
not ISO). Each row asserts the exit code / exception, that exactly one error line names the problem,
and that no file, Dagster instance entry or Redis stream appeared.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from marketdata_assets.cli import main as cli
from marketdata_assets.client import MarketDataClient, MarketDataError
from marketdata_assets.live.server import LiveServer
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets_tests.live.conftest import REDIS_URL, ManualClock, at
from marketdata_assets_tests.live.conftest import make_live as make_live  # noqa: F401 - fixtures
from marketdata_assets_tests.live.conftest import redis_prefix as redis_prefix  # noqa: F401
from marketdata_assets_tests.test_client import _fill


def _tree(*roots: Path) -> dict[str, int]:
    """Every file under ``roots`` with its size: the state a refused command must not change."""
    return {
        str(p): p.stat().st_size
        for root in roots
        if root.exists()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A settings file (okx on a closed port: nothing may be fetched), an empty Dagster home, cwd."""
    (tmp_path / "cfg.yaml").write_text(
        textwrap.dedent(
            f"""
            environment: badinput
            storage:
              root: {tmp_path / "data"}
            venues:
              okx:
                symbols: [BTC/USDT]
                start_date: 2024-01-01
                base_url: http://127.0.0.1:9/okx
            live:
              events:
                backend: redis
                redis_url: {REDIS_URL}
                stream_prefix: "badinput:{os.getpid()}:"
            """
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return tmp_path


CFG = ["--config", "cfg.yaml"]
BACKFILL = [
    (["--venue", "kraken"], "unknown venue kraken"),
    (["--venue", "../okx"], "unknown venue ../okx"),
    (["--symbols", "../../etc"], "symbol '../../etc' is not configured for okx"),
    (["--symbols", "BTC/USDT\x00"], "symbol 'BTC/USDT\\x00' is not configured"),
    (["--start", "2024-03-05", "--end", "2024-03-01"], "--start 2024-03-05 is after --end 2024-03-01"),
    (["--start", "10000-01-01"], "argument --start: expected a date YYYY-MM-DD, got '10000-01-01'"),
    (["--end", "2024/03/05"], "argument --end: expected a date YYYY-MM-DD, got '2024/03/05'"),
    (["--start", "20240305"], "argument --start: expected a date YYYY-MM-DD, got '20240305'"),
    (["--start", "2023-12-31", "--end", "2024-01-01"], "okx partitions start on 2024-01-01"),
    (["--venue", ""], "argument --venue/--venues: expected a comma list of names"),
]
SETTINGS_PATHS = [
    ("../missing.yaml", "missing.yaml: config file not found"),
    ("/etc/passwd", "/etc/passwd: expected a mapping at the top level"),
    ("/", "/: config file not found"),
    ("cfg\x00.yaml", "'cfg\\x00.yaml': a settings file path cannot contain a NUL byte"),
]


def _one_error(text: str, prefix: str) -> str:
    """The one line of ``text`` that is an error (argparse adds its usage line before it)."""
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "named"),
    [(CFG + a, n) for a, n in BACKFILL] + [(["--config", p], n) for p, n in SETTINGS_PATHS],
)
def test_marketdata_backfill_refuses_bad_input_with_one_error_and_changes_nothing(
    argv: list[str], named: str, workspace: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    before = _tree(workspace)
    try:
        code = cli.main(["backfill", *argv])
    except SystemExit as exc:  # argparse: usage + one error line, exit 2
        code = exc.code
    err = capfd.readouterr().err
    assert code == 2
    assert named in _one_error(err, "marketdata backfill")
    assert _tree(workspace) == before  # no data, no run, not even the instance's storage


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (CFG + ["--port", "-1"], "argument --port: expected a port 0..65535 (0: any free port), got '-1'"),
        (CFG + ["--port", "70000"], "got '70000'"),
        (CFG + ["--port", "http"], "got 'http'"),
        (CFG + ["--redis-url", "notaurl"], "argument --redis-url: expected redis://HOST[:PORT][/DB]"),
        (["--config", "../missing.yaml"], "missing.yaml: config file not found"),
        (["--config", "cfg\x00.yaml"], "a settings file path cannot contain a NUL byte"),
    ],
)
def test_marketdata_serve_refuses_bad_flags_before_fetching_anything(
    argv: list[str], named: str, workspace: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    before = _tree(workspace)
    try:
        code = cli.main(["serve", *argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capfd.readouterr()
    assert code == 2 and "Filling buffers" not in out  # refused before any venue was asked
    assert named in _one_error(err, "marketdata serve")
    assert _tree(workspace) == before


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["kraken;x", "BTC/USDT"], "invalid exchange 'kraken;x'"),
        (["okx", "../x"], "invalid symbol '../x'"),
        (["okx", "BTC/USDT\x00"], "invalid symbol 'BTC/USDT\\x00'"),
        (["okx", "BTC/USDT", "--start", "2024-03-05", "--end", "2024-03-01"], "reversed range"),
        (["okx", "BTC/USDT", "--start", "10000-01-01", "--end", "10000-01-02"], "cannot parse '10000-01-01'"),
        (["okx", "BTC/USDT", "--start", "03/01/2024", "--end", "2024-03-02"], "cannot parse '03/01/2024'"),
        (["okx", "BTC/USDT", "--start", "now", "--end", "2024-03-02"], "cannot parse 'now'"),
        (["okx", "BTC/USDT", "--speed", "-1"], "argument --speed: expected a speed >= 0"),
        (["okx", "BTC/USDT", "--speed", "nan"], "argument --speed: expected a speed >= 0"),
        (["okx", "BTC/USDT", "--timeframes", "1m,2h"], "unknown timeframe(s) '2h'"),
        (["okx", "BTC/USDT"], "no candles are stored yet"),  # good arguments, nothing served yet
    ],
)
def test_marketdata_replay_refuses_bad_input_and_publishes_nothing(
    argv: list[str], named: str, workspace: Path, redis_prefix: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from marketdata_assets.live.events import RedisStreamPublisher

    if "--start" not in argv:
        argv = [*argv, "--start", "2024-03-01", "--end", "2024-03-02"]
    before = _tree(workspace)
    try:
        code = cli.main(["replay", *argv, *CFG, "--stream-prefix", redis_prefix])
    except SystemExit as exc:
        code = exc.code
    err = capfd.readouterr().err
    assert code == 2
    assert named in _one_error(err, "marketdata replay")
    assert _tree(workspace) == before
    assert (
        list(RedisStreamPublisher(REDIS_URL, prefix=redis_prefix)._redis.scan_iter(f"{redis_prefix}*")) == []
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("../BTCUSDT", "bybit", "1h"), "invalid symbol '../BTCUSDT'"),
        (("/etc/passwd", "bybit", "1h"), "invalid symbol '/etc/passwd'"),
        (("BTCUSDT\x00", "bybit", "1h"), "invalid symbol 'BTCUSDT\\x00'"),
        (("BTCUSDT", "../bybit", "1h"), "invalid exchange '../bybit'"),
        (("BTCUSDT", "bybit", "1h/../1d"), "invalid timeframe '1h/../1d'"),
        (("BTCUSDT", "bybit", "1h", "2023-02-01", "2023-01-01"), "reversed range"),
        (("BTCUSDT", "bybit", "1h", "2023-01-01", "10000-01-01"), "end_date: cannot parse '10000-01-01'"),
        (("BTCUSDT", "bybit", "1h", "01/02/2023", "2023-02-01"), "start_date: cannot parse '01/02/2023'"),
        (("BTCUSDT", "bybit", "1h", "1 Jan 2023", "2023-02-01"), "start_date: cannot parse '1 Jan 2023'"),
        (("BTCUSDT", "bybit", "1h", "now", "2023-02-01"), "start_date: cannot parse 'now'"),
        (("BTCUSDT", "bybit", "1h", "2023-01-01\x00", "2023-02-01"), "start_date: cannot parse"),
        (("BTCUSDT", "bybit", "1h", "2023-1-1", "2023-02-01"), "start_date: cannot parse '2023-1-1'"),
    ],
)
def test_market_data_client_refuses_bad_arguments_with_one_error(
    args: tuple[str, ...], named: str, tmp_path: Path
) -> None:
    _fill(StorageRoot.from_uri(tmp_path))
    before = _tree(tmp_path)
    client = MarketDataClient(mode="backtest", root=str(tmp_path))
    with pytest.raises(MarketDataError) as info:
        client.get_historical_data(*args)
    assert named in str(info.value) and "\n" not in str(info.value)
    assert _tree(tmp_path) == before
    assert len(client.get_historical_data("BTCUSDT", "bybit", "1h", "2023-01-01", "2023-01-02")) == 24


def test_the_live_api_refuses_bad_path_and_query_parameters_and_serves_on(
    make_simulator: Callable[..., SimulatorServer], make_live: Callable[..., LiveServer]
) -> None:
    clock = ManualClock(at("2024-03-10T01:00:30"))
    sim = make_simulator(seed=5, limits_enabled=False, clock=clock)
    live = make_live(sim, clock, {"binance": ["BTC/USDT"]})
    base = f"{live.url}/api/v1/market-data"
    buffer_before = httpx.get(f"{base}/binance/BTCUSDT/buffer/1m").json()["candles"]
    history = f"{base}/binance/BTCUSDT/history?timeframe=1h"
    for path, status, named in [
        ("/binance/BTC%00USDT/buffer/1m", 400, "invalid symbol 'BTC\\x00USDT'"),
        ("/binance/..%2F..%2Fetc/buffer/1m", 404, "no such endpoint: /api/v1/market-data/binance/../../etc"),
        ("/%2Fetc%2Fpasswd/BTCUSDT/buffer/1m", 404, "no such endpoint: /api/v1/market-data//etc/passwd/"),
        ("/binance/BTCUSDT/buffer/1m%00", 400, "invalid timeframe"),
        ("/binance/BTCUSDT/buffer/1m?format=..%2Fx", 400, "invalid format '../x'"),
        (f"{history[len(base) :]}&start=2024-03-10&end=2024-03-09", 400, "reversed range"),
        (
            f"{history[len(base) :]}&start=2024-03-10&end=10000-01-01",
            400,
            "end_date: cannot parse '10000-01-01'",
        ),
        (
            f"{history[len(base) :]}&start=03/10/2024&end=2024-03-11",
            400,
            "start_date: cannot parse '03/10/2024'",
        ),
        (f"{history[len(base) :]}&start=now&end=2024-03-11", 400, "start_date: cannot parse 'now'"),
        (f"{history[len(base) :]}&start=2024-03-10%00&end=2024-03-11", 400, "start_date: cannot parse"),
        (f"{history[len(base) :]}&end=2024-03-11", 400, "query parameter start is required"),
    ]:
        response = httpx.get(base + path)
        assert response.status_code == status, path
        body = response.json()
        assert list(body) == ["error"] and named in body["error"], (path, body)
    assert httpx.get(f"{base}/binance/BTCUSDT/buffer/1m").json()["candles"] == buffer_before
    assert httpx.get(f"{live.url}/health").status_code == 200
