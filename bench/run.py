"""``make bench``: run the scenarios, print one table, write ``bench/results/latest.json``.

    python -m bench.run                      # every scenario (~8 min on 2 cores)
    python -m bench.run --scenario read      # one (comma list for several); merged into latest.json
    python -m bench.run --quick              # tiny sizes, 1 repeat: does every scenario's code run?

Each scenario runs the project and its baseline or floor interleaved in the same process (A B A B),
reports medians and ratios (project / baseline: below 1 the project is cheaper) and the load average
before and after it. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BENCH_DIR, ScenarioResult, load, machine, now_utc, versions

SCENARIOS = ["backfill_cpu", "long_range", "rate_limits", "read", "storage", "resample", "live"]
RESULTS = BENCH_DIR / "results"


def run_scenario(name: str, repeats: int | None, quick: bool, keep: bool) -> dict:
    module = importlib.import_module(f"bench.scenarios.{name}")
    repeats = 1 if quick else (repeats or module.DEFAULT_REPEATS)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    print(f"== {name}: {repeats} repeat(s){' (quick)' if quick else ''}, load {load()}", file=sys.stderr)
    result: ScenarioResult = module.run(workdir, repeats, quick)
    failed = any("exited" in note for note in result.notes)
    if keep or failed:
        result.notes.append(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"   done in {result.seconds:.0f} s, load {result.load_after}", file=sys.stderr)
    return {
        "date": now_utc(),
        "quick": quick,
        "repeats": result.repeats,
        "seconds": result.seconds,
        "load_before": result.load_before,
        "load_after": result.load_after,
        "rows": [row.to_json() for row in result.rows],
        "notes": result.notes,
        "samples": result.samples,
    }


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "n" or (isinstance(value, int) and not isinstance(value, bool)):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(report: dict) -> str:
    from tabulate import tabulate

    lines = [
        f"marketdata_assets benchmarks, {report['date']}",
        f"machine: {report['machine']['cpu_model']}, {report['machine']['cpu_count']} CPUs; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
    ]
    rows = []
    for name, scen in report["scenarios"].items():
        lines.append(
            f"{name}: {scen['date']}, {scen['repeats']} repeat(s), {scen['seconds']:.0f} s, "
            f"load {scen['load_before'][0]:.2f} -> {scen['load_after'][0]:.2f} (1-min avg)"
            + (" QUICK" if scen.get("quick") else "")
        )
        for r in scen["rows"]:
            ratio = r["ratio"]
            rows.append(
                (
                    name,
                    r["case"],
                    r["metric"],
                    fmt(r["project"], r["unit"]),
                    fmt(r["baseline"], r["unit"]),
                    r["baseline_name"],
                    "-" if ratio is None else f"{ratio:.2f}x",
                    r["note"],
                )
            )
        for note in scen["notes"]:
            lines.append(f"  note: {note}")
    header = ("scenario", "case", "metric", "project", "baseline", "baseline/floor", "ratio", "note")
    return (
        "\n".join(lines) + "\n\n" + tabulate(rows, headers=header, tablefmt="github", disable_numparse=True)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", help=f"comma list of: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--repeats", type=int, help="override every scenario's repeat count")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (results/quick.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work directories (logs, data)")
    args = parser.parse_args(argv)
    chosen = args.scenario.split(",") if args.scenario else SCENARIOS
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; expected {', '.join(SCENARIOS)}")
    out = RESULTS / ("quick.json" if args.quick else "latest.json")
    report = {"date": now_utc(), "machine": machine(), "versions": versions(), "scenarios": {}}
    if out.exists() and args.scenario:  # one scenario: merged into the last full report
        previous = json.loads(out.read_text())
        report["scenarios"] = {k: v for k, v in previous.get("scenarios", {}).items() if k in SCENARIOS}
    t0 = time.perf_counter()
    for name in chosen:
        report["scenarios"][name] = run_scenario(name, args.repeats, args.quick, args.keep)
    report["scenarios"] = {k: report["scenarios"][k] for k in SCENARIOS if k in report["scenarios"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(table(report))
    print(
        f"\n{len(chosen)} scenario(s) in {time.perf_counter() - t0:.0f} s; written to {out.relative_to(BENCH_DIR.parent)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
