"""``marketdata``: the terminal entry point.

    marketdata backfill [--venue binance,bybit] [--symbols BTC/USDT,ETH/USDT] [--start 2024-01-01] [--end 2024-01-31]
                        [--raw-only]

Materialises those partitions through Dagster against the configured instance (``DAGSTER_HOME``; the
runs appear in the UI): one run per venue x symbol fetches the raw days and computes the validated 1m,
the gap table and the 5m..1d candles (DVOL: 1m and 1h) with their checks; then one run refreshes every
venue's instruments (reference data) and one ``serving/catalog``. ``--raw-only`` fetches without computing anything downstream. Shows a progress bar
(fetched partitions), ends with a summary table, and exits non-zero when any partition failed, naming
them. Dates are UTC days, both ends inclusive; both default to yesterday (the latest closed day).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TextIO

from marketdata_assets.settings import PROJECT_DIR, SettingsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    """The ``marketdata`` parser (deployment tests check compose commands with it)."""
    return _parser()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marketdata", description="marketdata_assets command line")
    sub = parser.add_subparsers(dest="command")
    backfill = sub.add_parser(
        "backfill",
        help="materialise raw partitions for a date range x symbols through Dagster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backfill.add_argument(
        "--venue",
        "--venues",
        dest="venues",
        type=_comma_list,
        help="comma list: binance,bybit,okx,deribit (default: all)",
    )
    backfill.add_argument(
        "--symbols",
        type=_comma_list,
        help="comma list of unified symbols, e.g. BTC/USDT,ETH/USDT (default: all)",
    )
    backfill.add_argument("--start", type=_day, help="first UTC day, YYYY-MM-DD (default: --end)")
    backfill.add_argument("--end", type=_day, help="last UTC day, inclusive (default: yesterday)")
    backfill.add_argument("--config", help="settings file (default: config/$MARKETDATA_ENV.yaml)")
    backfill.add_argument(
        "--sequential", action="store_true", help="one venue at a time instead of in parallel"
    )
    backfill.add_argument(
        "--raw-only", action="store_true", help="fetch raw partitions only; compute nothing downstream"
    )
    backfill.set_defaults(handler=_backfill)
    from marketdata_assets.cli.live import add_parser as add_serve

    add_serve(sub)
    return parser


def _day(text: str) -> date:
    """``YYYY-MM-DD`` only (``date.fromisoformat`` would also take ``20240305``: one spelling, one
    meaning)."""
    try:
        if len(text) != 10 or text[4] != "-" or text[7] != "-":
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _comma_list(text: str) -> list[str]:
    """``a,b,a`` -> ``[a, b]`` (order kept, repeats dropped); an empty list is an error, not "all"."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise argparse.ArgumentTypeError(f"expected a comma list of names, got {text!r} (omit it for all)")
    if not all(parts):
        raise argparse.ArgumentTypeError(f"empty name in {text!r}")
    return list(dict.fromkeys(parts))


def _backfill(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr  # at call time: redirected streams are honoured
    if args.config:
        if "\x00" in args.config:  # os.environ and Path refuse it with a bare ValueError
            print(
                f"marketdata backfill: {args.config!r}: a settings file path cannot contain a NUL byte",
                file=err,
            )
            return EXIT_USAGE
        os.environ["MARKETDATA_CONFIG"] = str(Path(args.config).resolve())
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_DIR / "dagster_home"))
    from marketdata_assets.cli.backfill import (
        BackfillError,
        execute_runs,
        plan_backfill,
        quiet_dagster_warnings,
        refresh_catalog,
        refresh_instruments,
    )
    from marketdata_assets.settings import load_settings

    quiet_dagster_warnings()

    try:
        settings = load_settings()
        runs = plan_backfill(
            settings,
            venues=args.venues,
            symbols=args.symbols,
            start=args.start,
            end=args.end,
            layers="raw" if getattr(args, "raw_only", False) else "served",
        )
    except (SettingsError, BackfillError) as exc:
        print(f"marketdata backfill: {exc}", file=err)
        return EXIT_USAGE

    from marketdata_assets.cli.instance import fail_orphaned_runs, open_instance

    instance = open_instance()  # under a lock: creates the storage of a fresh DAGSTER_HOME once
    try:
        orphaned = fail_orphaned_runs(instance)
    finally:
        instance.dispose()
    if orphaned:
        print(
            f"Marked {len(orphaned)} run(s) of an earlier backfill whose process is gone as failed: "
            + ", ".join(run_id[:8] for run_id in orphaned),
            file=err,
        )

    total = sum(r.days for r in runs)
    print(
        f"Backfilling {total} partitions in {len(runs)} runs ({settings.environment} settings, "
        f"{min(r.start for r in runs)} .. {max(r.end for r in runs)}) into {settings.storage_root}",
        file=out,
    )
    print(f"Dagster instance: {os.environ['DAGSTER_HOME']}", file=out)
    bar = ProgressBar(total, err)
    results = execute_runs(runs, on_partition=bar.update, parallel_venues=not args.sequential)
    bar.finish()
    print(summary_table(results), file=out)
    if not getattr(args, "raw_only", False):
        reference = refresh_instruments([r.venue for r in runs])
        if reference is not None and reference.success:
            run_id = reference.run_id[:8] if reference.run_id else "-"
            print(f"Instruments refreshed (run {run_id}).", file=out)
        elif reference is not None:
            results.append(reference)
        catalog = refresh_catalog()
        if catalog is not None and catalog.success:
            print(f"Catalog refreshed (run {catalog.run_id[:8] if catalog.run_id else '-'}).", file=out)
        elif catalog is not None:
            results.append(catalog)
    failed = [o for r in results for o in r.outcomes if not o.ok]
    broken_runs = [r for r in results if not r.success and not any(not o.ok for o in r.outcomes)]
    if failed:
        print(f"\n{len(failed)} partition(s) failed:", file=out)
        for o in failed:
            print(f"  {o.venue} {o.instrument} {o.day}: {o.error}", file=out)
    if broken_runs:  # failed without naming a partition: the run itself (could not start, a step broke)
        print(f"\n{len(broken_runs)} run(s) failed:", file=out)
        for r in broken_runs:
            print(
                f"  run {r.run_id or '(not started)'} for {r.run.venue} {r.run.instrument} failed: {r.error}",
                file=out,
            )
    if failed or broken_runs:
        return EXIT_FAILED
    print(f"\nAll {total} partitions materialised. Files under {settings.storage_root}", file=out)
    return EXIT_OK


