"""``replay``: a served day published as the live path's events, to the real Redis and over the live
service's SSE (``GET /api/v1/replay``), message for message what ``GET /api/v1/stream`` sends live."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date

import httpx

from marketdata_assets.client import MarketDataClient
from marketdata_assets.live.buffers import LIVE_TIMEFRAMES, seq_of
from marketdata_assets.live.events import RedisStreamPublisher, series_name
from marketdata_assets.live.replay import replay, replay_events
from marketdata_assets.live.server import LiveServer
from marketdata_assets.pipeline.ingest import ingest_candle_days
from marketdata_assets.pipeline.resample import resample_days
from marketdata_assets.pipeline.validate import validate_days
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.storage.revisions import store_raw_candles
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.venues.registry import get_source
from marketdata_assets_tests.live.conftest import REDIS_URL, ManualClock, at

DAY_MINUTES = {"1m": 1440, "5m": 288, "15m": 96, "1h": 24, "4h": 6, "1d": 1}


def _serve_day(sim: SimulatorServer, clock: ManualClock, data: object, day: date) -> StorageRoot:
    """The batch path for one Binance BTC/USDT day: ingest, validate, resample into ``data``."""
    root = StorageRoot.from_uri(data)
    source = get_source(
        "binance", sim.venue_base_url("binance"), rate_limit_ms=1, shared_limiter=False, clock=clock
    )
    store = lambda key, d, fetched: store_raw_candles(root, "binance", key, d, fetched.frame)  # noqa: E731
    assert all(o.ok for o in ingest_candle_days(source, store, "binance", [("BTC/USDT", day)]))
    assert all(o.ok for o in validate_days(root, "binance", "BTCUSDT", [day]))
    assert all(o.ok for o in resample_days(root, "binance", "BTCUSDT", [day]))
    source.close()
    return root


def test_replaying_a_served_day_publishes_the_live_paths_events(
    make_simulator: Callable[..., SimulatorServer],
    make_live: Callable[..., LiveServer],
    redis_prefix,
    tmp_path,
) -> None:
    clock = ManualClock(at("2024-03-10T00:00:30"))
    sim = make_simulator(seed=9, limits_enabled=False, clock=clock)
    # the live path computes 2024-03-09 from the venue's REST minutes
    live = make_live(sim, clock, {"binance": ["BTC/USDT"]}, buffer_length=2000, history_days=1)
    day = date(2024, 3, 9)
    root = _serve_day(sim, clock, tmp_path / "data", day)

    events = replay_events(MarketDataClient(root=root), "binance", "BTC/USDT", "2024-03-09", "2024-03-10")
    redis = RedisStreamPublisher(REDIS_URL, prefix=redis_prefix)
    batches: list[list] = []
    pauses: list[float] = []
    assert (
        replay(events, speed=60, redis=redis, publish=batches.append, sleep=pauses.append)
        == 1440 + 288 + 96 + 24 + 6 + 1
    )
    assert len(batches) == 1440 and pauses == [1.0] * 1439  # one batch per minute closed, 60x real time
    assert [e.timeframe for e in batches[-1]] == list(LIVE_TIMEFRAMES)  # midnight closes every bin, 1m first

    buffer = live.service.buffers[("binance", "BTCUSDT")]
    for tf in LIVE_TIMEFRAMES:
        stream = redis.read(series_name("binance", "BTCUSDT", tf))
        assert len(stream) == DAY_MINUTES[tf]
        assert [e["seq"] for e in stream] == sorted(e["seq"] for e in stream)
        live_day = [
            c for c in buffer.candles[tf] if c.timestamp < int(at("2024-03-10T00:00").timestamp() * 1000)
        ]
        # the live path's payloads for the same candles, field for field
        assert [{"seq": c.seq, **c.as_json()} for c in live_day] == [
            {k: v for k, v in e.items() if k != "id"} for e in stream
        ]
        assert [e.as_json() for e in events if e.timeframe == tf] == [
            {
                "series": series_name("binance", "BTCUSDT", tf),
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "timeframe": tf,
                "seq": c.seq,
                "candle": c.as_json(),
            }
            for c in live_day
        ]
    assert replay(events, speed=0, redis=redis) == len(events)  # a second replay adds nothing to Redis
    assert len(redis.read(series_name("binance", "BTCUSDT", "1m"))) == 1440


def _sse_messages(
    url: str, params: dict, *, last_event_id: str | None = None, until: str = "event: end"
) -> list[str]:
    """The raw messages (blocks of lines) of an SSE response, up to the first one starting with
    ``until`` (excluded), comments dropped."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    messages, lines = [], []
    with httpx.stream("GET", url, params=params, headers=headers, timeout=30) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/event-stream"
        )
        for line in response.iter_lines():
            if line.startswith(until):
                return messages
            if line == "":
                if lines and not lines[0].startswith(":"):
                    messages.append("\n".join(lines))
                lines = []
            else:
                lines.append(line)
    raise AssertionError(f"the stream ended before {until!r}")


