"""``backfill_cpu``: the whole chain through ``marketdata backfill`` vs a plain ccxt + pandas script.

Both run as subprocesses against one simulator process (limits off; its CPU is not counted), at two
sizes (1 symbol x 1 day, 3 symbols x 30 days of Binance), interleaved: project, plain, project,
plain ... CPU is the user + system time of the whole process tree (``RUSAGE_CHILDREN`` deltas, so
Dagster's step processes count), wall is ``perf_counter``. From the two sizes: marginal CPU per
(symbol, day) = (cpu_big - cpu_small) / (90 - 1), fixed cost = cpu_small - marginal.
Each project run gets a fresh data root (a backfill of days not yet stored); the Dagster instance is
created once per scenario by an untimed warm-up run of each side, which also warms the page cache.

A third side, ``bench/dagster_floor.py``, runs Dagster alone in the same shape (the same partitioned assets
and day checks, runs of 31 days per symbol, in-process, SQLite) with empty bodies: its marginal CPU per
symbol-day is what Dagster's bookkeeping costs whatever our code does; the project's minus it is ours.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from bench.common import (
    PYTHON,
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

NAME = "backfill_cpu"
DEFAULT_REPEATS = 2
VENUE = "binance"
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
START = date(2024, 3, 1)


def sizes(quick: bool) -> dict[str, tuple[int, int]]:
    """case -> (symbols, days)."""
    return {"1x1": (1, 1), "1x2": (1, 2)} if quick else {"1x1": (1, 1), "3x30": (3, 30)}


def run(workdir: Path, repeats: int, quick: bool = False) -> ScenarioResult:
    result = ScenarioResult(NAME, repeats=repeats)
    cases = sizes(quick)
    sides = ("project", "plain", "dagster")
    samples: dict[str, dict[str, list[dict]]] = {c: {side: [] for side in sides} for c in cases}
    with timed_load(result), Simulator(workdir, limits=False) as sim:
        n = 0

        def one(side: str, case: str, symbols: int, days: int, record: bool) -> None:
            nonlocal n
            n += 1
            syms = SYMBOLS[:symbols]
            end = START + timedelta(days=days - 1)
            run_dir = workdir / f"{n:02d}-{side}-{case}"
            if side == "project":
                settings = settings_file(
                    run_dir / "settings.yaml", sim.url, run_dir / "data", venues={VENUE: SYMBOLS}, start=START
                )
                env = project_env(settings, workdir / "dagster_home", workdir / "limits")
                cmd = backfill_cmd(VENUE, syms, START, end, raw_only=False)
            elif side == "dagster":  # Dagster alone in the same shape, bodies empty (bench/dagster_floor.py)
                env = None
                cmd = [PYTHON, "-m", "bench.dagster_floor", "--symbols", str(symbols), "--days", str(days)]
                cmd += ["--start", START.isoformat(), "--home", str(workdir / "dagster_floor_home")]
            else:
                env, cmd = None, plain_cmd(sim.url, VENUE, syms, START, end, run_dir / "out")
            before = sim.stats()[VENUE]["requests"]
            m = run_measured(cmd, env=env, log=run_dir / "log.txt", sample_interval=1.0)
            if m.returncode != 0:
                result.notes.append(f"{side} {case} run {n} exited {m.returncode}: see {m.log}")
            if record:
                samples[case][side].append(
                    {
                        "wall_s": round(m.wall_s, 3),
                        "cpu_s": round(m.cpu_s, 3),
                        "ok": m.returncode == 0,
                        "requests": sim.stats()[VENUE]["requests"] - before,
                        "peak_tree_rss_mb": round(m.peak_tree_rss_mb, 1),
                    }
                )

        for side in sides:
            one(side, "warmup", 1, 1, record=False)
        for _ in range(repeats):
            for case, (symbols, days) in cases.items():
                for side in sides:
                    one(side, case, symbols, days, record=True)

    med = {
        case: {
            side: {k: median([s[k] for s in runs]) for k in ("wall_s", "cpu_s", "peak_tree_rss_mb")}
            for side, runs in sides.items()
        }
        for case, sides in samples.items()
    }
    for case in cases:
        p, b = med[case]["project"], med[case]["plain"]
        result.rows.append(Row(NAME, case, "CPU s (tree)", "s", p["cpu_s"], b["cpu_s"], "plain ccxt+pandas"))
        result.rows.append(Row(NAME, case, "wall s", "s", p["wall_s"], b["wall_s"], "plain ccxt+pandas"))
    (small, (s1, d1)), (big, (s2, d2)) = list(cases.items())
    units = s2 * d2 - s1 * d1
    marginal, fixed = {}, {}
    for side in sides:
        c1, c2 = med[small][side]["cpu_s"], med[big][side]["cpu_s"]
        marginal[side] = (c2 - c1) / units
        fixed[side] = c1 - marginal[side] * s1 * d1
    for baseline, label in (("plain", "plain ccxt+pandas"), ("dagster", "Dagster alone, same assets+checks")):
        per_day = "CPU s per symbol-day"
        result.rows.append(
            Row(NAME, "marginal", per_day, "s", marginal["project"], marginal[baseline], label)
        )
    result.rows.append(
        Row(NAME, "fixed", "CPU s per backfill", "s", fixed["project"], fixed["plain"], "plain ccxt+pandas")
    )
    result.rows.append(
        Row(
            NAME,
            big,
            "peak RSS of tree",
            "MB",
            med[big]["project"]["peak_tree_rss_mb"],
            med[big]["plain"]["peak_tree_rss_mb"],
            "plain ccxt+pandas",
        )
    )
    result.samples = {"runs": samples, "medians": med, "marginal_cpu_s": marginal, "fixed_cpu_s": fixed}
    return result
