"""``marketdata-sim``: run the local exchange simulator in the foreground (or ``--self-check`` it).

    marketdata-sim --host 127.0.0.1 --port 8900 [--seed N] [--replay VENUE:SYMBOL=PATH ...]
                   [--no-limits] [--limit-scale X] [--fault SPEC ...] [--port-file PATH]

It prints the base URL of every venue, writes the server URL to ``--port-file`` once listening
(``--port 0`` picks a free port), and serves until interrupted (Ctrl-C / SIGTERM). It binds
loopback addresses only, unless ``--allow-non-loopback``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from marketdata_assets.universe import VENUES

if TYPE_CHECKING:  # pragma: no cover
    from .config import SimulatorConfig

FAULT_HELP = """\
fault specs (--fault, repeatable):  VENUE:KIND[:key=value,...]
  VENUE   binance | bybit | okx | deribit | *
  KIND    http500 (any httpNNN; or http:status=NNN; retry_after=TEXT: that Retry-After header, as given)
          slow (delay=SECONDS, default 30)
          drop (close the connection)  truncate (keep=0.5 of the body)  html (status=502)
          maintenance (the venue's 503 maintenance answer)
          duplicates (rows=1, mode=edge|inside)  out_of_order  invalid (what=high_lt_low|negative_volume|nan, rows=1)
          revised (factor=1.001: candles already served come back changed)
          outage (no candles in start..end; or rate=P: each day a 5-180 min outage with probability P)
  keys    symbol=BTC/USDT (deribit: BTC)  endpoint=klines|kline|candles|history-candles|...|ohlcv
          rate=0.2 (fraction of matching requests)  count=N (next N matching requests)
          start=2024-01-02T03:00,end=2024-01-02T05:00 or day=2024-01-02 (UTC; request faults: the
          simulator clock; data faults: candle open time)
  e.g.    binance:http500:rate=0.2   okx:duplicates   bybit:outage:start=2024-01-02T03:00,end=2024-01-02T05:00

replay (--replay, repeatable):  VENUE:SYMBOL=PATH  (deribit: deribit:BTC=PATH)
  1m candles, exactly the recorded rows served; layout and time unit recognised from the data:
  Binance archive   BTCUSDT-1m-2024-01-01.zip or .csv (12 columns, open time in ms, or us since 2025)
  freqtrade         PAIR-1m.feather/.parquet (date column), PAIR-1m.json/.json.gz ([[date_ms,o,h,l,c,v],...])
  LEAN minute       20240101_trade.zip holding 20240101_btcusdt_minute_trade.csv, or that csv:
                    ms_since_midnight,o,h,l,c,v (UTC; the day from the YYYYMMDD_ file name)
  CSV with header   timestamp|date|datetime|time|ts|open_time,open,high,low,close,volume; ISO text
                    (naive = UTC) or epoch seconds/ms/us/ns (unit by magnitude); Parquet/Feather alike
  Refused with one error naming the file: a timestamp magnitude fitting no unit, a LEAN file without
  its date, timestamps off whole minutes, before 2009 or in the future, rows spaced like 5m candles.

control API on the same port: GET /__sim/stats, POST /__sim/stats/reset, GET /__sim/venues,
GET|POST|DELETE /__sim/faults, DELETE /__sim/faults/{id}, POST /__sim/limits/reset
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketdata-sim",
        description="Local exchange simulator: Binance, Bybit, OKX spot 1m candles and Deribit DVOL over HTTP.",
        epilog=FAULT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    parser.add_argument(
        "--port", type=int, default=8900, help="port to bind; 0 picks a free one (default 8900)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic market and fault decisions"
    )
    parser.add_argument(
        "--replay", action="append", default=[], metavar="VENUE:SYMBOL=PATH", help="serve recorded rows"
    )
    parser.add_argument("--no-limits", action="store_true", help="switch every rate limit off (benchmarks)")
    parser.add_argument(
        "--limit-scale", type=float, default=1.0, help="multiply every allowance (0.1 = 10x fewer)"
    )
    parser.add_argument(
        "--window-scale", type=float, default=1.0, help="multiply every rate-limit window length"
    )
    parser.add_argument("--ban-scale", type=float, default=1.0, help="multiply ban durations")
    parser.add_argument(
        "--ban-after-strikes",
        type=int,
        default=3,
        help="requests tolerated during a back-off before an IP ban",
    )
    parser.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="inject a fault (see below)"
    )
    parser.add_argument(
        "--no-trade-rate",
        action="append",
        default=[],
        metavar="[VENUE:]SYMBOL=RATE",
        help="minutes without trades",
    )
    parser.add_argument(
        "--dvol-minute-days",
        type=int,
        default=None,
        help="how many days back 1-minute DVOL reaches (default: all)",
    )
    parser.add_argument("--port-file", type=Path, help="write the server URL here once listening")
    parser.add_argument(
        "--allow-non-loopback", action="store_true", help="allow binding a non-loopback address"
    )
    parser.add_argument(
        "--self-check", action="store_true", help="run the end-to-end self-check and exit 0/1"
    )
    return parser


