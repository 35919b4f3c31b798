"""The live service end to end: the simulator and the service on one manual clock, real HTTP on
ephemeral ports, the real Redis. Minutes are stepped instantly (move the clock, poll)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable

import httpx
import pandas as pd
import pyarrow as pa

from marketdata_assets.frames import MINUTE_MS
from marketdata_assets.live.buffers import LIVE_TIMEFRAMES, seq_of
from marketdata_assets.live.events import RedisStreamPublisher, series_name
from marketdata_assets.live.server import LiveServer
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets_tests.live.conftest import REDIS_URL, ManualClock, at

MakeLive = Callable[..., LiveServer]
BTC = {"binance": ["BTC/USDT"]}


def _step(live: LiveServer, clock: ManualClock, minutes: int) -> list:
    events = []
    for _ in range(minutes):
        clock.advance(60)
        events += live.poll()
    return events


def _count(events: list) -> dict[str, int]:
    return {tf: sum(1 for e in events if e.timeframe == tf) for tf in LIVE_TIMEFRAMES}


def test_buffers_fill_at_start_and_each_step_publishes_exactly_the_closed_candles(
    make_simulator: Callable[..., SimulatorServer], make_live: MakeLive, redis_prefix: str
) -> None:
    clock = ManualClock(at("2024-03-10T23:40:30"))
    sim = make_simulator(seed=5, limits_enabled=False, clock=clock)
    live = make_live(sim, clock, BTC, redis_prefix)

    body = httpx.get(f"{live.url}/api/v1/market-data/binance/BTC-USDT/buffer/1m").json()
    assert len(body["candles"]) == 100  # 1420 closed minutes of today fetched, the last 100 kept
    assert body["candles"][-1]["timestamp"] == "2024-03-10T23:39:00+00:00"  # 23:40 is still open
    assert body["freshness"]["venue_status"] == "ok" and body["gaps"] == []
    five = httpx.get(f"{live.url}/api/v1/market-data/binance/BTCUSDT/buffer/5m").json()["candles"]
    assert five[-1]["timestamp"] == "2024-03-10T23:35:00+00:00" and five[-1]["complete"]

    # 30 minutes across midnight: 30 x 1m, 6 x 5m, 2 x 15m (23:45, 00:00), 1h, 4h and 1d closing at 00:00
    events = _step(live, clock, 30)
    assert _count(events) == {"1m": 30, "5m": 6, "15m": 2, "1h": 1, "4h": 1, "1d": 1}
    day = [e for e in events if e.timeframe == "1d"][0].candle
    assert day.n_minutes == 1440 and day.complete
    for tf in LIVE_TIMEFRAMES:  # per series: in order, each once
        seqs = [e.seq for e in events if e.timeframe == tf]
        assert seqs == sorted(set(seqs))

    redis = RedisStreamPublisher(REDIS_URL, prefix=redis_prefix)
    stream = redis.read(series_name("binance", "BTCUSDT", "1m"))
    assert len(stream) == 100 + 30  # the buffer at start, then each new minute once
    assert [e["seq"] for e in stream] == list(range(stream[0]["seq"], stream[0]["seq"] + 130))
    assert len(redis.read(series_name("binance", "BTCUSDT", "1d"))) == 1
    metrics = httpx.get(f"{live.url}/metrics").text
    assert 'marketdata_live_events_published_total{backend="memory"} 41' in metrics
    assert 'marketdata_live_requests_total{route="buffer",status="200"} 2' in metrics


def test_sse_delivers_live_events_and_replays_what_a_reconnecting_consumer_missed(
    make_simulator: Callable[..., SimulatorServer], make_live: MakeLive
) -> None:
    clock = ManualClock(at("2024-03-10T10:00:30"))
    sim = make_simulator(seed=5, limits_enabled=False, clock=clock)
    live = make_live(sim, clock, BTC)  # no Redis: in-process events, SSE only
    url = f"{live.url}/api/v1/stream"
    series = "binance:BTCUSDT:1m,binance:BTC-USDT:5m"
    received: list[tuple[str, dict]] = []
    connected = threading.Event()

    def consume() -> None:
        with httpx.stream("GET", url, params={"series": series}, timeout=30) as response:
            event_id = None
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    received.append((event_id, json.loads(line[6:])))
                    if len(received) == 12:
                        return

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    assert connected.wait(10)
    _step(live, clock, 10)  # 10 x 1m + 2 x 5m
    reader.join(20)
    assert [d["timeframe"] for _, d in received].count("1m") == 10
    assert [d["timeframe"] for _, d in received].count("5m") == 2
    last_id = received[-1][0]
    first_1m, first_5m = (int(p) for p in received[0][0].split("."))
    assert last_id == f"{first_1m + 9}.{seq_of('5m', 1710064800000 + 5 * MINUTE_MS)}"

    # disconnected; 3 more minutes pass; reconnecting with Last-Event-ID replays exactly those from the buffer
    _step(live, clock, 3)
    replay = []
    with httpx.stream("GET", url, params={"series": series}, headers={"Last-Event-ID": last_id}) as response:
        for line in response.iter_lines():
            if line.startswith(": connected"):
                break
            if line.startswith("data: "):
                replay.append(json.loads(line[6:]))
    assert [(d["timeframe"], d["seq"]) for d in replay] == [("1m", first_1m + 10 + i) for i in range(3)]

    bad = httpx.get(url, params={"series": "binance:BTCUSDT:2m"})
    assert bad.status_code == 400 and "timeframe" in bad.json()["error"]
    bad = httpx.get(url, params={"series": series}, headers={"Last-Event-ID": "1"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]


def test_a_venue_outage_then_recovery_leaves_no_silent_hole(
    make_simulator: Callable[..., SimulatorServer], make_live: MakeLive
) -> None:
    clock = ManualClock(at("2024-03-10T08:00:30"))
    sim = make_simulator(seed=5, limits_enabled=False, clock=clock)
    live = make_live(sim, clock, {"binance": ["BTC/USDT"], "bybit": ["ETH/USDT"]})
    fault = sim.add_fault("binance:http500")

    events = _step(live, clock, 4)
    assert {e.exchange for e in events} == {"bybit"}  # the other venue goes on
    health = httpx.get(f"{live.url}/health")
    assert health.status_code == 503
    venues = health.json()["venues"]
    assert venues["binance"]["status"] == "failing" and "500" in venues["binance"]["last_error"]
    assert venues["bybit"]["status"] == "ok"
    buffer = httpx.get(f"{live.url}/api/v1/market-data/binance/BTCUSDT/buffer/1m").json()
    assert buffer["freshness"]["venue_status"] == "failing"
    assert buffer["freshness"]["last_closed"] == "2024-03-10T07:59:00+00:00"

    sim.remove_fault(fault.id)
    events = _step(live, clock, 1)
    binance = [e.candle.timestamp for e in events if e.exchange == "binance" and e.timeframe == "1m"]
    assert len(binance) == 5  # the 4 missed minutes and the new one, in order
    assert httpx.get(f"{live.url}/health").status_code == 200
    minutes = httpx.get(f"{live.url}/api/v1/market-data/binance/BTCUSDT/buffer/1m").json()["candles"]
    stamps = pd.to_datetime([c["timestamp"] for c in minutes])
    assert (stamps[1:] - stamps[:-1] == pd.Timedelta(minutes=1)).all()

    # a data outage (the venue answers, without candles) is a visible gap, never a silent hole
    now_ms = int(clock() * 1000) // MINUTE_MS * MINUTE_MS
    sim.add_outage("bybit", now_ms, now_ms + 3 * MINUTE_MS)
    _step(live, clock, 5)
    gaps = httpx.get(f"{live.url}/api/v1/market-data/bybit/ETHUSDT/buffer/5m").json()["gaps"]
    assert {"start": pd.Timestamp(now_ms, unit="ms", tz="UTC").isoformat()} | {
        "minutes": 3,
        "kind": "missing",
    } in [{k: g[k] for k in ("start", "minutes", "kind")} for g in gaps]


def test_a_restart_resumes_without_duplicates(
    make_simulator: Callable[..., SimulatorServer], make_live: MakeLive, redis_prefix: str
) -> None:
    clock = ManualClock(at("2024-03-10T06:00:30"))
    sim = make_simulator(seed=5, limits_enabled=False, clock=clock)
    first = make_live(sim, clock, BTC, redis_prefix)
    _step(first, clock, 7)
    first.stop()
    clock.advance(6 * 60)  # down for 6 minutes
    second = make_live(sim, clock, BTC, redis_prefix)
    _step(second, clock, 2)

    redis = RedisStreamPublisher(REDIS_URL, prefix=redis_prefix)
    for tf in ("1m", "5m", "15m"):
        seqs = [e["seq"] for e in redis.read(series_name("binance", "BTCUSDT", tf))]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), tf  # contiguous: no gap, no repeat
    one = redis.read(series_name("binance", "BTCUSDT", "1m"))
    assert one[-1]["timestamp"] == "2024-03-10T06:14:00+00:00"


def test_the_api_checks_every_name_and_speaks_json_csv_and_arrow(
    make_simulator: Callable[..., SimulatorServer], make_live: MakeLive
) -> None:
    clock = ManualClock(at("2024-03-10T01:00:30"))
    sim = make_simulator(seed=5, limits_enabled=False, clock=clock)
    live = make_live(sim, clock, BTC)
    base = f"{live.url}/api/v1/market-data"
    for path, status, word in [
        ("/kraken/BTCUSDT/buffer/1m", 404, "unknown series"),
        ("/binance/ETHUSDT/buffer/1m", 404, "unknown series"),
        ("/binance/BTC..USDT/buffer/1m", 400, "invalid symbol"),
        ("/Binance;drop/BTCUSDT/buffer/1m", 400, "invalid exchange"),
        ("/binance/BTCUSDT/buffer/2h", 400, "invalid timeframe"),
        ("/binance/BTCUSDT/buffer/1m?format=xml", 400, "invalid format"),
        ("/binance/BTCUSDT/history?timeframe=1h&start=2024-03-10&end=2024-03-09", 400, "reversed"),
        ("/binance/BTCUSDT/history?timeframe=1h&start=yesterday&end=2024-03-09", 400, "start"),
    ]:
        response = httpx.get(base + path)
        assert response.status_code == status, path
        assert word in response.json()["error"], (path, response.json())

    csv = httpx.get(f"{base}/binance/BTCUSDT/buffer/5m", headers={"Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(csv.text))
    assert len(frame) == 12 and list(frame.columns)[:2] == ["timestamp", "open"]
    arrow = httpx.get(f"{base}/binance/BTCUSDT/buffer/1h", params={"format": "arrow"})
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.num_rows == 1 and table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")

    history = httpx.get(
        f"{base}/binance/BTC-USDT/history",
        params={"timeframe": "15m", "start": "2024-03-10T00:15", "end": "2024-03-10T01:00"},
    ).json()
    assert [c["timestamp"][11:16] for c in history["candles"]] == ["00:15", "00:30", "00:45"]
    available = httpx.get(f"{base}/available").json()
    assert {(s["exchange"], s["symbol"], s["timeframe"]) for s in available["live"]} == {
        ("binance", "BTCUSDT", tf) for tf in LIVE_TIMEFRAMES
    }
    schema = httpx.get(f"{live.url}/openapi.json").json()
    assert "/api/v1/market-data/{exchange}/{symbol}/buffer/{timeframe}" in schema["paths"]
    assert "/api/v1/stream" in schema["paths"]


def test_the_buffer_equals_what_the_batch_pipeline_serves_and_a_restart_seeds_from_it(
    make_simulator: Callable[..., SimulatorServer], make_live: MakeLive, tmp_path
) -> None:
    from datetime import date

    from marketdata_assets.client import MarketDataClient
    from marketdata_assets.pipeline.ingest import ingest_candle_days
    from marketdata_assets.pipeline.resample import resample_days
    from marketdata_assets.pipeline.validate import validate_days
    from marketdata_assets.storage.revisions import store_raw_candles
    from marketdata_assets.storage.root import StorageRoot
    from marketdata_assets.venues.registry import get_source

    clock = ManualClock(at("2024-03-10T00:30:30"))
    # ETH and SOL have minutes without trades (and Binance serves zero-volume fillers for them)
    sim = make_simulator(seed=9, limits_enabled=False, clock=clock, no_trade_rates={"ETH/USDT": 0.02})
    series = {"binance": ["ETH/USDT"], "okx": ["SOL/USDT"]}
    live = make_live(sim, clock, series, buffer_length=2000, history_days=1)  # REST: all of 2024-03-09
    _step(live, clock, 2)

    # the batch pipeline, run directly, backfills 2024-03-09 from the same simulator
    day = date(2024, 3, 9)
    root = StorageRoot.from_uri(tmp_path / "data")
    for venue, symbols in series.items():
        source = get_source(
            venue, sim.venue_base_url(venue), rate_limit_ms=1, shared_limiter=False, clock=clock
        )
        for symbol in symbols:
            key = symbol.replace("/", "")
            outcomes = ingest_candle_days(
                source,
                lambda key, d, fetched, venue=venue: store_raw_candles(root, venue, key, d, fetched.frame),
                venue,
                [(symbol, day)],
            )
            assert all(o.ok for o in outcomes)
            assert all(o.ok for o in validate_days(root, venue, key, [day]))
            assert all(o.ok for o in resample_days(root, venue, key, [day]))
        source.close()

    client = MarketDataClient(root=root)
    base = f"{live.url}/api/v1/market-data"
    checked = 0
    for venue, symbols in series.items():
        key = symbols[0].replace("/", "")
        for tf in LIVE_TIMEFRAMES:
            served = client.get_historical_data(key, venue, tf, "2024-03-09", "2024-03-10").reset_index()
            arrow = httpx.get(f"{base}/{venue}/{key}/buffer/{tf}", params={"format": "arrow"}).content
            buffered = pa.ipc.open_stream(arrow).read_all().to_pandas()
            buffered = buffered[buffered["timestamp"] < pd.Timestamp("2024-03-10", tz="UTC")]
            pd.testing.assert_frame_equal(  # value for value (the served files store n_minutes as int16)
                buffered.reset_index(drop=True),
                served[buffered.columns].reset_index(drop=True),
                check_dtype=False,
                check_exact=True,
            )
            checked += len(served)
        assert client.get_historical_data(key, venue, "1m", "2024-03-09", "2024-03-10")["volume"].eq(
            0
        ).any() or (venue == "okx")
    assert checked > 2 * 1400

    # history joins the served day with the buffered minutes of today
    joined = httpx.get(
        f"{base}/binance/ETHUSDT/history",
        params={"timeframe": "15m", "start": "2024-03-09T23:30", "end": "2024-03-11"},
    ).json()["candles"]
    assert [c["timestamp"][5:16] for c in joined] == [
        "03-09T23:30",
        "03-09T23:45",
        "03-10T00:00",
        "03-10T00:15",
    ]

    # a restart seeds its buffers from the served Parquet (the 1d candle of 2024-03-09 included) and
    # fetches only today from the venue: the same candles
    again = make_live(sim, clock, series, buffer_length=2000, history_days=1)
    for venue, symbols in series.items():
        key = symbols[0].replace("/", "")
        first = live.service.buffers[(venue, key)]
        second = again.service.buffers[(venue, key)]
        assert second.served_through_ms == int(pd.Timestamp("2024-03-10", tz="UTC").value // 1_000_000)
        for tf in LIVE_TIMEFRAMES:
            pd.testing.assert_frame_equal(first.frame(tf), second.frame(tf))
