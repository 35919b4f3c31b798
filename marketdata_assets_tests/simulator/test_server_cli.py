"""SimulatorServer lifecycle, the /__sim control endpoints, determinism, and the marketdata-sim CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from marketdata_assets.simulator import SimulatorConfig, SimulatorServer, is_loopback
from marketdata_assets.simulator.cli import main
from marketdata_assets.venues.endpoints import ccxt_api_urls

from .conftest import NOW_S, YESTERDAY_MS, MakeSimulator

PROJECT = Path(__file__).resolve().parents[2]


def test_starts_fast_on_an_ephemeral_loopback_port_and_stops() -> None:
    started = time.perf_counter()
    server = SimulatorServer(SimulatorConfig()).start()
    elapsed = time.perf_counter() - started
    try:
        assert elapsed < 1.0
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert server.venue_base_url("okx") == f"{server.url}/okx"
        assert server.ccxt_api_urls("binance")["public"] == f"{server.url}/binance/api/v3"
        assert httpx.get(f"{server.url}/__sim/health").json() == {"ok": True}
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/__sim/health", timeout=1)
    with pytest.raises(ValueError, match="unknown venue"):
        server.venue_base_url("kraken")


def test_venues_and_stats_endpoints(simulator: SimulatorServer) -> None:
    with httpx.Client(base_url=simulator.url) as client:
        venues = client.get("/__sim/venues").json()
        assert set(venues) == {"binance", "bybit", "okx", "deribit"}
        for venue, entry in venues.items():
            assert entry["base_url"] == simulator.venue_base_url(venue)
            assert entry["ccxt_api_urls"] == ccxt_api_urls(venue, entry["base_url"])
        assert venues["deribit"]["httpx_base_url"] == simulator.venue_base_url("deribit")
        assert venues["binance"]["real_base_url"] == "https://api.binance.com"
        assert simulator.venues() == venues
        client.get("/binance/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 7})
        client.get("/binance/api/v3/klines", params={"symbol": "NOPE", "interval": "1m"})
        client.get("/binance/api/v3/nothing")
        stats = client.get("/__sim/stats").json()["venues"]["binance"]
        assert stats["requests"] == 3 and stats["rows_served"] == 7
        assert stats["requests_by_endpoint"] == {"(unknown)": 1, "klines": 2}
        assert stats["responses_by_status"] == {"200": 1, "400": 1, "404": 1}
        assert stats["limit_breaches"] == 0 and stats["bans_active"] == [] and stats["faults_injected"] == 0
        assert client.post("/__sim/stats/reset").json() == {"ok": True}
        assert client.get("/__sim/stats").json()["venues"]["binance"]["requests"] == 0
        assert client.post("/__sim/limits/reset").json() == {"ok": True}
        assert set(client.get("/").json()["venues"]) == set(venues)


def test_same_seed_same_market_other_seed_other_market(make_simulator: MakeSimulator) -> None:
    def fetch(seed: int) -> list:
        server = make_simulator(seed=seed, limits_enabled=False, clock=lambda: NOW_S)
        with httpx.Client(base_url=server.url) as client:
            return client.get(
                "/okx/api/v5/market/history-candles", params={"instId": "ETH-USDT", "after": YESTERDAY_MS}
            ).json()["data"]

    assert fetch(42) == fetch(42)
    assert fetch(42) != fetch(43)


def test_loopback_only() -> None:
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("::1")
        and is_loopback("localhost")
        and is_loopback("127.5.0.1")
    )
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("example.com")
    with pytest.raises(ValueError, match="loopback"):
        SimulatorServer(host="0.0.0.0")
    SimulatorServer(host="0.0.0.0", allow_non_loopback=True)  # constructed, never started


def test_cli_refuses_non_loopback_and_bad_specs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "refusing to bind '0.0.0.0'" in capsys.readouterr().err
    assert main(["--port", "0", "--fault", "binance:explode"]) == 2
    assert "unknown fault kind" in capsys.readouterr().err
    assert main(["--port", "0", "--replay", "binance:BTCUSDT=x.csv"]) == 2


def test_cli_help_documents_the_fault_spec(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for needle in (
        "VENUE:KIND[:key=value,...]",
        "binance:http500:rate=0.2",
        "--port-file",
        "--no-limits",
        "--limit-scale",
        "--replay",
        "20240101_btcusdt_minute_trade.csv",
        "freqtrade",
        "BTCUSDT-1m-2024-01-01.zip",
    ):
        assert needle in out


def test_cli_runs_in_the_background_with_a_port_file(tmp_path: Path) -> None:
    port_file = tmp_path / "sim.url"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketdata_assets.simulator.cli",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--fault",
            "okx:drop:count=1",
            "--seed",
            "3",
        ],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        url = port_file.read_text().strip()
        assert url.startswith("http://127.0.0.1:")
        faults = httpx.get(f"{url}/__sim/faults").json()["faults"]
        assert [f["spec"] for f in faults] == ["okx:drop:count=1"]
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    assert f"binance  {url}/binance" in output and f"deribit  {url}/deribit" in output
    assert not port_file.exists()


def test_self_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--self-check", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count("1440 rows") == 4 and "self-check passed" in out
