"""The automation's decisions without Dagster: nightly batches, scan windows, batching, backoff."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from marketdata_assets.pipeline.plan import (
    Backoff,
    Day,
    GapPolicy,
    Reason,
    Series,
    batch_days,
    nightly_batch,
    plan_gap_backfill,
    scan_window,
)

BINANCE = Series("binance", ("BTCUSDT", "ETHUSDT", "SOLUSDT"), date(2024, 3, 1))
DVOL = Series("deribit", ("BTC", "ETH"), date(2024, 3, 1))
D = date(2024, 3, 10)
HOUR = 3600.0


def days(series: Series, instruments: str, first: date, last: date) -> list[Day]:
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [Day(series.venue, inst, d) for inst in instruments.split(",") for d in span]


def test_nightly_is_yesterday_for_every_instrument_in_one_range() -> None:
    batch = nightly_batch(BINANCE, datetime(2024, 3, 11, 0, 15, tzinfo=UTC))
    assert batch is not None
    assert (batch.start, batch.end, batch.instruments) == (D, D, BINANCE.instruments)
    assert (batch.range_start, batch.range_end) == ("2024-03-10|BTCUSDT", "2024-03-10|SOLUSDT")
    dvol = nightly_batch(DVOL, datetime(2024, 3, 11, 0, 15, tzinfo=UTC))
    assert dvol is not None and (dvol.range_start, dvol.range_end) == ("BTC|2024-03-10", "ETH|2024-03-10")
    assert nightly_batch(BINANCE, datetime(2024, 3, 1, 0, 15, tzinfo=UTC)) is None  # before start_date


def test_scan_window_leaves_the_fresh_day_to_the_nightly_schedule_during_the_grace() -> None:
    policy = GapPolicy(lookback_days=5, nightly_grace_minutes=120)
    early = scan_window(policy, datetime(2024, 3, 11, 1, 0, tzinfo=UTC))
    late = scan_window(policy, datetime(2024, 3, 11, 2, 0, tzinfo=UTC))
    assert early.last == date(2024, 3, 9) and late.last == D
    assert late.outage_from == date(2024, 3, 6) and late.missing_from is None
    assert late.first_for(BINANCE) == BINANCE.start_date
    no_history = scan_window(
        GapPolicy(lookback_days=5, history_backfill=False), datetime(2024, 3, 11, 3, tzinfo=UTC)
    )
    assert no_history.first_for(BINANCE) == date(2024, 3, 6)


def test_batches_are_rectangles_of_adjacent_symbols_with_the_same_days() -> None:
    wanted = days(BINANCE, "BTCUSDT,ETHUSDT,SOLUSDT", date(2024, 3, 1), date(2024, 3, 10))
    [one] = batch_days(BINANCE, wanted, 31)
    assert one.instruments == BINANCE.instruments and (one.start, one.end) == (date(2024, 3, 1), D)
    assert sorted(one.days) == sorted(wanted)

    # BTC and SOL miss the same day but are not adjacent: a range would include ETH, so two runs
    split = batch_days(BINANCE, days(BINANCE, "BTCUSDT,SOLUSDT", D, D), 31)
    assert [b.instruments for b in split] == [("BTCUSDT",), ("SOLUSDT",)]


def test_batches_cut_long_ranges_from_the_configured_end() -> None:
    wanted = days(BINANCE, "ETHUSDT", date(2024, 3, 1), D) + days(
        BINANCE, "ETHUSDT", date(2024, 3, 20), date(2024, 3, 21)
    )
    newest = batch_days(BINANCE, wanted, 4, newest_first=True)
    assert [(b.start.day, b.end.day) for b in newest] == [(20, 21), (7, 10), (3, 6), (1, 2)]
    oldest = batch_days(BINANCE, wanted, 4, newest_first=False)
    assert [(b.start.day, b.end.day) for b in oldest] == [(1, 4), (5, 8), (9, 10), (20, 21)]
    assert sorted(d for b in newest for d in b.days) == sorted(wanted)


def test_batches_refuse_days_of_another_series_or_unknown_symbols() -> None:
    with pytest.raises(ValueError, match="not a day of binance"):
        batch_days(BINANCE, [Day("okx", "BTCUSDT", D)], 31)
    with pytest.raises(ValueError, match="unknown instruments XRPUSDT"):
        batch_days(BINANCE, [Day("binance", "XRPUSDT", D)], 31)


def test_plan_skips_days_in_flight_and_caps_runs_per_venue_and_tick() -> None:
    okx = Series("okx", ("BTCUSDT",), date(2024, 3, 1))
    needing = {d: Reason.MISSING for d in days(BINANCE, "BTCUSDT", date(2024, 3, 1), D)}
    needing |= {d: Reason.FAILED for d in days(okx, "BTCUSDT", date(2024, 3, 8), D)}
    running = set(days(BINANCE, "BTCUSDT", date(2024, 3, 5), date(2024, 3, 6)))
    book = Backoff(base_s=HOUR, max_tries=3)
    policy = GapPolicy(max_days_per_run=31, max_runs_per_tick=2, max_runs_in_flight_per_venue=2)
    plan = plan_gap_backfill([BINANCE, okx], needing, running, {"binance": 1}, book, policy, now=0.0)
    # binance has room for one more run: the newest contiguous range that is not running
    assert [b.describe() for b in plan.batches] == [
        "binance BTCUSDT 2024-03-07..2024-03-10",
        "okx BTCUSDT 2024-03-08..2024-03-10",
    ]
    assert plan.deferred == 4  # 03-01..03-04 wait for the next tick
    assert dict(plan.batches[1].reasons) == {"failed": 3} and plan.batches[1].tries == 1
    assert all(d not in {x for b in plan.batches for x in b.days} for d in running)

    full = plan_gap_backfill([BINANCE], needing, set(), {"binance": 2}, Backoff(HOUR, 3), policy, now=0.0)
    assert full.batches == [] and full.busy_venues == {"binance": 2}
    assert "busy: binance (2 in flight)" in full.summary()


def test_backoff_doubles_then_gives_up_once_and_forgets_healed_days() -> None:
    day = Day("binance", "BTCUSDT", D)
    needing = {day: Reason.OUTAGE}
    book = Backoff(base_s=HOUR, max_tries=3)
    policy = GapPolicy()
    requested_at = []
    for minute in range(0, 9 * 60, 10):
        now = minute * 60.0
        book = Backoff.from_cursor(book.to_cursor(), base_s=HOUR, max_tries=3)  # through the cursor
        plan = plan_gap_backfill([BINANCE], needing, set(), {}, book, policy, now)
        if plan.batches:
            assert plan.batches[0].tries == len(requested_at) + 1
            requested_at.append(minute)
        if plan.given_up:
            [(given, attempts)] = plan.given_up
            assert given == day and attempts.tries == 3 and attempts.reason == "outage"
            gave_up_at = minute
    assert requested_at == [0, 60, 180]  # immediately, +1 h, +2 h
    assert gave_up_at == 180 + 240  # the third try had its 4 h to heal the day
    assert [d for d, _ in book.given_up()] == [day]
    assert plan_gap_backfill([BINANCE], needing, set(), {}, book, policy, 10**9).batches == []

    book.forget_except([], [], BINANCE.start_date)  # the day healed (e.g. a manual re-run)
    assert book.attempts == {}
    assert plan_gap_backfill([BINANCE], needing, set(), {}, book, policy, 10**9).batches  # a new problem


def test_an_unreadable_cursor_starts_afresh() -> None:
    assert Backoff.from_cursor("not json", base_s=1, max_tries=2).attempts == {}
    assert Backoff.from_cursor('{"v": 99, "days": {}}', base_s=1, max_tries=2).attempts == {}


def test_policy_rejects_an_unknown_order() -> None:
    with pytest.raises(ValueError, match="backfill_order"):
        GapPolicy(backfill_order="random")


def test_automation_settings_name_a_bad_key(tmp_path) -> None:  # noqa: ANN001
    from marketdata_assets.settings import SettingsError, load_settings

    base = "environment: t\nstorage: {root: data}\nvenues: {binance: {symbols: [BTC/USDT], start_date: 2024-01-01}}\n"
    path = tmp_path / "s.yaml"
    path.write_text(base)
    assert load_settings(path, environ={}).automation.running is False
    path.write_text(base + "automation: {nightly_cron: '15 0 * *'}\n")
    with pytest.raises(SettingsError, match="automation.nightly_cron: expected a cron string with 5 fields"):
        load_settings(path, environ={})
    path.write_text(base + "automation: {lookback: 10}\n")
    with pytest.raises(SettingsError, match="automation.lookback: unknown key"):
        load_settings(path, environ={})
