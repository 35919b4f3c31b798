"""What `marketdata backfill` tells the user: failed runs vs failed partitions, days held back by a
check, the real cause of a step failure, and option values that cannot mean "everything"."""

from __future__ import annotations

import argparse
import io
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dagster import Failure, job, op

from marketdata_assets.cli import backfill as backfill_module
from marketdata_assets.cli import main as cli
from marketdata_assets.cli.backfill import (
    PlannedRun,
    RunResult,
    held_back_days,
    mark_held_back,
    plan_backfill,
    step_error_message,
)
from marketdata_assets.pipeline.ingest import PartitionOutcome
from marketdata_assets.settings import CONFIG_DIR, load_settings

DAY = date(2024, 3, 5)
RUN = PlannedRun("okx", ("okx", "ohlcv_1m_raw"), "BTC/USDT", DAY, DAY)
HELD_BACK = (
    "1 of 1 partitions failed (0 succeeded and were recorded):\n"
    "- 2024-03-05 BTCUSDT: not resampled: validated schema check fails: 1 row(s) quarantined"
)


def fetched(day: date = DAY) -> PartitionOutcome:
    return PartitionOutcome("okx", "BTC/USDT", day, True, rows=1440, requests=3)


def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, results: list[RunResult]) -> tuple[int, str]:
    """`marketdata backfill --venue okx` with execute_runs answering ``results``."""
    config = tmp_path / "cfg.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            environment: msgtest
            storage:
              root: {tmp_path / "data"}
            venues:
              okx:
                symbols: [BTC/USDT]
                start_date: 2024-01-01
            """
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setattr(backfill_module, "execute_runs", lambda runs, **_: results)
    monkeypatch.setattr(backfill_module, "refresh_catalog", lambda: None)
    monkeypatch.setattr(backfill_module, "refresh_instruments", lambda venues: None)
    out, err = io.StringIO(), io.StringIO()
    args = cli._parser().parse_args(
        [
            "backfill",
            "--venue",
            "okx",
            "--config",
            str(config),
            "--start",
            "2024-03-05",
            "--end",
            "2024-03-05",
        ]
    )
    code = cli._backfill(args, out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def test_a_run_that_failed_without_a_partition_failure_is_a_failed_run_not_0_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = RunResult(
        RUN, "abcdef0123", False, "NotADirectoryError: [Errno 20] Not a directory", [fetched()]
    )
    code, output = run_cli(tmp_path, monkeypatch, [broken])
    assert code == cli.EXIT_FAILED
    assert "0 partition(s) failed" not in output
    assert "1 run(s) failed:" in output
    assert "run abcdef0123 for okx BTC/USDT failed: NotADirectoryError: [Errno 20] Not a directory" in output


def test_a_day_held_back_by_a_check_counts_as_failed_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = date(2024, 3, 6)
    assert held_back_days([HELD_BACK, None]) == {
        DAY: "not resampled: validated schema check fails: 1 row(s) quarantined"
    }
    outcomes = mark_held_back([fetched(), fetched(other)], held_back_days([HELD_BACK]))
    assert [o.ok for o in outcomes] == [False, True]
    run = PlannedRun("okx", ("okx", "ohlcv_1m_raw"), "BTC/USDT", DAY, other)
    table = cli.summary_table([RunResult(run, "abcdef0123", False, "x", outcomes)]).splitlines()
    assert table[2].split()[:5] == ["okx", "BTC/USDT", "2", "1", "1"]  # ok=1, failed=1

    held = RunResult(
        RUN, "abcdef0123", False, "1 of 1 partitions failed", mark_held_back([fetched()], {DAY: "x"})
    )
    code, output = run_cli(tmp_path, monkeypatch, [held])
    assert code == cli.EXIT_FAILED
    assert "1 partition(s) failed:\n  okx BTC/USDT 2024-03-05: x" in output
    assert "run(s) failed" not in output


def test_a_failed_step_shows_the_underlying_cause_not_dagsters_wrapper() -> None:
    @op
    def write_to_a_bad_root() -> None:
        raise NotADirectoryError(20, "Not a directory", "/data/raw")

    @op
    def hold_back() -> None:
        raise Failure(description=HELD_BACK)

    @job
    def bad_root() -> None:
        write_to_a_bad_root()

    @job
    def held() -> None:
        hold_back()

    def message(job_def) -> str:  # noqa: ANN001
        result = job_def.execute_in_process(raise_on_error=False)
        [failure] = [e.step_failure_data for e in result.all_events if e.is_step_failure]
        return step_error_message(failure.error)

    assert message(bad_root) == "NotADirectoryError: [Errno 20] Not a directory: '/data/raw'"
    assert message(held) == HELD_BACK


@pytest.mark.parametrize("option", ["--venue", "--symbols"])
@pytest.mark.parametrize("value", ["", " ", ","])
def test_an_empty_list_option_is_an_error_naming_it(option: str, value: str, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as exited:
        cli.main(["backfill", option, value])
    assert exited.value.code == cli.EXIT_USAGE
    assert f"argument {option}" in capsys.readouterr().err


def test_a_repeated_venue_or_symbol_runs_once_in_the_given_order() -> None:
    args = cli._parser().parse_args(
        ["backfill", "--venue", "okx,binance,okx", "--symbols", "ETH/USDT,BTC/USDT,ETH/USDT"]
    )
    assert args.venues == ["okx", "binance"] and args.symbols == ["ETH/USDT", "BTC/USDT"]
    with pytest.raises(argparse.ArgumentTypeError, match="empty name"):
        cli._comma_list("okx,,binance")

    settings = load_settings(CONFIG_DIR / "demo.yaml", environ={})
    now = datetime(2024, 2, 10, 12, tzinfo=UTC)
    runs = plan_backfill(settings, venues=["okx", "binance", "okx"], symbols=["BTC/USDT"], now=now)
    assert [(r.venue, r.instrument) for r in runs] == [("okx", "BTC/USDT"), ("binance", "BTC/USDT")]
