"""Backfill planning: which runs a request makes, and the errors for requests that cannot be planned."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest

from marketdata_assets.cli.backfill import BackfillError, PlannedRun, plan_backfill
from marketdata_assets.cli.main import ProgressBar, summary_table
from marketdata_assets.pipeline.ingest import PartitionOutcome
from marketdata_assets.settings import CONFIG_DIR, load_settings

NOW = datetime(2024, 2, 10, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def settings():
    return load_settings(CONFIG_DIR / "demo.yaml", environ={})


def test_default_is_yesterday_for_every_venue_symbol_and_currency(settings) -> None:
    runs = plan_backfill(settings, now=NOW)
    assert {(r.start, r.end) for r in runs} == {(date(2024, 2, 9), date(2024, 2, 9))}
    assert len(runs) == 3 * 3 + 2
    assert {r.venue for r in runs} == {"binance", "bybit", "okx", "deribit"}


def test_one_run_per_venue_symbol_over_the_range(settings) -> None:
    runs = plan_backfill(
        settings,
        venues=["binance"],
        symbols=["BTC/USDT", "ETHUSDT"],
        start=date(2024, 1, 1),
        end=date(2024, 1, 31),
        now=NOW,
    )
    assert [(r.venue, r.instrument, r.days) for r in runs] == [
        ("binance", "BTC/USDT", 31),
        ("binance", "ETH/USDT", 31),
    ]
    assert runs[0].asset_path == ("binance", "ohlcv_1m_raw")
    assert runs[0].range_tags()["dagster/asset_partition_range_start"] == "2024-01-01|BTCUSDT"
    assert runs[0].range_tags()["dagster/asset_partition_range_end"] == "2024-01-31|BTCUSDT"


def test_a_run_computes_the_served_layer_unless_raw_only(settings) -> None:
    (run,) = plan_backfill(settings, venues=["okx"], symbols=["BTC/USDT"], now=NOW)
    paths = ["/".join(p) for p in run.asset_paths]
    assert paths == [
        "okx/ohlcv_1m_raw",
        "okx/ohlcv_1m",
        "okx/gaps",
        *(f"okx/ohlcv_{tf}" for tf in ("5m", "15m", "1h", "4h", "1d")),
    ]
    (dvol, _) = plan_backfill(settings, venues=["deribit"], now=NOW)
    assert ["/".join(p) for p in dvol.asset_paths] == [
        "deribit/dvol_raw",
        "deribit/dvol_1m",
        "deribit/dvol_1h",
    ]
    (raw,) = plan_backfill(settings, venues=["okx"], symbols=["BTC/USDT"], now=NOW, layers="raw")
    assert raw.asset_paths == [("okx", "ohlcv_1m_raw")]
    with pytest.raises(BackfillError, match="unknown layers 'gold'"):
        plan_backfill(settings, now=NOW, layers="gold")


def test_dvol_keys_order_currency_first(settings) -> None:
    (run, _) = plan_backfill(
        settings, venues=["deribit"], start=date(2024, 1, 1), end=date(2024, 1, 2), now=NOW
    )
    assert run.range_tags()["dagster/asset_partition_range_start"] == "BTC|2024-01-01"
    assert run.range_tags()["dagster/asset_partition_range_end"] == "BTC|2024-01-02"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"venues": ["kraken"]}, r"unknown venue kraken; configured: binance, bybit, okx, deribit"),
        (
            {"symbols": ["DOGE/USDT"]},
            r"symbol 'DOGE/USDT' is not configured .*configured: BTC/USDT, ETH/USDT, SOL/USDT",
        ),
        (
            {"start": date(2024, 2, 5), "end": date(2024, 2, 1)},
            r"--start 2024-02-05 is after --end 2024-02-01",
        ),
        ({"end": date(2024, 2, 10)}, r"not a closed UTC day yet; the latest closed day is 2024-02-09"),
        ({"start": date(2023, 12, 31), "end": date(2024, 1, 2)}, r"binance partitions start on 2024-01-01"),
    ],
)
def test_requests_that_cannot_be_planned(settings, kwargs, message) -> None:
    with pytest.raises(BackfillError, match=message):
        plan_backfill(settings, now=NOW, **kwargs)


def test_progress_bar_and_summary_table() -> None:
    stream = io.StringIO()
    bar = ProgressBar(2, stream)
    ok = PartitionOutcome("binance", "BTC/USDT", date(2024, 1, 1), True, rows=1440, requests=2)
    bad = PartitionOutcome("binance", "BTC/USDT", date(2024, 1, 2), False, error="VenueError: down")
    bar.update(ok)
    bar.update(bad)
    bar.finish()
    assert (
        "2/2 partitions" in stream.getvalue()
        and "1,440 rows" in stream.getvalue()
        and "1 failed" in stream.getvalue()
    )

    from marketdata_assets.cli.backfill import RunResult

    run = PlannedRun("binance", ("binance", "ohlcv_1m_raw"), "BTC/USDT", date(2024, 1, 1), date(2024, 1, 2))
    table = summary_table([RunResult(run, "abcdef0123", False, "x", [ok, bad])]).splitlines()
    assert table[0].split()[:5] == ["venue", "symbol", "days", "ok", "failed"]
    assert table[2].split()[:6] == ["binance", "BTC/USDT", "2", "1", "1", "1,440"]


def test_a_long_range_is_split_into_runs_of_at_most_31_days_chunk_by_chunk(settings) -> None:
    now = datetime(2024, 12, 1, 12, tzinfo=UTC)
    runs = plan_backfill(
        settings,
        venues=["okx"],
        symbols=["BTC/USDT", "ETH/USDT"],
        start=date(2024, 1, 1),
        end=date(2024, 3, 10),
        now=now,
    )
    assert [(r.instrument, r.start, r.end) for r in runs] == [
        ("BTC/USDT", date(2024, 1, 1), date(2024, 1, 31)),
        ("ETH/USDT", date(2024, 1, 1), date(2024, 1, 31)),
        ("BTC/USDT", date(2024, 2, 1), date(2024, 3, 2)),
        ("ETH/USDT", date(2024, 2, 1), date(2024, 3, 2)),
        ("BTC/USDT", date(2024, 3, 3), date(2024, 3, 10)),
        ("ETH/USDT", date(2024, 3, 3), date(2024, 3, 10)),
    ]
    assert sum(r.days for r in runs) == 2 * 70
    # twenty years of one symbol: the first run is a month, so fetching starts at once
    years = plan_backfill(
        settings,
        venues=["binance"],
        symbols=["BTC/USDT"],
        start=date(2024, 1, 1),
        end=date(2024, 11, 30),
        now=now,
        max_days_per_run=7,
    )
    assert years[0].days == 7 and max(r.days for r in years) == 7 and sum(r.days for r in years) == 335


def test_the_summary_has_one_row_per_venue_and_symbol_over_its_runs() -> None:
    from marketdata_assets.cli.backfill import PlannedRun, RunResult

    outcome = PartitionOutcome("okx", "BTC/USDT", date(2024, 1, 1), True, rows=1440, requests=3)
    first = PlannedRun("okx", ("okx", "ohlcv_1m_raw"), "BTC/USDT", date(2024, 1, 1), date(2024, 1, 31))
    second = PlannedRun("okx", ("okx", "ohlcv_1m_raw"), "BTC/USDT", date(2024, 2, 1), date(2024, 2, 2))
    table = summary_table(
        [
            RunResult(first, "aaaaaaaa1", True, None, [outcome] * 31),
            RunResult(second, "bbbbbbbb2", True, None, [outcome] * 2),
        ]
    ).splitlines()
    assert len(table) == 3
    assert table[2].split() == [
        "okx",
        "BTC/USDT",
        "33",
        "33",
        "0",
        "47,520",
        "0",
        "0",
        "99",
        "0",
        "2",
        "runs",
    ]
