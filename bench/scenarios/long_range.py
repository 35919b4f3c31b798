"""``long_range``: a multi-year backfill of 3 Binance symbols, killed after a bounded time.

``marketdata backfill --venue binance --symbols BTC/USDT,ETH/USDT,SOL/USDT --start 2020-01-01
--end <yesterday> --raw-only`` against the simulator (limits off) and the plain ccxt script over the
same range, interleaved, each ended after ``BOUND_S`` seconds. Measured, sampling every 0.25 s:
seconds from process start to the simulator's first candle request (``/__sim/stats``, the candle
endpoint's count), partitions stored per second once requests flow (raw day files / plain 1m files
at the kill, over the time since the first candle request), candle requests per second, and memory
(peak summed VmRSS of the process tree; largest per-process VmHWM).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.common import (
    Row,
    ScenarioResult,
    Simulator,
    backfill_cmd,
    median,
    plain_cmd,
    project_env,
    run_measured,
    settings_file,
    timed_load,
)

NAME = "long_range"
DEFAULT_REPEATS = 1
VENUE = "binance"
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
START = date(2020, 1, 1)
BOUND_S = 60.0
QUICK_BOUND_S = 15.0
CANDLE_ENDPOINT = "klines"


def run(workdir: Path, repeats: int, quick: bool = False) -> ScenarioResult:
    result = ScenarioResult(NAME, repeats=repeats)
    bound = QUICK_BOUND_S if quick else BOUND_S
    end = datetime.now(UTC).date() - timedelta(days=1)
    partitions = ((end - START).days + 1) * len(SYMBOLS)
    samples: dict[str, list[dict]] = {"project": [], "plain": []}
    with timed_load(result), Simulator(workdir, limits=False) as sim:
        for rep in range(repeats):
            for side in ("project", "plain"):
                run_dir = workdir / f"{rep}-{side}"
                if side == "project":
                    settings = settings_file(
                        run_dir / "settings.yaml",
                        sim.url,
                        run_dir / "data",
                        venues={VENUE: SYMBOLS},
                        start=START,
                    )
                    env = project_env(settings, run_dir / "dagster_home", run_dir / "limits")
                    cmd = backfill_cmd(VENUE, SYMBOLS, START, end, raw_only=True)
                    stored = run_dir / "data" / "raw" / "ohlcv_1m"
                else:
                    env = None
                    cmd = plain_cmd(sim.url, VENUE, SYMBOLS, START, end, run_dir / "out")
                    stored = run_dir / "out" / "1m"
                before = sim.stats()[VENUE]["requests_by_endpoint"].get(CANDLE_ENDPOINT, 0)
                first: list[float] = []
                last_count = [0]
                t0 = time.perf_counter()

                def poll(
                    before: int = before,
                    first: list[float] = first,
                    last_count: list[int] = last_count,
                    t0: float = t0,
                ) -> None:
                    count = sim.stats()[VENUE]["requests_by_endpoint"].get(CANDLE_ENDPOINT, 0) - before
                    last_count[0] = count
                    if count > 0 and not first:
                        first.append(time.perf_counter() - t0)

                m = run_measured(
                    cmd,
                    env=env,
                    log=run_dir / "log.txt",
                    timeout_s=bound,
                    on_sample=poll,
                    sample_interval=0.5,
                )
                poll()
                files = sum(1 for _ in stored.rglob("*.parquet")) if stored.exists() else 0
                running_s = m.wall_s - first[0] if first else None
                samples[side].append(
                    {
                        "bound_s": bound,
                        "killed": m.killed,
                        "returncode": m.returncode,
                        "wall_s": round(m.wall_s, 2),
                        "cpu_s": round(m.cpu_s, 2),
                        "first_candle_request_s": round(first[0], 2) if first else None,
                        "candle_requests": last_count[0],
                        "partitions_stored": files,
                        "partitions_per_s": round(files / running_s, 2) if running_s else None,
                        "requests_per_s": round(last_count[0] / running_s, 2) if running_s else None,
                        "peak_tree_rss_mb": round(m.peak_tree_rss_mb, 1),
                        "peak_process_hwm_mb": round(m.peak_process_hwm_mb, 1),
                    }
                )
    p, b = samples["project"], samples["plain"]

    def med(side: list[dict], key: str) -> float | None:
        return median([s[key] for s in side])

    base = "plain ccxt+pandas"
    case = f"{START}..{end} x3, {bound:.0f}s cap"
    no_request = [s for s in p if s["first_candle_request_s"] is None]
    note = f"no candle request within {bound:.0f} s" if no_request else ""
    result.rows += [
        Row(
            NAME,
            case,
            "s to first candle request",
            "s",
            med(p, "first_candle_request_s"),
            med(b, "first_candle_request_s"),
            base,
            note,
        ),
        Row(
            NAME,
            case,
            "partitions/s once running",
            "1/s",
            med(p, "partitions_per_s"),
            med(b, "partitions_per_s"),
            base,
        ),
        Row(
            NAME,
            case,
            "partitions stored at cap",
            "n",
            med(p, "partitions_stored"),
            med(b, "partitions_stored"),
            base,
            f"of {partitions}",
        ),
        Row(
            NAME, case, "peak RSS of tree", "MB", med(p, "peak_tree_rss_mb"), med(b, "peak_tree_rss_mb"), base
        ),
    ]
    result.samples = {
        "runs": samples,
        "range": [START.isoformat(), end.isoformat()],
        "partitions": partitions,
    }
    return result
