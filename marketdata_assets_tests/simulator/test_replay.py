"""Replay of recorded candles and DVOL: exactly the recorded rows, nothing invented."""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
import pandas as pd
import pytest

from marketdata_assets.frames import DAY_MS, MINUTE_MS
from marketdata_assets.simulator import ReplaySource, SimulatorServer

from .conftest import MakeSimulator

OHLCV = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "ohlcv"
ARCHIVES = [OHLCV / "binance_spot_ADABTC_1m_2021-11-27.csv", OHLCV / "binance_spot_ADABTC_1m_2021-11-28.csv"]
FIRST_MS = 1637971200000  # 2021-11-27 00:00 UTC
FILLER_MS = 1638052920000  # the zero-volume minute of 2021-11-27


def archive_rows() -> list[list[object]]:
    rows = []
    for path in ARCHIVES:
        with path.open(newline="") as handle:
            for raw in csv.reader(handle):
                rows.append([int(raw[0]), *raw[1:6], int(raw[6]), raw[7], int(raw[8]), *raw[9:12]])
    return rows


@pytest.fixture(scope="module")
def replay_sim() -> SimulatorServer:
    replay = [f"{venue}:ADA/BTC={path}" for venue in ("binance", "bybit", "okx") for path in ARCHIVES]
    replay.append(f"okx:XRP/ETH={OHLCV / 'XRP_ETH_1m.feather'}")
    from marketdata_assets.simulator import SimulatorConfig

    with SimulatorServer(SimulatorConfig(limits_enabled=False, replay=replay)) as server:
        yield server


def test_binance_serves_the_archive_rows_byte_for_byte(replay_sim: SimulatorServer) -> None:
    served: list[list[object]] = []
    with httpx.Client(base_url=replay_sim.url) as client:
        cursor = 0
        while True:
            page = client.get(
                "/binance/api/v3/klines",
                params={"symbol": "ADABTC", "interval": "1m", "startTime": cursor, "limit": 1000},
            ).json()
            if not page:
                break
            served.extend(page)
            cursor = page[-1][0] + MINUTE_MS
        before = client.get(
            "/binance/api/v3/klines", params={"symbol": "ADABTC", "interval": "1m", "endTime": FIRST_MS - 1}
        ).json()
    assert served == archive_rows()
    assert len(served) == 2880 and before == []
    filler = next(r for r in served if r[0] == FILLER_MS)
    assert filler[5] == "0.00000000" and filler[8] == 0 and filler[1] == filler[2] == filler[3] == filler[4]


def test_bybit_and_okx_serve_the_same_rows_in_their_formats(replay_sim: SimulatorServer) -> None:
    recorded = {r[0]: r for r in archive_rows()}
    with httpx.Client(base_url=replay_sim.url) as client:
        bybit = client.get(
            "/bybit/v5/market/kline",
            params={
                "category": "spot",
                "symbol": "ADABTC",
                "interval": "1",
                "start": FIRST_MS - DAY_MS,
                "end": FIRST_MS + 999 * MINUTE_MS,
                "limit": 1000,
            },
        ).json()["result"]["list"]
        okx = client.get(
            "/okx/api/v5/market/history-candles",
            params={"instId": "ADA-BTC", "after": FILLER_MS + 2 * MINUTE_MS, "limit": 3},
        ).json()["data"]
    assert [int(r[0]) for r in bybit] == sorted(t for t in recorded if t < FIRST_MS + 1000 * MINUTE_MS)[::-1]
    for row in bybit:
        real = recorded[int(row[0])]
        assert [float(v) for v in row[1:6]] == [float(v) for v in real[1:6]]
        assert float(row[6]) == pytest.approx(float(real[7]))
    assert [int(r[0]) for r in okx] == [FILLER_MS + MINUTE_MS, FILLER_MS, FILLER_MS - MINUTE_MS]
    assert okx[1][5] == "0" and okx[1][8] == "1"


def test_replayed_symbol_is_listed(replay_sim: SimulatorServer) -> None:
    with httpx.Client(base_url=replay_sim.url) as client:
        info = client.get("/binance/api/v3/exchangeInfo", params={"symbol": "ADABTC"}).json()["symbols"][0]
        instruments = client.get("/okx/api/v5/public/instruments", params={"instType": "SPOT"}).json()["data"]
    assert info["baseAsset"] == "ADA" and info["quoteAsset"] == "BTC"
    assert next(f for f in info["filters"] if f["filterType"] == "PRICE_FILTER")["tickSize"] == "0.00000001"
    assert {"ADA-BTC", "XRP-ETH", "BTC-USDT"} <= {i["instId"] for i in instruments}