class ProgressBar:
    """A one-line progress bar (tqdm): partitions done, rows, failures, elapsed and ETA; redrawn in place
    on a TTY, a line every 2 seconds in a log."""

    def __init__(self, total: int, stream: TextIO) -> None:
        from tqdm import tqdm

        self.rows = self.failed = self.done = 0
        self.total = total
        self.started = time.monotonic()
        self._first_done: float | None = None
        self._lock = threading.Lock()
        tty = stream.isatty()
        self._bar = tqdm(
            total=total,
            file=stream if tty else _Lines(stream),  # in a log: one line per update, not \r redraws
            unit="partition",
            dynamic_ncols=tty,
            ncols=None if tty else 100,
            mininterval=0.1 if tty else 2.0,
            smoothing=0.1,
            bar_format="[{bar:30}] {n_fmt}/{total_fmt} partitions  {desc}",
            ascii=" #",
        )
        self._bar.set_description_str(self._stats(), refresh=False)

    def _stats(self) -> str:
        return f"{self.rows:,} rows  {self.failed} failed  elapsed {_clock(time.monotonic() - self.started)}  ETA {self.eta()}"

    def eta(self) -> str:
        """Remaining time from the pace since the first partition finished (the start-up before it, imports
        and the first run's setup, says nothing about the pace), once three partitions are done."""
        if self.done >= self.total:
            return _clock(0)
        if self._first_done is None or self.done < 3:
            return "?"
        pace = (time.monotonic() - self._first_done) / (self.done - 1)
        return _clock(pace * (self.total - self.done))

    def update(self, outcome) -> None:  # noqa: ANN001 - PartitionOutcome
        with self._lock:
            self.rows += outcome.rows
            self.failed += 0 if outcome.ok else 1
            self.done += 1
            if self._first_done is None:
                self._first_done = time.monotonic()
            self._bar.set_description_str(self._stats(), refresh=False)
            self._bar.update(1)

    def finish(self) -> None:
        with self._lock:
            self._bar.refresh()
            self._bar.close()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class _Lines:
    """A stream for tqdm outside a terminal: each redraw becomes its own line (tqdm writes ``\r`` + line)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "")
        if text.strip():
            self.stream.write(text.rstrip("\n") + "\n")

    def flush(self) -> None:
        self.stream.flush()


def summary_table(results) -> str:  # noqa: ANN001 - Sequence[RunResult]
    """Per venue x instrument: partitions ok/failed, rows, missing minutes, duplicates, requests, retries."""
    header = (
        "venue",
        "symbol",
        "days",
        "ok",
        "failed",
        "rows",
        "missing min",
        "dupes",
        "requests",
        "retries",
        "run",
    )
    # one row per venue x instrument: a long range runs as several runs (chunks of days)
    grouped: dict[tuple[str, str], list] = {}
    for result in results:
        grouped.setdefault((result.run.venue, result.run.instrument), []).append(result)
    rows = []
    for (venue, instrument), group in grouped.items():
        outs = [o for r in group for o in r.outcomes]
        ok = [o for o in outs if o.ok]
        days = sum(r.run.days for r in group)
        run_ids = [(r.run_id or "-")[:8] for r in group]
        rows.append(
            (
                venue,
                instrument,
                str(days),
                str(len(ok)),
                str(days - len(ok)),
                f"{sum(o.rows for o in outs):,}",
                f"{sum(o.missing_minutes for o in ok):,}",
                str(sum(o.duplicates for o in outs)),
                str(sum(o.requests for o in outs)),
                str(sum(o.retries for o in outs)),
                run_ids[0] if len(run_ids) == 1 else f"{len(run_ids)} runs",
            )
        )
    from tabulate import tabulate

    align = ["left", "left", *["right"] * (len(header) - 2)]
    return tabulate(rows, headers=header, tablefmt="simple", colalign=align, disable_numparse=True)


if __name__ == "__main__":
    sys.exit(main())
