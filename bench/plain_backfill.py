"""The baseline of ``backfill_cpu`` and ``long_range``: what a plain script does with ccxt and pandas.

A stock ccxt client (default options; only ``urls['api']`` pointed at the simulator, from its
``GET /__sim/venues``) fetches each closed UTC day of 1m candles page by page, pandas resamples it to
5m/15m/1h/4h/1d (left-closed, left-labelled UTC bins: first/max/min/last/sum), and each day and
timeframe is written as one Parquet file (pyarrow defaults). No validation, no checks, no catalog,
no orchestration: the floor of "fetch, resample, store" in Python.

    python bench/plain_backfill.py --sim http://127.0.0.1:PORT --venue binance \
        --symbols BTC/USDT,ETH/USDT --start 2024-03-01 --end 2024-03-30 --out /tmp/plain
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import ccxt
import pandas as pd

TIMEFRAMES = {"5m": "5min", "15m": "15min", "1h": "1h", "4h": "4h", "1d": "1D"}
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
MINUTE_MS = 60_000
DAY_MS = 1440 * MINUTE_MS


def exchange_for(sim_url: str, venue: str) -> ccxt.Exchange:
    with urllib.request.urlopen(f"{sim_url}/__sim/venues", timeout=10) as resp:
        urls = json.loads(resp.read())[venue]["ccxt_api_urls"]
    exchange = getattr(ccxt, venue)()
    exchange.urls["api"].update(urls)
    return exchange


def fetch_day(exchange: ccxt.Exchange, symbol: str, day: date) -> pd.DataFrame:
    start = int(pd.Timestamp(day, tz="UTC").timestamp() * 1000)
    end = start + DAY_MS
    rows: list[list[float]] = []
    cursor = start
    while cursor < end:
        page = exchange.fetch_ohlcv(symbol, "1m", since=cursor, limit=1000)
        page = [r for r in page if start <= r[0] < end]
        if not page:
            break
        rows += page
        cursor = int(page[-1][0]) + MINUTE_MS
    frame = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
    frame = frame.drop_duplicates("timestamp", keep="last")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    return frame.set_index("timestamp").sort_index()


def write_day(out: Path, venue: str, symbol: str, day: date, minutes: pd.DataFrame) -> None:
    key = symbol.replace("/", "")
    frames = {"1m": minutes}
    for name, rule in TIMEFRAMES.items():
        frames[name] = minutes.resample(rule, label="left", closed="left").agg(AGG).dropna(subset=["open"])
    for name, frame in frames.items():
        path = out / name / venue / key / f"{day.isoformat()}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.reset_index().to_parquet(path, index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sim", required=True)
    parser.add_argument("--venue", default="binance")
    parser.add_argument("--symbols", required=True)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    exchange = exchange_for(args.sim, args.venue)
    days = [args.start + timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    rows = 0
    for symbol in args.symbols.split(","):
        for day in days:
            minutes = fetch_day(exchange, symbol, day)
            write_day(args.out, args.venue, symbol, day, minutes)
            rows += len(minutes)
    print(f"{len(days)} days x {len(args.symbols.split(','))} symbols, {rows} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
