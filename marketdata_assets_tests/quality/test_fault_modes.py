"""Every check rule fails on real bad data: days fetched from the simulator with its fault modes on,
through the real venue sources, then put through the day checks and the cleaner."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from marketdata_assets.quality import clean_partition, dedupe_candles, find_gaps
from marketdata_assets.quality.day_checks import (
    ERROR,
    WARN,
    CheckPolicy,
    dvol_day_checks,
    raw_day_checks,
    validated_day_checks,
    validated_day_usable,
)
from marketdata_assets.venues.registry import get_source
from marketdata_assets.venues.retry import RetryPolicy

DAY = date(2024, 3, 5)
FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=0.05)


def fetch(sim, venue: str, symbol: str = "BTC/USDT", day: date = DAY) -> pd.DataFrame:
    source = get_source(venue, sim.venue_base_url(venue), rate_limit_ms=1, retry=FAST)
    try:
        return source.fetch_day(symbol, day).frame
    finally:
        source.close()


@pytest.fixture
def sim(make_simulator):
    return make_simulator(seed=3, limits_enabled=False)


@pytest.mark.parametrize(
    ("what", "check", "rule"),
    [
        ("high_lt_low", "ohlc", "high_ge_open_close"),
        ("negative_volume", "schema", "greater_than_or_equal_to(0)"),
        ("nan", "schema", "not_nullable"),
    ],
)
def test_invalid_rows_fail_their_rule_and_are_quarantined_with_the_reason(sim, what, check, rule) -> None:
    sim.add_fault(f"bybit:invalid:what={what},rows=1")
    raw = fetch(sim, "bybit")
    outcomes = raw_day_checks(raw, DAY)
    outcome = outcomes[check]
    assert not outcome.passed and outcome.severity == WARN  # raw: the validated step handles the rows
    assert outcome.metadata["failing_rows"] >= 1
    assert rule in {row[0] for row in outcome.metadata["failures"]["rows"]}  # the rows are shown, not counted

    cleaned = clean_partition(raw, DAY)
    assert len(cleaned.quarantined) == outcome.metadata["failing_rows"]
    assert cleaned.quarantined["reason"].str.contains(rule, regex=False).all()
    assert len(cleaned.valid) + len(cleaned.quarantined) == len(raw)
    # the validated day is clean, but quarantined rows hold it back from resampling by default
    valid_outcomes = validated_day_checks(
        cleaned.valid, DAY, venue="bybit", symbol="BTCUSDT", quarantined_rows=len(cleaned.quarantined)
    )
    assert valid_outcomes["ohlc"].passed and valid_outcomes["duplicates"].passed
    assert valid_outcomes["schema"].blocks
    assert "quarantined" in valid_outcomes["schema"].description
    lenient = CheckPolicy(max_quarantined_rows=len(cleaned.quarantined))
    assert (
        validated_day_usable(cleaned.valid, DAY, quarantined_rows=len(cleaned.quarantined), policy=lenient)
        is None
    )
    # the minutes lost to quarantine are a gap kind of their own
    gaps = find_gaps(cleaned.valid, DAY, "bybit", "BTCUSDT", quarantined=cleaned.quarantined["timestamp"])
    assert gaps.loc[gaps["kind"] == "quarantined", "minutes"].sum() == len(cleaned.quarantined)


def test_page_overlap_duplicates_are_identical_and_collapse(sim) -> None:
    sim.add_fault("okx:duplicates:mode=inside,rows=2")
    raw = fetch(sim, "okx")
    assert raw["timestamp"].duplicated().any()
    outcome = raw_day_checks(raw, DAY)["duplicates"]
    assert outcome.passed and outcome.metadata["identical_duplicates"] >= 2
    assert outcome.metadata["conflicting_timestamps"] == 0
    cleaned = clean_partition(raw, DAY)
    assert cleaned.valid["timestamp"].is_unique and cleaned.identical_duplicates >= 2
    assert cleaned.conflicting_duplicates == 0


def test_revised_values_conflict_and_the_last_fetch_wins(sim) -> None:
    sim.add_fault("binance:revised:factor=1.01")  # candles served once come back revised
    first = fetch(sim, "binance")
    second = fetch(sim, "binance")
    both = pd.concat([first, second], ignore_index=True)
    outcome = raw_day_checks(both, DAY)["duplicates"]
    assert not outcome.passed and outcome.metadata["conflicting_timestamps"] == len(first)
    assert "old_close" in outcome.metadata["conflicts"]["columns"]
    deduped = dedupe_candles(both)
    assert len(deduped.frame) == len(first)
    np.testing.assert_allclose(
        deduped.frame["close"].to_numpy(), second.sort_values("timestamp")["close"].to_numpy()
    )


def test_rows_out_of_order_pass_raw_but_a_stored_day_must_be_increasing(sim) -> None:
    sim.add_fault("bybit:out_of_order")
    raw = fetch(sim, "bybit")
    assert raw_day_checks(raw, DAY)["schema"].passed  # order is not a raw-data rule
    unsorted = raw.sample(frac=1.0, random_state=1).reset_index(drop=True)
    outcomes = validated_day_checks(unsorted, DAY, venue="bybit", symbol="BTCUSDT", quarantined_rows=0)
    assert outcomes["duplicates"].blocks  # strictly increasing is part of the stored-day contract
    assert "strictly_increasing" in {row[0] for row in outcomes["duplicates"].metadata["failures"]["rows"]}


def test_an_outage_shows_in_completeness_with_its_range(sim) -> None:
    start = int(pd.Timestamp("2024-03-05T10:00Z").timestamp() * 1000)
    sim.add_outage("okx", start, start + 90 * 60_000)
    raw = fetch(sim, "okx")
    cleaned = clean_partition(raw, DAY)
    outcome = validated_day_checks(cleaned.valid, DAY, venue="okx", symbol="BTCUSDT", quarantined_rows=0)[
        "completeness"
    ]
    assert not outcome.passed and outcome.severity == WARN and not outcome.blocks
    assert "10:00-11:30" in outcome.metadata["missing_ranges_utc"]
    assert outcome.metadata["gap_minutes_by_kind"]["outage"] == 90


def test_a_price_jump_is_a_continuity_warning_with_timestamps(sim) -> None:
    raw = clean_partition(fetch(sim, "binance"), DAY).valid
    raw.loc[700:, ["open", "high", "low", "close"]] *= 1.5
    outcome = raw_day_checks(raw, DAY, CheckPolicy(price_jump_threshold=0.2))["continuity"]
    assert not outcome.passed and outcome.severity == WARN
    assert outcome.metadata["jumps"] == 1
    assert raw["timestamp"].iloc[700].isoformat() in {
        c for r in outcome.metadata["jump_rows"]["rows"] for c in r[:2]
    }


def test_a_frame_that_is_not_candles_is_an_error_on_every_layer() -> None:
    broken = pd.DataFrame({"timestamp": pd.to_datetime(["2024-03-05T00:00"]), "open": [1.0]})
    raw = raw_day_checks(broken, DAY)
    assert raw["schema"].blocks and raw["schema"].severity == ERROR
    assert all(not o.passed for o in raw.values())
    assert validated_day_usable(broken, DAY, quarantined_rows=0) is not None


def test_dvol_nan_points_fail_the_dvol_schema(make_simulator) -> None:
    sim = make_simulator(seed=3, limits_enabled=False)
    sim.add_fault("deribit:invalid:what=nan,rows=3")
    source = get_source("deribit", sim.venue_base_url("deribit"), max_retries=1, minute_history_days=None)
    try:
        raw = source.fetch_day("BTC", DAY).frame
    finally:
        source.close()
    outcomes = dvol_day_checks(raw, DAY)
    assert not outcomes["schema"].passed and outcomes["schema"].metadata["failing_rows"] >= 3
    assert outcomes["ohlc"].severity == WARN