def test_missing_minutes_stay_missing(replay_sim: SimulatorServer) -> None:
    frame = pd.read_feather(OHLCV / "XRP_ETH_1m.feather")
    expected = (frame["date"].astype("int64") // 1_000_000).tolist()
    served: list[int] = []
    with httpx.Client(base_url=replay_sim.url) as client:
        after = expected[-1] + MINUTE_MS
        while True:
            page = client.get(
                "/okx/api/v5/market/history-candles", params={"instId": "XRP-ETH", "after": after}
            ).json()["data"]
            if not page:
                break
            served = [int(r[0]) for r in reversed(page)] + served
            after = int(page[-1][0])
    assert served == expected and len(served) == 2469


def test_header_csv_parquet_and_dvol_replay(tmp_path: Path, make_simulator: MakeSimulator) -> None:
    base = 1700000000000 - 1700000000000 % DAY_MS
    candles = pd.DataFrame(
        {
            "timestamp": [base, base + MINUTE_MS, base + 5 * MINUTE_MS],
            "open": [1.5, 1.25, 1.125],
            "high": [1.75, 1.5, 1.25],
            "low": [1.25, 1.0, 1.0],
            "close": [1.25, 1.125, 1.0],
            "volume": [10.5, 0.0, 3.25],
        }
    )
    candles.to_parquet(tmp_path / "c.parquet")
    candles.to_csv(tmp_path / "c.csv", index=False)
    hours = [base + i * 3_600_000 for i in range(30)]
    pd.DataFrame({"timestamp": hours, "open": 50.0, "high": 51.0, "low": 49.0, "close": 50.5}).to_csv(
        tmp_path / "d.csv", index=False
    )
    server = make_simulator(
        limits_enabled=False,
        replay=[
            f"bybit:FOO/USDT={tmp_path / 'c.parquet'}",
            ReplaySource("okx", "FOO/USDT", tmp_path / "c.csv"),
            f"deribit:SOL={tmp_path / 'd.csv'}",
        ],
    )
    with httpx.Client(base_url=server.url) as client:
        bybit = client.get(
            "/bybit/v5/market/kline",
            params={"category": "spot", "symbol": "FOOUSDT", "interval": "1", "start": 0, "limit": 1000},
        ).json()["result"]["list"]
        okx = client.get("/okx/api/v5/market/history-candles", params={"instId": "FOO-USDT"}).json()["data"]
        hourly = client.get(
            "/deribit/api/v2/public/get_volatility_index_data",
            params={
                "currency": "SOL",
                "start_timestamp": 0,
                "end_timestamp": base + 10 * DAY_MS,
                "resolution": "3600",
            },
        ).json()["result"]["data"]
        daily = client.get(
            "/deribit/api/v2/public/get_volatility_index_data",
            params={
                "currency": "SOL",
                "start_timestamp": 0,
                "end_timestamp": base + 10 * DAY_MS,
                "resolution": "1D",
            },
        ).json()["result"]["data"]
    assert bybit == [
        [str(base + 5 * MINUTE_MS), "1.125", "1.25", "1", "1", "3.25", bybit[0][6]],
        [str(base + MINUTE_MS), "1.25", "1.5", "1", "1.125", "0", bybit[1][6]],
        [str(base), "1.5", "1.75", "1.25", "1.25", "10.5", bybit[2][6]],
    ]
    assert [r[:6] for r in okx] == [r[:6] for r in bybit]
    assert [r[0] for r in hourly] == hours
    assert daily == [[base, 50.0, 51.0, 49.0, 50.5], [base + DAY_MS, 50.0, 51.0, 49.0, 50.5]]


def test_bad_replay_specs(tmp_path: Path) -> None:
    for bad in ("binance:BTCUSDT=x.csv", "kraken:BTC/USDT=x.csv", "binance=x.csv", "binance:BTC/USDT"):
        with pytest.raises(ValueError):
            ReplaySource.parse(bad)
    (tmp_path / "bad.csv").write_text("when,price\n1,2\n")
    from marketdata_assets.simulator import Simulator, SimulatorConfig

    with pytest.raises(ValueError, match="lacks column"):
        Simulator(SimulatorConfig(replay=[f"binance:BAD/USDT={tmp_path / 'bad.csv'}"]))
