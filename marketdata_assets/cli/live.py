"""``marketdata serve`` (the live service) and ``make live`` (it, against a simulator, offline).

``serve`` reads the settings file (``--config`` or the environment's), fills the buffers and serves the
API on ``live.host:live.port`` (``--host``/``--port`` override) until interrupted. ``make live`` starts
``marketdata-sim`` on a free loopback port (as ``make demo`` does) and serves the ``demo`` settings
against it; the served Parquet is the demo's (``data/demo``, after ``make demo``) when it exists.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

from marketdata_assets.settings import CONFIG_DIR, SettingsError


def add_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="the live service: rolling buffers, HTTP API, new-candle events")
    serve.add_argument("--config", help="settings file (default: config/$MARKETDATA_ENV.yaml)")
    serve.add_argument("--host", help="listen address (default: live.host)")
    serve.add_argument("--port", type=int, help="port (default: live.port; 0 = any free port)")
    serve.add_argument("--redis-url", help="publish events to Redis Streams there (overrides live.events)")
    serve.set_defaults(handler=serve_command)

    rep = sub.add_parser("replay", help="publish served history as the live service's new-candle events")
    rep.add_argument("exchange")
    rep.add_argument("symbol", help="BTC/USDT, BTCUSDT or BTC-USDT")
    rep.add_argument("--start", required=True, help="inclusive, UTC (ISO date or datetime)")
    rep.add_argument("--end", required=True, help="exclusive, UTC")
    rep.add_argument("--speed", type=float, default=60.0, help="x real time (default 60); 0 = at once")
    rep.add_argument("--timeframes", default=",".join(LIVE_TIMEFRAMES_DEFAULT), help="comma list")
    rep.add_argument("--config", help="settings file (storage root, live.events)")
    rep.add_argument("--stream-prefix", help="overrides live.events.stream_prefix")
    rep.set_defaults(handler=replay_command)


LIVE_TIMEFRAMES_DEFAULT = ("1m", "5m", "15m", "1h", "4h", "1d")


def replay_command(args: argparse.Namespace) -> int:
    """To the Redis streams of ``live.events`` (the backend must be ``redis``); prints each batch."""
    from marketdata_assets.client import MarketDataClient
    from marketdata_assets.live.events import RedisStreamPublisher
    from marketdata_assets.live.replay import replay, replay_events
    from marketdata_assets.settings import load_settings
    from marketdata_assets.storage.root import StorageRoot

    try:
        settings = load_settings(args.config) if args.config else load_settings()
    except SettingsError as exc:
        print(f"marketdata replay: {exc}", file=sys.stderr)
        return 2
    events_cfg = settings.live.events
    if events_cfg.backend != "redis":
        print("marketdata replay: live.events.backend is not redis: nowhere to publish", file=sys.stderr)
        return 2
    client = MarketDataClient(root=StorageRoot.from_uri(settings.storage_root))
    timeframes = [t.strip() for t in args.timeframes.split(",") if t.strip()]
    events = replay_events(client, args.exchange, args.symbol, args.start, args.end, timeframes)
    redis = RedisStreamPublisher(
        events_cfg.redis_url,
        prefix=args.stream_prefix or events_cfg.stream_prefix,
        maxlen=events_cfg.stream_maxlen,
    )
    try:
        sent = replay(events, speed=args.speed, redis=redis)
    finally:
        redis.close()
    print(f"Replayed {sent} candle events ({redis.published} new stream entries)")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from marketdata_assets.live.server import LiveServer, build_service
    from marketdata_assets.settings import load_settings

    try:
        settings = load_settings(args.config) if args.config else load_settings()
    except SettingsError as exc:
        print(f"marketdata serve: {exc}", file=sys.stderr)
        return 2
    live = settings.live
    host = args.host or live.host
    port = live.port if args.port is None else args.port
    service = build_service(settings, redis_url=getattr(args, "redis_url", None))
    print(f"Filling buffers for {len(service.series)} series ...", flush=True)
    server = LiveServer(service, host=host, port=port).start()
    for venue, health in service.health.items():
        if health.status != "ok":
            print(f"  {venue}: {health.status} ({health.last_error}); retried every minute", flush=True)
    print(
        f"Live service on {server.url}  (API {server.url}/api/v1, schema {server.url}/openapi.json)",
        flush=True,
    )
    server.serve_forever()
    return 0


def main() -> int:
    """``make live``: the simulator + ``marketdata serve`` with the demo settings."""
    from marketdata_assets.cli.demo import start_simulator

    port = os.environ.get("LIVE_PORT", "8800")
    signal.signal(signal.SIGTERM, _interrupt)  # stop the simulator too when terminated
    with tempfile.TemporaryDirectory(prefix="marketdata-live-") as tmp:
        proc, url = start_simulator(Path(tmp) / "sim.url", Path(tmp) / "sim.log")
        print(f"Simulator running at {url}")
        os.environ["MARKETDATA_SIM_URL"] = url
        try:
            args = argparse.Namespace(config=str(CONFIG_DIR / "demo.yaml"), host=None, port=int(port))
            return serve_command(args)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
