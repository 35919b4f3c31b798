"""Retry/backoff maths and the retry loop's decisions, with an injected sleep (no network)."""

from __future__ import annotations

import pickle
from datetime import date

import pytest

from marketdata_assets.venues.base import (
    MalformedResponseError,
    UnknownSymbolError,
    VenueError,
    close_matches,
)
from marketdata_assets.venues.retry import (
    Failure,
    FailureKind,
    Pacer,
    RetryExhausted,
    RetryPolicy,
    call_with_retry,
    parse_retry_after,
)


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Boom(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail or failure.kind.value)
        self.failure = failure


def failing(failures: list[Failure], result: str = "ok"):
    """A callable that raises ``Boom`` for each failure in turn, then returns ``result``."""
    remaining = list(failures)
    calls = []

    def fn() -> str:
        calls.append(1)
        if remaining:
            raise Boom(remaining.pop(0))
        return result

    return fn, calls


def by_failure(exc: BaseException) -> Failure:
    assert isinstance(exc, Boom)
    return exc.failure


TRANSIENT = Failure(FailureKind.TRANSIENT, detail="HTTP 503")


def test_backoff_cap_doubles_then_saturates() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=6.0)
    assert [policy.backoff_cap(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0]


def test_full_jitter_spans_zero_to_cap() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=100.0)
    assert policy.backoff(3, rng=lambda: 0.0) == 0.0
    assert policy.backoff(3, rng=lambda: 0.999999) == pytest.approx(8.0, rel=1e-5)
    assert policy.backoff(3, rng=lambda: 0.25) == pytest.approx(2.0)


def test_retry_after_is_a_floor_for_rate_limits_only() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=10.0)
    limited = Failure(FailureKind.RATE_LIMITED, retry_after_s=7.0)
    assert policy.delay_for(limited, 0, rng=lambda: 0.5) == 7.0  # jitter 0.5 < Retry-After
    assert policy.delay_for(limited, 5, rng=lambda: 0.9) == 9.0  # jitter 9.0 > Retry-After
    transient_with_hint = Failure(FailureKind.TRANSIENT, retry_after_s=7.0)
    assert policy.delay_for(transient_with_hint, 0, rng=lambda: 0.5) == 0.5


def test_transient_failures_are_retried_with_growing_jittered_delays() -> None:
    clock = FakeTime()
    fn, calls = failing([TRANSIENT] * 3)
    seen = []
    result = call_with_retry(
        fn,
        classify=by_failure,
        policy=RetryPolicy(max_retries=5, base_delay_s=1.0, max_delay_s=100.0),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        rng=lambda: 0.5,
        on_retry=lambda n, failure, delay, exc: seen.append((n, failure.kind, delay)),
    )
    assert result == "ok"
    assert len(calls) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert seen == [(0, "transient", 0.5), (1, "transient", 1.0), (2, "transient", 2.0)]


def test_rate_limit_waits_retry_after_and_holds_the_pacer() -> None:
    clock = FakeTime()
    pacer = Pacer(0.0, monotonic=clock.monotonic, sleep=clock.sleep)
    fn, _ = failing([Failure(FailureKind.RATE_LIMITED, retry_after_s=3.0)])
    call_with_retry(
        fn,
        classify=by_failure,
        policy=RetryPolicy(base_delay_s=0.1),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        rng=lambda: 1.0,
        pacer=pacer,
    )
    # slept 3 s (Retry-After), and the pacer did not add a second wait after it
    assert clock.sleeps == [3.0]


