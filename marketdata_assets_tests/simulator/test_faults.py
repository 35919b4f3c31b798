"""Every fault kind over real HTTP, their scoping, determinism, spec format and control API."""

from __future__ import annotations

import math

import httpx
import pytest

from marketdata_assets.frames import DAY_MS, MINUTE_MS
from marketdata_assets.simulator import Fault, Outage, SimulatorServer, parse_fault

from .conftest import NOW_S, YESTERDAY_MS, MakeSimulator, ManualClock

BINANCE = "/binance/api/v3/klines"
BYBIT = "/bybit/v5/market/kline"
OKX = "/okx/api/v5/market/history-candles"
DVOL = "/deribit/api/v2/public/get_volatility_index_data"


def binance(client: httpx.Client, symbol: str = "BTCUSDT", **params: object) -> httpx.Response:
    return client.get(BINANCE, params={"symbol": symbol, "interval": "1m", **params})


def bybit(client: httpx.Client, **params: object) -> httpx.Response:
    return client.get(BYBIT, params={"category": "spot", "symbol": "BTCUSDT", "interval": "1", **params})


def okx(client: httpx.Client, **params: object) -> httpx.Response:
    return client.get(OKX, params={"instId": "BTC-USDT", **params})


def dvol(client: httpx.Client, start: int, end: int) -> httpx.Response:
    return client.get(
        DVOL, params={"currency": "BTC", "start_timestamp": start, "end_timestamp": end, "resolution": "60"}
    )


@pytest.fixture
def sim(make_simulator: MakeSimulator) -> SimulatorServer:
    return make_simulator(seed=11, limits_enabled=False, clock=lambda: NOW_S)


@pytest.fixture
def client(sim: SimulatorServer) -> httpx.Client:
    with httpx.Client(base_url=sim.url, timeout=5.0) as c:
        yield c


# -- spec format --------------------------------------------------------------------------------


def test_spec_format() -> None:
    f = parse_fault("binance:http500:rate=0.2")
    assert (f.kind, f.venue, f.status, f.rate) == ("http_error", "binance", 500, 0.2)
    f = parse_fault("bybit:outage:start=2024-01-02T03:00,end=2024-01-02T05:00")
    assert (f.start_ms, f.end_ms) == (1704164400000, 1704171600000)
    f = parse_fault("*:slow:delay=2.5,count=3,endpoint=ohlcv,symbol=btc/usdt")
    assert (f.venue, f.delay_s, f.count, f.endpoint, f.symbol) == ("*", 2.5, 3, "ohlcv", "BTC/USDT")
    assert parse_fault("okx:html").status == 502
    assert parse_fault("okx:http:status=503").status == 503
    assert parse_fault("okx:shuffle").kind == "out_of_order"
    f = parse_fault("binance:revised:day=2024-03-09,factor=1.01")
    assert (f.end_ms - f.start_ms, f.factor) == (DAY_MS, 1.01)
    for bad in (
        "binance",
        "kraken:drop",
        "okx:explode",
        "okx:drop:rate=2",
        "okx:drop:foo=1",
        "okx:invalid:what=odd",
        "okx:drop:rate",
    ):
        with pytest.raises(ValueError):
            parse_fault(bad)


# -- request faults -----------------------------------------------------------------------------


def test_http_errors_by_rate_are_deterministic(make_simulator: MakeSimulator) -> None:
    def statuses() -> list[int]:
        server = make_simulator(seed=5, limits_enabled=False, faults=["binance:http500:rate=0.3"])
        with httpx.Client(base_url=server.url) as c:
            return [binance(c, limit=1).status_code for _ in range(30)]

    first, second = statuses(), statuses()
    assert first == second
    assert set(first) == {200, 500} and 3 <= first.count(500) <= 18