def test_replay_over_sse_sends_the_live_streams_messages(
    make_simulator: Callable[..., SimulatorServer],
    make_live: Callable[..., LiveServer],
    redis_prefix,
    tmp_path,
) -> None:
    clock = ManualClock(at("2024-03-10T00:00:30"))
    sim = make_simulator(seed=9, limits_enabled=False, clock=clock)
    live = make_live(sim, clock, {"binance": ["BTC/USDT"]}, buffer_length=2000, history_days=1)
    day = date(2024, 3, 9)
    root = _serve_day(sim, clock, tmp_path / "data", day)  # the live service's storage root
    series = "binance:BTCUSDT:1m,binance:BTC-USDT:5m,binance:BTCUSDT:1h"
    window = {"series": series, "start": "2024-03-09", "end": "2024-03-10"}

    replayed = _sse_messages(f"{live.url}/api/v1/replay", window)
    assert len(replayed) == 1440 + 288 + 24
    # live: the same series from the bin before the day, replayed from the buffer on reconnect
    midnight = int(at("2024-03-09T00:00").timestamp() * 1000)
    before = ".".join(str(seq_of(tf, midnight) - 1) for tf in ("1m", "5m", "1h"))
    live_messages = _sse_messages(
        f"{live.url}/api/v1/stream", {"series": series}, last_event_id=before, until=": connected"
    )
    assert replayed == live_messages  # id, event and data, byte for byte
    first = replayed[0].split("\n")
    assert (
        first[0] == f"id: {seq_of('1m', midnight)}.{seq_of('5m', midnight) - 1}.{seq_of('1h', midnight) - 1}"
    )
    assert first[1] == "event: candle"

    # the payloads are the ones `marketdata replay` writes to Redis
    redis = RedisStreamPublisher(REDIS_URL, prefix=redis_prefix)
    replay(
        replay_events(MarketDataClient(root=root), "binance", "BTC/USDT", "2024-03-09", "2024-03-10"),
        speed=0,
        redis=redis,
    )
    datas = [json.loads(m.split("\n")[2][len("data: ") :]) for m in replayed]
    for tf in ("1m", "5m", "1h"):
        assert [{"seq": d["seq"], **d["candle"]} for d in datas if d["timeframe"] == tf] == [
            {k: v for k, v in e.items() if k != "id"}
            for e in redis.read(series_name("binance", "BTCUSDT", tf))
        ]

    # Last-Event-ID resumes a replay where the consumer left it
    resumed_after = replayed[99].split("\n")[0][len("id: ") :]
    assert _sse_messages(f"{live.url}/api/v1/replay", window, last_event_id=resumed_after) == replayed[100:]

    # speed: 600x real time over 10 minutes of 1m is 9 pauses of 0.1 s
    t0 = time.monotonic()
    paced = _sse_messages(
        f"{live.url}/api/v1/replay",
        {
            "series": "binance:BTCUSDT:1m",
            "start": "2024-03-09T12:00",
            "end": "2024-03-09T12:10",
            "speed": "600",
        },
    )
    assert len(paced) == 10 and time.monotonic() - t0 >= 0.9

    bad = {
        "speed=-1": ({**window, "speed": "-1"}, 400, "speed"),
        "speed=nan": ({**window, "speed": "nan"}, 400, "speed"),
        "40 days": ({**window, "start": "2024-02-01", "end": "2024-03-12"}, 400, "31 days"),
        "too many bins": (  # 5 x 44,640 minutes, checked before anything is read
            {
                "series": ",".join(f"binance:{b}USDT:1m" for b in ("BTC", "ETH", "SOL", "XRP", "DOGE")),
                "start": "2024-02-08",
                "end": "2024-03-10",
            },
            400,
            "200,000 bins",
        ),
        "bad series": ({**window, "series": "binance:BTCUSDT"}, 400, "exchange:SYMBOL:timeframe"),
        "not served": ({**window, "series": "binance:ETHUSDT:1m"}, 404, "binance:ETHUSDT:1m"),
        "outside": ({**window, "start": "2023-01-01", "end": "2023-01-02"}, 404, "nothing served"),
    }
    for case, (params, status, text) in bad.items():
        answer = httpx.get(f"{live.url}/api/v1/replay", params=params)
        assert answer.status_code == status and text in answer.json()["error"], case
        assert str(tmp_path) not in answer.text, case  # never the storage root
    assert "/api/v1/replay" in httpx.get(f"{live.url}/openapi.json").json()["paths"]
