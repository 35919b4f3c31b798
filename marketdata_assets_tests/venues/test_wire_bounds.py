"""Every value a venue sends is bounded before it changes state or timing (issue #14).

Against the simulator over real HTTP: its faults send hostile ``Retry-After`` headers and odd status
codes; :class:`CorruptingProxy` in front of it sends timestamps far in the future or from before the
venue existed and pages far larger than asked. Each case asserts the end state (the day complete, or
one error naming the value) and the timing (no wait beyond the policy's cap; the shared block too).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable

import pytest

from marketdata_assets.frames import MINUTES_PER_DAY, day_bounds_ms
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.venues.base import MalformedResponseError, VenueError
from marketdata_assets.venues.ccxt_venue import CcxtCandleSource
from marketdata_assets.venues.deribit import DeribitDvolSource
from marketdata_assets.venues.retry import FailureKind, RetryPolicy

from .helpers import DAY, FAST_RETRY, CorruptingProxy, minute_index

MakeSim = Callable[..., SimulatorServer]
CAP_S = 0.5  # the test policy's longest rate-limit wait
POLICY = dataclasses.replace(FAST_RETRY, max_retry_after_s=CAP_S, max_ban_s=60.0)
FALLBACK_S = 0.2  # the source's own wait after a rate limit that said nothing usable


def _source(venue: str, base_url: str, sleeps: list[float]) -> CcxtCandleSource | DeribitDvolSource:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(min(seconds, CAP_S))  # never longer than the cap, even if the code asked for more

    if venue == "deribit":
        return DeribitDvolSource(
            base_url, retry=POLICY, sleep=sleep, rate_limit_ms=0, rate_limit_wait_s=FALLBACK_S
        )
    return CcxtCandleSource(
        venue, base_url, retry=POLICY, sleep=sleep, rate_limit_ms=10, rate_limit_wait_s=FALLBACK_S
    )


@pytest.mark.parametrize(
    ("venue", "retry_after", "logged"),
    [
        ("binance", "-5", "ignoring Retry-After '-5': not a finite wait >= 0"),
        ("binance", "abc", "ignoring Retry-After 'abc': neither seconds nor an HTTP date"),
        ("binance", "inf", "ignoring Retry-After 'inf': not a finite wait >= 0"),
        ("binance", "nan", "ignoring Retry-After 'nan': not a finite wait >= 0"),
        ("binance", "1e9", "the venue asked to wait 1000000000.0s; waiting the cap of 0.5s instead"),
        ("bybit", "Fri 31 Dec 9999 23:59:59 GMT", "waiting the cap of 0.5s instead"),
        ("okx", "99999999999999999999", "waiting the cap of 0.5s instead"),
        ("deribit", "inf", "ignoring Retry-After 'inf': not a finite wait >= 0"),
        ("deribit", "86400", "the venue asked to wait 86400.0s; waiting the cap of 0.5s instead"),
    ],
)
def test_a_hostile_retry_after_is_capped_or_ignored_with_a_log_line(
    venue: str, retry_after: str, logged: str, make_simulator: MakeSim, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = "get_volatility_index_data" if venue == "deribit" else "ohlcv"
    sim = make_simulator(
        seed=8, faults=[f"{venue}:http429:endpoint={endpoint},count=1,retry_after={retry_after}"]
    )
    sleeps: list[float] = []
    caplog.set_level(logging.WARNING, logger="marketdata_assets.venues.retry")
    with _source(venue, sim.venue_base_url(venue), sleeps) as source:
        result = source.fetch_day("BTC" if venue == "deribit" else "BTC/USDT", DAY)
        blocked_until = source.limiter.blocked_until()
    # the day completes after the one rate limit (DVOL of an older day comes hourly)
    assert len(result.frame) == MINUTES_PER_DAY * 60 // result.resolution_s
    assert result.stats.rate_limited == 1 and result.stats.retries == 1
    assert sleeps and max(sleeps) <= CAP_S  # never a wait beyond the cap
    assert blocked_until <= time.time()  # the shared block (every process) is over too
    assert logged in caplog.text


def test_a_ban_with_an_absurd_retry_after_fails_at_once_and_blocks_no_longer_than_the_cap(
    make_simulator: MakeSim,
) -> None:
    sim = make_simulator(seed=8, faults=["binance:http418:endpoint=klines,count=1,retry_after=1e12"])
    sleeps: list[float] = []
    with _source("binance", sim.venue_base_url("binance"), sleeps) as source:
        with pytest.raises(VenueError) as info:
            source.fetch_day("BTC/USDT", DAY)
        blocked_for = source.limiter.blocked_until() - time.time()
    assert "banned by the venue for 1000000000000s, longer than max_ban_wait_s=10s" in str(info.value)
    assert sleeps == []  # no hammering, no waiting
    assert 0 < blocked_for <= POLICY.max_ban_s  # every process stops for the cap, not 31,700 years


@pytest.mark.parametrize(
    ("fault", "completes", "named"),
    [
        ("http599:count=1", True, "HTTP 599"),  # a 5xx the venue never documented: transient
        ("http:status=504,count=2", True, "HTTP 504"),
        ("http451:count=1", False, "HTTP 451"),  # an undocumented 4xx: a permanent error, one request
        ("http:status=499,count=1", False, "HTTP 499"),
    ],
)
def test_an_unexpected_status_code_is_retried_or_fails_at_once_naming_it(
    fault: str, completes: bool, named: str, make_simulator: MakeSim
) -> None:
    sim = make_simulator(seed=8, faults=[f"binance:{fault.replace(':', ':endpoint=klines,', 1)}"])
    sleeps: list[float] = []
    with _source("binance", sim.venue_base_url("binance"), sleeps) as source:
        if completes:
            result = source.fetch_day("BTC/USDT", DAY)
            assert len(result.frame) == MINUTES_PER_DAY and named in (result.stats.last_error or "")
            return
        with pytest.raises(VenueError) as info:
            source.fetch_day("BTC/USDT", DAY)
    assert "permanent error" in str(info.value) and named in str(info.value)
    assert sleeps == []


FUTURE_MS = 4_102_444_800_000  # 2100-01-01T00:00Z
BEFORE_BINANCE_MS = 1_483_228_800_000  # 2017-01-01T00:00Z, months before Binance opened


def _rows_out_of_time(path: str, status: int, body: bytes) -> bytes | None:
    if "/api/v3/klines" not in path:
        return None
    rows = json.loads(body)
    if not rows:
        return None
    future, ancient = list(rows[0]), list(rows[0])
    future[0], ancient[0] = FUTURE_MS, BEFORE_BINANCE_MS
    return json.dumps([ancient, *rows, future]).encode()


def test_timestamps_years_ahead_or_before_the_venue_existed_are_dropped_and_skip_nothing(
    make_simulator: MakeSim,
) -> None:
    sim = make_simulator(seed=8)
    with (
        CorruptingProxy(sim.url, _rows_out_of_time, budget=1) as proxy,
        _source("binance", f"{proxy.url}/binance", []) as source,
    ):
        result = source.fetch_day("BTC/USDT", DAY)
    # before the bound, the year-2100 row moved the cursor past the day: 1000 of 1440 minutes
    assert minute_index(result.frame, DAY) == list(range(MINUTES_PER_DAY))
    start, end = day_bounds_ms(DAY)
    ms = result.frame["timestamp"].astype("int64")
    assert ms.between(start, end - 1).all()
    assert result.rows_outside_day == 2 and proxy.rewritten == 1


def _three_pages_in_one(path: str, status: int, body: bytes) -> bytes | None:
    if "/api/v3/klines" not in path:
        return None
    rows = json.loads(body)
    return json.dumps(rows * 3).encode() if rows else None


@pytest.mark.parametrize("budget", [1, None])
def test_a_page_far_larger_than_asked_is_refused_before_any_row_is_kept(
    budget: int | None, make_simulator: MakeSim
) -> None:
    sim = make_simulator(seed=8)
    with (
        CorruptingProxy(sim.url, _three_pages_in_one, budget=budget) as proxy,
        _source("binance", f"{proxy.url}/binance", []) as source,
    ):
        if budget == 1:  # once: retried as malformed, then the day is whole and holds no copy
            result = source.fetch_day("BTC/USDT", DAY)
            assert minute_index(result.frame, DAY) == list(range(MINUTES_PER_DAY))
            assert result.stats.duplicate_rows == 0
            assert "page holds 3000 rows, more than 2 x the 1000 asked for" in result.stats.last_error
            return
        with pytest.raises(MalformedResponseError) as info:
            source.fetch_day("BTC/USDT", DAY)
    assert "malformed response: page holds 3000 rows, more than 2 x the 1000 asked for" in str(info.value)
    assert proxy.rewritten == 1 + POLICY.max_malformed_retries


def test_retry_policy_caps_hold_for_every_failure_kind() -> None:
    """The arithmetic behind the cases above: no delay or block beyond the caps, whatever was asked."""
    from marketdata_assets.venues.retry import Failure

    policy = RetryPolicy(max_retry_after_s=30.0, max_ban_s=3600.0, max_ban_wait_s=60.0)
    for asked in (0.5, 29.0, 31.0, 1e9, 1e300):
        limited = Failure(FailureKind.RATE_LIMITED, asked, "HTTP 429")
        banned = Failure(FailureKind.BANNED, asked, "HTTP 418")
        assert policy.delay_for(limited, 0, rng=lambda: 0.0) == min(asked, 30.0)
        assert policy.block_for(limited, 1.0) == min(asked, 30.0)
        assert policy.block_for(banned, 600.0) == min(asked, 3600.0)
