"""``SimulatorConfig.instrument_status``: halted / delisted symbols in each venue's market metadata."""

from __future__ import annotations

import httpx
import pytest

from marketdata_assets.simulator import SimulatorConfig

from .conftest import NOW_S, MakeSimulator

STATUSES = {
    "SOL/USDT": "halted",
    "binance:XRP/USDT": "delisted",
    "bybit:XRP/USDT": "delisted",
    "okx:XRP/USDT": "delisted",
    "okx:DOGE/USDT": "preopen",
}


def _statuses(make_simulator: MakeSimulator) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    sim = make_simulator(seed=3, limits_enabled=False, clock=lambda: NOW_S, instrument_status=dict(STATUSES))
    with httpx.Client(base_url=sim.url, timeout=10.0) as http:
        binance = http.get("/binance/api/v3/exchangeInfo").json()["symbols"]
        bybit = http.get("/bybit/v5/market/instruments-info", params={"category": "spot"}).json()
        okx = http.get("/okx/api/v5/public/instruments", params={"instType": "SPOT"}).json()["data"]
        one = http.get("/binance/api/v3/exchangeInfo", params={"symbol": "XRPUSDT"}).json()["symbols"]
        gone = http.get("/okx/api/v5/public/instruments", params={"instType": "SPOT", "instId": "XRP-USDT"})
        candles = http.get("/okx/api/v5/market/history-candles", params={"instId": "XRP-USDT"}).json()
    assert one[0]["status"] == "BREAK"
    assert gone.json()["code"] == "51001"  # OKX: a delisted instrument is no longer known
    assert candles["code"] == "0" and candles["data"]  # its history is still served
    return (
        {s["symbol"]: s["status"] for s in binance},
        {s["symbol"]: s["status"] for s in bybit["result"]["list"]},
        {s["instId"]: s["state"] for s in okx},
    )


def test_each_venue_serves_the_status_in_its_own_words(make_simulator: MakeSimulator) -> None:
    binance, bybit, okx = _statuses(make_simulator)
    assert binance == {
        "BTCUSDT": "TRADING",
        "ETHUSDT": "TRADING",
        "SOLUSDT": "HALT",
        "XRPUSDT": "BREAK",
        "DOGEUSDT": "TRADING",
    }
    assert bybit == {
        "BTCUSDT": "Trading",
        "ETHUSDT": "Trading",
        "SOLUSDT": "PreLaunch",
        "XRPUSDT": "Closed",
        "DOGEUSDT": "Trading",
    }
    assert okx == {"BTC-USDT": "live", "ETH-USDT": "live", "SOL-USDT": "suspend", "DOGE-USDT": "preopen"}


def test_default_is_trading_everywhere(fixed_sim, http: httpx.Client) -> None:
    assert {s["status"] for s in http.get("/binance/api/v3/exchangeInfo").json()["symbols"]} == {"TRADING"}
    assert fixed_sim.simulator.config.instrument_status_for("okx", "BTC/USDT") == "trading"


def test_a_running_simulator_changes_status(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(seed=3, limits_enabled=False)
    config = sim.simulator.config
    config.set_instrument_status("binance:ETH/USDT", "halted")
    with httpx.Client(base_url=sim.url, timeout=10.0) as http:
        info = http.get("/binance/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"}).json()
        assert info["symbols"][0]["status"] == "HALT"
        config.set_instrument_status("binance:ETH/USDT", None)
        info = http.get("/binance/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"}).json()
        assert info["symbols"][0]["status"] == "TRADING"


def test_ccxt_sees_a_delisted_binance_pair_as_inactive(make_simulator: MakeSimulator, ccxt_lib) -> None:
    from marketdata_assets.venues.endpoints import make_ccxt_exchange

    sim = make_simulator(seed=3, limits_enabled=False, instrument_status={"binance:XRP/USDT": "delisted"})
    exchange = make_ccxt_exchange("binance", sim.venue_base_url("binance"))
    try:
        markets = exchange.load_markets()
    finally:
        exchange.close()
    assert markets["XRP/USDT"]["active"] is False and markets["BTC/USDT"]["active"] is True


@pytest.mark.parametrize(
    ("statuses", "message"),
    [
        ({"kraken:BTC/USDT": "halted"}, "unknown venue 'kraken'"),
        ({"binance:BTCUSDT": "halted"}, "expected VENUE:BASE/QUOTE or BASE/QUOTE"),
        ({"BTC/USDT": "HALT"}, "without a venue the status must be one of trading, halted, delisted"),
        ({"okx:BTC/USDT": ""}, "expected a status string"),
    ],
)
def test_bad_statuses_are_refused(statuses: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(instrument_status=statuses)
