"""``marketdata serve`` (the live service) and ``make live`` (it, against a simulator, offline).

``serve`` reads the settings file (``--config`` or the environment's), fills the buffers and serves the
API on ``live.host:live.port`` (``--host``/``--port`` override) until interrupted. ``make live`` starts
``marketdata-sim`` on a free loopback port (as ``make demo`` does) and serves the ``demo`` settings
against it; the served Parquet is the demo's (``data/demo``, after ``make demo``) when it exists.
"""

from __future__ import annotations

import argparse
import math
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
    serve.add_argument("--port", type=_port, help="port (default: live.port; 0 = any free port)")
    serve.add_argument(
        "--redis-url", type=_redis_url, help="publish events to Redis Streams there (overrides live.events)"
    )
    serve.set_defaults(handler=serve_command)

    rep = sub.add_parser("replay", help="publish served history as the live service's new-candle events")
    rep.add_argument("exchange")
    rep.add_argument("symbol", help="BTC/USDT, BTCUSDT or BTC-USDT")
    rep.add_argument("--start", required=True, help="inclusive, UTC (ISO date or datetime)")
    rep.add_argument("--end", required=True, help="exclusive, UTC")
    rep.add_argument("--speed", type=_speed, default=60.0, help="x real time (default 60); 0 = at once")
    rep.add_argument(
        "--timeframes", type=_timeframes, default=list(LIVE_TIMEFRAMES_DEFAULT), help="comma list"
    )
    rep.add_argument("--config", help="settings file (storage root, live.events)")
    rep.add_argument("--stream-prefix", help="overrides live.events.stream_prefix")
    rep.set_defaults(handler=replay_command)


LIVE_TIMEFRAMES_DEFAULT = ("1m", "5m", "15m", "1h", "4h", "1d")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535 (0: any free port), got {text!r}")
    return port


def _redis_url(text: str) -> str:
    from marketdata_assets.settings import _REDIS_URL_RE

    if not _REDIS_URL_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected redis://HOST[:PORT][/DB] (or rediss://, unix://), got {text!r}"
        )
    return text


def _speed(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not (speed >= 0 and math.isfinite(speed)):
        raise argparse.ArgumentTypeError(f"expected a speed >= 0 (x real time; 0 = at once), got {text!r}")
    return speed


def _timeframes(text: str) -> list[str]:
    parts = [t.strip() for t in text.split(",")]
    bad = [t for t in parts if t not in LIVE_TIMEFRAMES_DEFAULT]
    if bad or not parts:
        raise argparse.ArgumentTypeError(
            f"unknown timeframe(s) {', '.join(repr(t) for t in bad)}; expected a comma list of "
            + ", ".join(LIVE_TIMEFRAMES_DEFAULT)
        )
    return list(dict.fromkeys(parts))


def replay_command(args: argparse.Namespace) -> int:
    """To the Redis streams of ``live.events`` (the backend must be ``redis``); prints each batch.
    Every argument is checked before anything is read or published: one error line, exit 2."""
    from marketdata_assets.client import (
        _EXCHANGE_RE,
        MarketDataClient,
        MarketDataError,
        _checked,
        _checked_range,
        _checked_symbol,
    )
    from marketdata_assets.live.events import RedisStreamPublisher
    from marketdata_assets.live.replay import replay, replay_events
    from marketdata_assets.settings import load_settings
    from marketdata_assets.storage.root import StorageRoot

    try:
        _checked(args.exchange, _EXCHANGE_RE, "exchange")
        _checked_symbol(args.symbol.replace("-", "/") if "-" in args.symbol else args.symbol)
        _checked_range(args.start, args.end)
        settings = load_settings(args.config) if args.config else load_settings()
    except (SettingsError, MarketDataError) as exc:
        print(f"marketdata replay: {exc}", file=sys.stderr)
        return 2
    events_cfg = settings.live.events
    if events_cfg.backend != "redis":
        print("marketdata replay: live.events.backend is not redis: nowhere to publish", file=sys.stderr)
        return 2
    client = MarketDataClient(root=StorageRoot.from_uri(settings.storage_root))
    try:
        events = replay_events(client, args.exchange, args.symbol, args.start, args.end, args.timeframes)
    except MarketDataError as exc:  # nothing stored for that series / range: nothing published
        print(f"marketdata replay: {exc}", file=sys.stderr)
        return 2
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