def test_gives_up_after_max_retries_with_the_last_error() -> None:
    clock = FakeTime()
    fn, calls = failing([TRANSIENT] * 10)
    with pytest.raises(RetryExhausted) as info:
        call_with_retry(
            fn,
            classify=by_failure,
            policy=RetryPolicy(max_retries=2, base_delay_s=0.01),
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
    assert len(calls) == 3
    assert info.value.attempts == 3
    assert "gave up after 2 retries" in str(info.value)
    assert isinstance(info.value.last_error, Boom)


def test_permanent_failure_is_not_retried() -> None:
    clock = FakeTime()
    fn, calls = failing([Failure(FailureKind.PERMANENT, detail="BadSymbol")])
    with pytest.raises(RetryExhausted, match="permanent error"):
        call_with_retry(fn, classify=by_failure, policy=RetryPolicy(), sleep=clock.sleep)
    assert len(calls) == 1
    assert clock.sleeps == []


def test_malformed_answers_have_their_own_smaller_cap() -> None:
    clock = FakeTime()
    fn, calls = failing([Failure(FailureKind.MALFORMED)] * 10)
    with pytest.raises(RetryExhausted, match="malformed responses"):
        call_with_retry(
            fn,
            classify=by_failure,
            policy=RetryPolicy(max_retries=8, max_malformed_retries=2, base_delay_s=0.01),
            sleep=clock.sleep,
        )
    assert len(calls) == 3


def test_ban_within_budget_is_waited_out() -> None:
    clock = FakeTime()
    fn, calls = failing([Failure(FailureKind.BANNED, retry_after_s=120.0)])
    call_with_retry(
        fn,
        classify=by_failure,
        policy=RetryPolicy(max_ban_wait_s=180.0, total_budget_s=600.0),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        rng=lambda: 0.0,
    )
    assert clock.sleeps == [120.0]
    assert len(calls) == 2


def test_ban_longer_than_max_wait_fails_at_once() -> None:
    clock = FakeTime()
    fn, calls = failing([Failure(FailureKind.BANNED, retry_after_s=7200.0)])
    with pytest.raises(
        RetryExhausted, match=r"banned by the venue for 7200s, longer than max_ban_wait_s=180s"
    ):
        call_with_retry(fn, classify=by_failure, policy=RetryPolicy(max_ban_wait_s=180.0), sleep=clock.sleep)
    assert len(calls) == 1
    assert clock.sleeps == []


def test_ban_without_retry_after_fails_at_once() -> None:
    fn, calls = failing([Failure(FailureKind.BANNED)])
    with pytest.raises(RetryExhausted, match="no Retry-After"):
        call_with_retry(fn, classify=by_failure, policy=RetryPolicy(), sleep=lambda s: None)
    assert len(calls) == 1


def test_total_budget_counts_waits_even_with_a_fake_sleep() -> None:
    clock = FakeTime()
    limited = Failure(FailureKind.RATE_LIMITED, retry_after_s=40.0)
    fn, calls = failing([limited] * 5)
    with pytest.raises(RetryExhausted, match="retry budget of 100s spent"):
        call_with_retry(
            fn,
            classify=by_failure,
            policy=RetryPolicy(max_retries=10, total_budget_s=100.0),
            sleep=lambda s: None,
            monotonic=clock.monotonic,
            rng=lambda: 0.0,
        )
    assert len(calls) == 3  # 40 + 40 fit in 100 s, a third 40 does not


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=5.0, max_delay_s=1.0)


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after({"Retry-After": "12"}) == 12.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"Content-Type": "application/json"}) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after({"Retry-After": "soon"}) is None
    # Wed, 21 Oct 2015 07:28:00 GMT is 1445412480; "now" 30 s earlier
    assert (
        parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=lambda: 1445412450.0) == 30.0
    )


def test_pacer_spaces_calls_and_honours_holds() -> None:
    clock = FakeTime()
    pacer = Pacer(0.2, monotonic=clock.monotonic, sleep=clock.sleep)
    assert pacer.wait() == 0.0
    assert pacer.wait() == pytest.approx(0.2)
    clock.now += 5.0  # idle: next call goes at once
    assert pacer.wait() == 0.0
    pacer.hold(3.0)
    assert pacer.wait() == pytest.approx(3.0)


def test_shared_pacer_is_one_per_key_and_keeps_the_widest_spacing() -> None:
    a = Pacer.shared("test-venue|http://x", 0.1)
    b = Pacer.shared("test-venue|http://x", 0.3)
    assert a is b
    assert a.min_interval_s == 0.3
    assert Pacer.shared("test-venue|http://y", 0.1) is not a


def test_venue_error_names_venue_symbol_day_and_last_error() -> None:
    error = VenueError("okx", "BTC/USDT", date(2024, 3, 5), "gave up after 5 retries", ValueError("HTTP 503"))
    text = str(error)
    assert text.startswith("okx BTC/USDT 2024-03-05: gave up after 5 retries")
    assert "last error: ValueError: HTTP 503" in text
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == text and clone.venue == "okx"


def test_malformed_error_names_what_was_wrong() -> None:
    error = MalformedResponseError("bybit", "ETH/USDT", date(2024, 1, 2), "row has 5 fields, expected 7")
    assert error.what == "row has 5 fields, expected 7"
    assert "bybit ETH/USDT 2024-01-02: malformed response: row has 5 fields" in str(error)
    assert pickle.loads(pickle.dumps(error)).what == error.what


def test_unknown_symbol_error_suggests_close_matches() -> None:
    error = UnknownSymbolError("binance", ["BTCUSDT", "ZZZ/QQQ"], ["BTC/USDT", "ETH/USDT", "BTC/USDC"])
    text = str(error)
    assert "'BTCUSDT' (did you mean BTC/USDT?)" in text
    assert "'ZZZ/QQQ' (no close match)" in text
    assert "3 symbols listed, e.g. BTC/USDC, BTC/USDT, ETH/USDT" in text
    assert close_matches("ETH/USTD", ["ETH/USDT", "SOL/USDT"])[0] == "ETH/USDT"