def _config(args: argparse.Namespace) -> SimulatorConfig:
    from .config import ReplaySource, SimulatorConfig
    from .faults import parse_fault

    rates = {}
    for item in args.no_trade_rate:
        key, sep, value = item.rpartition("=")
        if not sep or not key:
            raise ValueError(f"--no-trade-rate must look like [VENUE:]SYMBOL=RATE, got {item!r}")
        rates[key.strip()] = float(value)
    return SimulatorConfig(
        seed=args.seed,
        limits_enabled=not args.no_limits,
        limit_scale=args.limit_scale,
        window_scale=args.window_scale,
        ban_scale=args.ban_scale,
        ban_after_strikes=args.ban_after_strikes,
        replay=[ReplaySource.parse(spec) for spec in args.replay],
        faults=[parse_fault(spec) for spec in args.fault],
        no_trade_rates=rates,
        dvol_minute_history_days=args.dvol_minute_days,
    )


def _write_port_file(path: Path, url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(url + "\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .server import SimulatorServer, is_loopback

    if not args.allow_non_loopback and not is_loopback(args.host):
        print(
            f"marketdata-sim: refusing to bind {args.host!r}: only loopback addresses "
            "(127.0.0.1, ::1, localhost) unless --allow-non-loopback",
            file=sys.stderr,
        )
        return 2
    try:
        config = _config(args)
    except (ValueError, OSError) as exc:
        print(f"marketdata-sim: {exc}", file=sys.stderr)
        return 2
    if args.self_check:
        from .selfcheck import run_self_check

        config.faults = ()
        return 0 if run_self_check(config) else 1

    try:
        server = SimulatorServer(
            config, host=args.host, port=args.port, allow_non_loopback=args.allow_non_loopback
        )
        server.start()
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"marketdata-sim: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(
            f"marketdata-sim listening on {server.url} (seed {config.seed}, limits {'on' if config.limits_enabled else 'off'})"
        )
        for venue in VENUES:
            print(f"  {venue:<8} {server.venue_base_url(venue)}")
        for fault in server.faults():
            print(f"  fault #{fault.id}: {fault.spec}")
        print(
            f"  control  {server.url}/__sim/stats  {server.url}/__sim/venues  {server.url}/__sim/faults",
            flush=True,
        )
        if args.port_file:
            _write_port_file(args.port_file, server.url)
        while not stop.wait(0.5):
            if not server.running:
                print("marketdata-sim: the server stopped unexpectedly", file=sys.stderr)
                return 1
        return 0
    finally:
        server.stop()
        if args.port_file and args.port_file.exists():
            args.port_file.unlink()


if __name__ == "__main__":
    sys.exit(main())
