"""``replay``: a served day published as the live path's events, to the real Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from marketdata_assets.client import MarketDataClient
from marketdata_assets.live.buffers import LIVE_TIMEFRAMES
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
    root = StorageRoot.from_uri(tmp_path / "data")
    source = get_source(
        "binance", sim.venue_base_url("binance"), rate_limit_ms=1, shared_limiter=False, clock=clock
    )
    store = lambda key, d, fetched: store_raw_candles(root, "binance", key, d, fetched.frame)  # noqa: E731
    assert all(o.ok for o in ingest_candle_days(source, store, "binance", [("BTC/USDT", day)]))
    assert all(o.ok for o in validate_days(root, "binance", "BTCUSDT", [day]))
    assert all(o.ok for o in resample_days(root, "binance", "BTCUSDT", [day]))
    source.close()

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
