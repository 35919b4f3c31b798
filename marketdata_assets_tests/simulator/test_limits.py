"""Per-IP rate limits, breach answers, bans and their expiry, and ``limits_enabled=False``."""

from __future__ import annotations

import time
from types import ModuleType

import httpx
import pytest

from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.venues.endpoints import make_ccxt_exchange

from .conftest import MakeSimulator

KLINES = ("/binance/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1})
BYBIT_TIME = "/bybit/v5/market/time"
OKX_HISTORY = ("/okx/api/v5/market/history-candles", {"instId": "BTC-USDT", "limit": 1})
OKX_CANDLES = ("/okx/api/v5/market/candles", {"instId": "BTC-USDT", "limit": 1})
DVOL = (
    "/deribit/api/v2/public/get_volatility_index_data",
    {"currency": "BTC", "start_timestamp": 0, "end_timestamp": 1, "resolution": "60"},
)


def hit(client: httpx.Client, target: tuple[str, dict]) -> httpx.Response:
    path, params = target
    return client.get(path, params=params)


def test_real_allowances(simulator: SimulatorServer) -> None:
    with httpx.Client(base_url=simulator.url) as client:
        info = ("/binance/api/v3/exchangeInfo", {"symbol": "BTCUSDT"})  # weight 20: 300 fit in 6000
        assert all(hit(client, info).status_code == 200 for _ in range(300))
        over = hit(client, info)
        assert over.status_code == 429
        assert "current limit is 6000 request weight per 1 MINUTE" in over.json()["msg"]
        assert all(client.get(BYBIT_TIME).json()["retCode"] == 0 for _ in range(600))
        assert client.get(BYBIT_TIME).json()["retCode"] == 10006
        assert all(hit(client, OKX_HISTORY).status_code == 200 for _ in range(20))
        assert hit(client, OKX_HISTORY).status_code == 429
        assert all(hit(client, OKX_CANDLES).status_code == 200 for _ in range(40))
        assert hit(client, OKX_CANDLES).status_code == 429
        assert all(hit(client, DVOL).status_code == 200 for _ in range(100))  # the 50 000-credit burst
        # refilled at 20 requests/s: a client firing back to back soon runs dry
        assert any(hit(client, DVOL).status_code == 429 for _ in range(100))
    breaches = {v: s["limit_breaches_by_kind"] for v, s in simulator.stats()["venues"].items()}
    assert breaches == {
        "binance": {"429": 1},
        "bybit": {"10006": 1},
        "okx": {"50011": 2},
        "deribit": {"10028": 1},
    }


def test_binance_429_then_418_ban_escalating_and_expiring(make_simulator: MakeSimulator) -> None:
    server = make_simulator(limit_scale=0.005, window_scale=0.01, ban_scale=0.0025, ban_after_strikes=1)
    with httpx.Client(base_url=server.url) as client:
        ok = [hit(client, KLINES) for _ in range(15)]  # 15 x weight 2 = the scaled 30
        assert [r.status_code for r in ok] == [200] * 15
        assert ok[-1].headers["x-mbx-used-weight-1m"] == "30"
        told = hit(client, KLINES)
        assert told.status_code == 429 and told.json() == {
            "code": -1003,
            "msg": "Too much request weight used; current limit is 30 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
        }
        assert int(told.headers["Retry-After"]) >= 1
        assert hit(client, KLINES).status_code == 429  # one strike tolerated
        banned = hit(client, KLINES)
        assert banned.status_code == 418 and int(banned.headers["Retry-After"]) >= 1
        assert banned.json()["code"] == -1003
        assert banned.json()["msg"].startswith("Way too many requests; IP(127.0.0.1) banned until ")
        first_ban = server.stats()["venues"]["binance"]["bans_active"]
        assert (
            len(first_ban) == 1 and first_ban[0]["ip"] == "127.0.0.1" and first_ban[0]["seconds_left"] <= 0.3
        )
        assert hit(client, KLINES).status_code == 418  # still banned
        time.sleep(0.65)  # ban (0.3 s) and window (0.6 s) over
        assert server.stats()["venues"]["binance"]["bans_active"] == []
        assert hit(client, KLINES).status_code == 200
        for _ in range(20):
            if hit(client, KLINES).status_code == 429:
                break
        hit(client, KLINES)
        assert hit(client, KLINES).status_code == 418
        second_ban = server.stats()["venues"]["binance"]["bans_active"][0]
        assert second_ban["bans"] == 2 and second_ban["seconds_left"] > 0.3  # doubled: 0.6 s
    breaches = server.stats()["venues"]["binance"]["limit_breaches_by_kind"]
    assert breaches["429"] >= 3 and breaches["418"] >= 3


def test_bybit_10006_with_http_200_then_403_ban(make_simulator: MakeSimulator) -> None:
    server = make_simulator(limit_scale=0.02, window_scale=0.1, ban_scale=0.001, ban_after_strikes=2)
    with httpx.Client(base_url=server.url) as client:
        assert all(client.get(BYBIT_TIME).json()["retCode"] == 0 for _ in range(12))
        for _ in range(3):
            told = client.get(BYBIT_TIME)
            assert told.status_code == 200
            body = told.json()
            assert (
                body["retCode"] == 10006 and body["retMsg"] == "Too many visits. Exceeded the API Rate Limit."
            )
            assert body["result"] == {} and body["retExtInfo"] == {} and isinstance(body["time"], int)
        banned = client.get(BYBIT_TIME)
        assert banned.status_code == 403 and banned.text == "access too frequent"
        assert server.stats()["venues"]["bybit"]["bans_active"][0]["ip"] == "127.0.0.1"
        time.sleep(0.65)
        assert client.get(BYBIT_TIME).json()["retCode"] == 0
    assert server.stats()["venues"]["bybit"]["limit_breaches_by_kind"] == {"10006": 3, "403": 1}


def test_okx_50011_per_endpoint_and_recovery(make_simulator: MakeSimulator) -> None:
    server = make_simulator(limit_scale=0.1, window_scale=0.2)
    with httpx.Client(base_url=server.url) as client:
        assert [hit(client, OKX_HISTORY).status_code for _ in range(3)] == [200, 200, 429]
        over = hit(client, OKX_HISTORY)
        assert over.status_code == 429 and over.json() == {"msg": "Too Many Requests", "code": "50011"}
        assert over.text == '{"msg":"Too Many Requests","code":"50011"}'
        assert hit(client, OKX_CANDLES).status_code == 200  # its own allowance
        time.sleep(0.45)
        assert hit(client, OKX_HISTORY).status_code == 200
    assert server.stats()["venues"]["okx"]["bans_active"] == []


def test_deribit_credits_10028(make_simulator: MakeSimulator) -> None:
    server = make_simulator(limit_scale=0.02, window_scale=0.1)  # 2 requests of credit, 1 per 0.25 s
    with httpx.Client(base_url=server.url) as client:
        assert [hit(client, DVOL).status_code for _ in range(2)] == [200, 200]
        over = hit(client, DVOL)
        assert over.status_code == 429
        assert over.json()["error"] == {"message": "too_many_requests", "code": 10028}
        assert over.json()["jsonrpc"] == "2.0"
        time.sleep(0.3)
        assert hit(client, DVOL).status_code == 200


def test_no_limits(make_simulator: MakeSimulator) -> None:
    server = make_simulator(limits_enabled=False, limit_scale=0.01)
    with httpx.Client(base_url=server.url) as client:
        assert all(hit(client, OKX_HISTORY).status_code == 200 for _ in range(50))
    assert server.stats()["venues"]["okx"]["limit_breaches"] == 0


@pytest.mark.parametrize(("venue", "error"), [("binance", "DDoSProtection"), ("bybit", "RateLimitExceeded")])
def test_ccxt_sees_the_breach(
    venue: str, error: str, make_simulator: MakeSimulator, ccxt_lib: ModuleType
) -> None:
    server = make_simulator(limit_scale=0.004, ban_after_strikes=10)
    exchange = make_ccxt_exchange(venue, server.venue_base_url(venue), enable_rate_limit=False)
    exchange.load_markets()
    server.reset_limits()
    with pytest.raises(getattr(ccxt_lib, error)):
        for _ in range(20):
            exchange.fetch_ohlcv("BTC/USDT", "1m", limit=1)
