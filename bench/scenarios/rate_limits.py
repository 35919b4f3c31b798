"""``rate_limits``: every venue at its real published limits; wall time against the floor they allow.

The simulator with ``limits_enabled`` (each venue's real numbers, breach answers and bans);
``marketdata backfill --raw-only`` of ``DAYS`` days x 3 symbols on Binance, Bybit and OKX plus BTC
and ETH DVOL, with the project's defaults (the shared budget at 80% of each limit), in its own
rate-limit state directory. Measured: wall, requests per venue (simulator stats), limit breaches.

The floor: the fewest requests each venue needs (page arithmetic: a day is 1440 candles; Binance and
Bybit pages hold 1000, OKX history-candles 100, Deribit DVOL 1000 points), priced at the venue's
published budget (``venues/limiter.py``: Binance 6000 weight / 60 s with klines weight 2, Bybit 600
requests / 5 s, OKX history-candles 20 / 2 s, Deribit 20 / s). A fresh bucket lets ``limit`` units
through at once, then ``limit`` per window: floor = max(0, cost - limit) / limit * window. Venues run
in parallel, so the floor of the backfill is the largest venue's. Reported at 100% of the limits and
at the project's 80% (``shared_rate_limit.safety``); process start and Dagster's per-run cost sit on
top of it. Run once: the numbers are set by the limits, not by the CPU.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

from bench.common import (
    Row,
    ScenarioResult,
    Simulator,
    backfill_cmd,
    project_env,
    run_measured,
    settings_file,
    timed_load,
)

NAME = "rate_limits"
DEFAULT_REPEATS = 1
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
DVOL = ["BTC", "ETH"]
START = date(2024, 3, 1)
DAYS = 30  # the size: the OKX history-candles floor is ~2 min, so fixed costs do not hide the ratio
SAFETY = 0.8
# venue -> (rows per page, cost per candle request, limit, window_s) of the venue's main bucket
BUDGETS = {
    "binance": (1000, 2, 6000, 60.0),
    "bybit": (1000, 1, 600, 5.0),
    "okx": (100, 1, 20, 2.0),
    "deribit": (1000, 1, 20, 1.0),
}


def floor_s(venue: str, series: int, days: int, safety: float = 1.0) -> tuple[int, float]:
    """(requests needed, seconds the venue's budget needs to let them through)."""
    page, cost, limit, window = BUDGETS[venue]
    requests = series * days * math.ceil(1440 / page)
    limit *= safety
    return requests, max(0.0, requests * cost - limit) / limit * window


def run(workdir: Path, repeats: int, quick: bool = False) -> ScenarioResult:
    result = ScenarioResult(NAME, repeats=1)
    days = 1 if quick else DAYS
    symbols = SYMBOLS[:1] if quick else SYMBOLS
    end = START + timedelta(days=days - 1)
    venues = {v: symbols for v in ("binance", "bybit", "okx")}
    with timed_load(result), Simulator(workdir, limits=True) as sim:
        settings = settings_file(
            workdir / "settings.yaml", sim.url, workdir / "data", venues=venues, start=START, dvol=DVOL
        )
        env = project_env(settings, workdir / "dagster_home", workdir / "limits")
        cmd = backfill_cmd("binance,bybit,okx,deribit", symbols, START, end, raw_only=True)
        cmd[cmd.index("--symbols") : cmd.index("--symbols") + 2] = []  # every configured symbol + DVOL
        m = run_measured(cmd, env=env, log=workdir / "log.txt")
        stats = sim.stats()
    if m.returncode != 0:
        result.notes.append(f"backfill exited {m.returncode}: see {m.log}")
    needed, floors, floors_safe = {}, {}, {}
    for venue in BUDGETS:
        series = len(DVOL) if venue == "deribit" else len(symbols)
        needed[venue], floors[venue] = floor_s(venue, series, days)
        floors_safe[venue] = floor_s(venue, series, days, SAFETY)[1]
    floor, floor_safe = max(floors.values()), max(floors_safe.values())
    breaches = sum(v["limit_breaches"] for v in stats.values())
    sent = {v: stats[v]["requests"] for v in BUDGETS}
    case = f"{days}d x {len(symbols)} sym x 3 venues + DVOL x2"
    result.rows += [
        Row(
            NAME,
            case,
            "wall s",
            "s",
            m.wall_s,
            floor,
            "floor at 100% of limits",
            f"floor at 80%: {floor_safe:.1f} s",
        ),
        Row(NAME, case, "limit breaches", "n", breaches, 0, "zero"),
        Row(
            NAME,
            case,
            "requests sent",
            "n",
            sum(sent.values()),
            sum(needed.values()),
            "fewest needed",
            ", ".join(f"{v} {sent[v]}/{needed[v]}" for v in BUDGETS),
        ),
    ]
    result.samples = {
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "floor_s_by_venue": floors,
        "floor_s_by_venue_at_80pct": floors_safe,
        "requests_needed": needed,
        "simulator_stats": stats,
    }
    return result