def test_http_error_bodies_and_count(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("*:http503:count=1")
    answer = binance(client, limit=1)
    assert answer.status_code == 503 and answer.json()["code"] == -1000
    assert binance(client, limit=1).status_code == 200  # count used up
    sim.add_fault("okx:http502:count=1")
    assert okx(client).status_code == 502 and okx(client).status_code == 200
    sim.add_fault("bybit:http500:count=1")
    assert bybit(client).json()["retCode"] == 10016
    sim.add_fault("deribit:http504:count=1")
    answer = dvol(client, YESTERDAY_MS, YESTERDAY_MS)
    assert answer.status_code == 504 and answer.json()["error"]["code"] == 11094
    assert sim.stats()["venues"]["binance"]["faults_injected_by_kind"] == {"http_error": 1}


def test_scoping_by_symbol_endpoint_and_venue(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("binance:http500:symbol=ETH/USDT")
    sim.add_fault("okx:http500:endpoint=candles")
    assert binance(client, "ETHUSDT", limit=1).status_code == 500
    assert binance(client, "BTCUSDT", limit=1).status_code == 200
    assert client.get("/binance/api/v3/exchangeInfo").status_code == 200
    assert okx(client).status_code == 200  # history-candles
    assert client.get("/okx/api/v5/market/candles", params={"instId": "BTC-USDT"}).status_code == 500
    assert bybit(client).json()["retCode"] == 0


def test_slow_response_passes_the_client_timeout(sim: SimulatorServer) -> None:
    sim.add_fault("bybit:slow:delay=0.6,count=1")
    with httpx.Client(base_url=sim.url, timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        bybit(c)
    with httpx.Client(base_url=sim.url, timeout=2.0) as c:
        assert bybit(c).json()["retCode"] == 0


def test_dropped_connection(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("okx:drop:count=1")
    with pytest.raises(httpx.RemoteProtocolError):
        okx(client)
    assert okx(client).status_code == 200


def test_truncated_body(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("binance:truncate:count=1,keep=0.5")
    with pytest.raises(httpx.RemoteProtocolError):
        binance(client, limit=100)
    assert len(binance(client, limit=100).json()) == 100


def test_html_error_page(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("binance:html:count=1")
    answer = binance(client, limit=1)
    assert answer.status_code == 502 and answer.headers["content-type"] == "text/html"
    assert answer.text.startswith("<html>") and "502 Bad Gateway" in answer.text
    with pytest.raises(ValueError):
        answer.json()


def test_maintenance_window_on_the_simulator_clock(make_simulator: MakeSimulator) -> None:
    clock = ManualClock()
    now_ms = int(clock() * 1000)
    server = make_simulator(
        limits_enabled=False,
        clock=clock,
        faults=[f"*:maintenance:start={now_ms - 1000},end={now_ms + 60_000}"],
    )
    with httpx.Client(base_url=server.url) as c:
        answers = [binance(c, limit=1), bybit(c), okx(c), dvol(c, YESTERDAY_MS, YESTERDAY_MS)]
        assert [a.status_code for a in answers] == [503] * 4
        assert answers[0].json()["code"] == -1001
        assert answers[1].json()["retCode"] == 10016
        assert answers[2].json()["code"] == "50001"
        assert answers[3].json()["error"] == {"message": "system_maintenance", "code": 11051}
        clock.advance(61)
        assert binance(c, limit=1).status_code == 200


# -- data faults --------------------------------------------------------------------------------


def test_duplicates_at_the_page_edge(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("*:duplicates")
    start = YESTERDAY_MS + 1000 * MINUTE_MS
    page = binance(client, startTime=start, limit=10).json()
    assert [r[0] for r in page][:2] == [start - MINUTE_MS, start]  # last row of the previous page
    rows = bybit(client, start=start, end=start + 9 * MINUTE_MS).json()["result"]["list"]
    assert int(rows[-1][0]) == start - MINUTE_MS and len(rows) == 11
    rows = okx(client, before=start - 1, after=start + 10 * MINUTE_MS).json()["data"]
    assert int(rows[-1][0]) == start - MINUTE_MS and len(rows) == 11
    rows = dvol(client, YESTERDAY_MS, YESTERDAY_MS + 9 * MINUTE_MS).json()["result"]["data"]
    assert [r[0] for r in rows][-2:] == [YESTERDAY_MS + 9 * MINUTE_MS, YESTERDAY_MS + 10 * MINUTE_MS]
    assert sim.stats()["venues"]["okx"]["faults_injected_by_kind"] == {"duplicates": 1}


def test_duplicates_inside_the_page(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("binance:duplicates:mode=inside,rows=2")
    times = [r[0] for r in binance(client, startTime=YESTERDAY_MS, limit=5).json()]
    assert times == [YESTERDAY_MS, YESTERDAY_MS + MINUTE_MS, YESTERDAY_MS, YESTERDAY_MS + MINUTE_MS] + [
        YESTERDAY_MS + i * MINUTE_MS for i in range(2, 5)
    ]


def test_out_of_order_rows(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("bybit:out_of_order")
    rows = bybit(client, start=YESTERDAY_MS, end=YESTERDAY_MS + 19 * MINUTE_MS).json()["result"]["list"]
    times = [int(r[0]) for r in rows]
    assert sorted(times) == list(range(YESTERDAY_MS, YESTERDAY_MS + 20 * MINUTE_MS, MINUTE_MS))
    assert times != sorted(times, reverse=True)


@pytest.mark.parametrize("what", ["high_lt_low", "negative_volume", "nan"])
def test_invalid_candles(what: str, sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault(f"*:invalid:what={what},rows=2")
    for rows, pick in (
        (binance(client, startTime=YESTERDAY_MS, limit=50).json(), lambda r: r[1:6]),
        (okx(client, after=YESTERDAY_MS + 50 * MINUTE_MS).json()["data"], lambda r: r[1:6]),
    ):
        values = [pick(r) for r in rows]
        if what == "high_lt_low":
            bad = [v for v in values if float(v[1]) < float(v[2])]
        elif what == "negative_volume":
            bad = [v for v in values if float(v[4]) < 0]
        else:
            bad = [v for v in values if "NaN" in v]
        assert len(bad) == 2
    data = dvol(client, YESTERDAY_MS, YESTERDAY_MS + 49 * MINUTE_MS).json()["result"]["data"]
    if what == "nan":
        assert sum(r[4] is None for r in data) == 2
    assert all(not isinstance(v, float) or math.isfinite(v) for r in data for v in r[1:])


def test_revised_history_for_one_symbol_and_day(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("binance:revised:symbol=BTC/USDT,day=2024-03-09,factor=1.001")
    first = binance(client, startTime=YESTERDAY_MS, limit=20).json()
    overlapping = binance(client, startTime=YESTERDAY_MS + 10 * MINUTE_MS, limit=20).json()
    for old, new in zip(first[10:], overlapping[:10], strict=True):
        assert old[0] == new[0] and float(new[4]) == pytest.approx(float(old[4]) * 1.001, abs=0.01)
        assert float(new[2]) >= float(new[4])
    eth_a = binance(client, "ETHUSDT", startTime=YESTERDAY_MS, limit=5).json()
    assert binance(client, "ETHUSDT", startTime=YESTERDAY_MS, limit=5).json() == eth_a
    other_day = binance(client, startTime=YESTERDAY_MS - DAY_MS, limit=5).json()
    assert binance(client, startTime=YESTERDAY_MS - DAY_MS, limit=5).json() == other_day


def test_outage_windows_from_spec_config_and_server(make_simulator: MakeSimulator) -> None:
    start = YESTERDAY_MS + 60 * MINUTE_MS
    server = make_simulator(
        limits_enabled=False,
        clock=lambda: NOW_S,
        faults=[f"bybit:outage:start={start},end={start + 30 * MINUTE_MS}"],
        outages=[Outage("binance", start, start + 5 * MINUTE_MS, symbol="BTC/USDT")],
    )
    server.add_outage("okx", start, start + 10 * MINUTE_MS)
    with httpx.Client(base_url=server.url) as c:
        rows = bybit(c, start=YESTERDAY_MS, end=YESTERDAY_MS + 119 * MINUTE_MS).json()["result"]["list"]
        times = {int(r[0]) for r in rows}
        assert len(rows) == 90 and not any(start <= t < start + 30 * MINUTE_MS for t in times)
        assert len(binance(c, startTime=YESTERDAY_MS, endTime=YESTERDAY_MS + 119 * MINUTE_MS).json()) == 115
        assert (
            len(binance(c, "ETHUSDT", startTime=YESTERDAY_MS, endTime=YESTERDAY_MS + 119 * MINUTE_MS).json())
            == 120
        )
        assert len(okx(c, before=YESTERDAY_MS - 1, after=YESTERDAY_MS + 100 * MINUTE_MS).json()["data"]) == 90
    assert server.stats()["venues"]["bybit"]["faults_injected_by_kind"] == {"outage": 1}


def test_outages_at_a_daily_rate_are_deterministic(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.add_fault("okx:outage:rate=0.5")
    counts = []
    for day in range(10):
        day_start = YESTERDAY_MS - day * DAY_MS
        got = 0
        for page in range(15):
            lo = day_start + page * 100 * MINUTE_MS
            got += len(
                okx(client, before=lo - 1, after=min(lo + 100 * MINUTE_MS, day_start + DAY_MS)).json()["data"]
            )
        counts.append(got)
    gaps = [1440 - c for c in counts]
    assert any(g == 0 for g in gaps) and any(5 <= g <= 180 for g in gaps)
    assert all(g == 0 or 5 <= g <= 180 for g in gaps)


# -- control API --------------------------------------------------------------------------------


def test_http_control_api(sim: SimulatorServer, client: httpx.Client) -> None:
    added = client.post("/__sim/faults", json={"spec": "binance:http500"}).json()["faults"]
    assert added[0]["kind"] == "http_error" and added[0]["id"] >= 1
    more = client.post(
        "/__sim/faults",
        json={"specs": ["okx:drop:count=1", {"kind": "slow", "venue": "bybit", "delay": 0.01}]},
    )
    assert len(more.json()["faults"]) == 2
    listed = client.get("/__sim/faults").json()["faults"]
    assert [f["spec"] for f in listed] == ["binance:http500", "okx:drop:count=1", "bybit:slow"]
    assert binance(client, limit=1).status_code == 500
    assert client.delete(f"/__sim/faults/{added[0]['id']}").json() == {"ok": True}
    assert binance(client, limit=1).status_code == 200
    assert client.delete("/__sim/faults/9999").status_code == 404
    assert client.post("/__sim/faults", json={"spec": "binance:nonsense"}).status_code == 400
    assert client.post("/__sim/faults", content=b"not json").status_code == 400
    client.delete("/__sim/faults")
    assert client.get("/__sim/faults").json()["faults"] == [] and sim.faults() == []


def test_python_fault_api(sim: SimulatorServer) -> None:
    fault = sim.add_fault(Fault(kind="drop", venue="okx", count=1))
    assert fault.id >= 1 and sim.faults() == [fault]
    assert sim.remove_fault(fault.id) and sim.faults() == []
