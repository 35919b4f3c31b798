"""The machine-wide limiter: budget maths, bans, and real separate processes sharing one budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from marketdata_assets.settings import VenueSettings
from marketdata_assets.venues.limiter import (
    MAX_QUEUE_S,
    SharedLimiter,
    VenueBlocked,
    default_state_dir,
    documented_budget,
    endpoint_of,
    limiter_from_settings,
    limiter_key,
    resolve_limiter,
)
from marketdata_assets.venues.retry import (
    Failure,
    FailureKind,
    RetryExhausted,
    RetryPolicy,
    call_with_retry,
)

WORKER = "marketdata_assets_tests.venues.limits_worker"


class FakeTime:
    """Wall clock that moves only when someone sleeps."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fake_limiter(tmp_path: Path, venue: str = "okx", **limits: float) -> tuple[SharedLimiter, FakeTime]:
    clock = FakeTime()
    budget = documented_budget(venue, **limits)
    return SharedLimiter(budget, venue, tmp_path, clock=clock.time, sleep=clock.sleep), clock


def max_in_window(events: Sequence[tuple[float, float]], window_s: float) -> float:
    """Largest total cost of events whose times fall in any closed window of ``window_s`` seconds."""
    events = sorted(events)
    best = 0.0
    for i, (start, _) in enumerate(events):
        best = max(best, sum(cost for t, cost in events[i:] if t <= start + window_s))
    return best


# -- budgets ------------------------------------------------------------------------------------


def test_documented_budgets_leave_the_safety_margin_and_room_for_the_biggest_request() -> None:
    binance = documented_budget("binance")
    assert binance.route("klines") == ("weight", 2) and binance.route("exchangeInfo") == ("weight", 20)
    # 6000 weight/min at 0.8, minus the 20-weight exchangeInfo that may straddle a window edge
    assert binance.seconds_per_unit("weight") == pytest.approx(60 / (6000 * 0.8 - 20))
    okx = documented_budget("okx")
    assert okx.route("history-candles") == ("history-candles", 1)
    assert okx.route("instruments") == ("instruments", 1)
    assert okx.route("something-new") == ("other", 1)
    assert okx.seconds_per_unit("history-candles") == pytest.approx(2 / (20 * 0.8 - 1))
    assert documented_budget("bybit").ban_s == 600 and documented_budget("binance").ban_s == 120


def test_settings_limits_scale_the_main_bucket_and_the_others_alike() -> None:
    okx = documented_budget("okx", limit=10, window_s=1.0, safety=0.5)
    assert okx.buckets["history-candles"].limit == 10 and okx.buckets["history-candles"].window_s == 1.0
    assert okx.buckets["candles"].limit == 20 and okx.buckets["candles"].window_s == 1.0
    assert okx.safety == 0.5


def test_a_limit_too_small_for_one_request_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="binance: rate limit weight = 24 per 60s leaves no budget"):
        documented_budget("binance", limit=24)  # 24 * 0.8 < 20, the exchangeInfo weight
    with pytest.raises(ValueError, match="no rate budget for venue 'kraken'"):
        documented_budget("kraken")


def test_keys_separate_the_real_venue_from_each_simulator() -> None:
    assert limiter_key("binance", None) == "binance"
    assert limiter_key("binance", "https://api.binance.com") == "binance"
    assert limiter_key("okx", "http://127.0.0.1:8765/okx") == "okx@127.0.0.1_8765_okx"
    assert limiter_key("okx", "http://127.0.0.1:8766/okx") != limiter_key("okx", "http://127.0.0.1:8765/okx")
    assert endpoint_of("http://h:1/okx/api/v5/market/history-candles?instId=X") == "history-candles"
    assert endpoint_of("https://api.binance.com/api/v3/exchangeInfo") == "exchangeInfo"


def test_state_dir_comes_from_the_environment_or_the_user_cache() -> None:
    assert default_state_dir({"MARKETDATA_STATE_DIR": "/srv/md"}) == Path("/srv/md")
    assert default_state_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/marketdata_assets/limits")
    assert default_state_dir({}).parts[-3:] == (".cache", "marketdata_assets", "limits")


def test_settings_choose_the_budget_or_switch_it_off(tmp_path: Path) -> None:
    base = {"symbols": ["BTC/USDT"], "start_date": "2024-01-01", "base_url": "http://127.0.0.1:9/okx"}
    cfg = VenueSettings.model_validate({**base, "shared_rate_limit": {"limit": 10, "window_s": 1}})
    limiter = limiter_from_settings("okx", cfg, state_dir=tmp_path)
    assert isinstance(limiter, SharedLimiter)
    assert limiter.key == "okx@127.0.0.1_9_okx" and limiter.path.parent == tmp_path
    assert limiter.budget.buckets["history-candles"].limit == 10
    off = VenueSettings.model_validate({**base, "shared_rate_limit": {"enabled": False}})
    assert limiter_from_settings("okx", off) is False
    assert resolve_limiter(False, "okx", None) is None
    assert resolve_limiter(True, "okx", None).key == "okx"  # type: ignore[union-attr]


# -- one process, a fake clock ----------------------------------------------------------------------


def test_requests_are_spaced_by_their_cost(tmp_path: Path) -> None:
    limiter, clock = fake_limiter(tmp_path, "binance", limit=120, window_s=3.0)  # usable 76 weight / 3 s
    start = clock.now
    slots = [limiter.acquire(e).slot - start for e in ("exchangeInfo", "klines", "klines")]
    unit = 3.0 / 76
    assert slots == pytest.approx([0.0, 20 * unit, 22 * unit])
    assert clock.sleeps == pytest.approx([20 * unit, 2 * unit])
    assert limiter.snapshot()["granted"] == 3


def test_a_block_makes_acquire_wait_and_a_long_one_refuses(tmp_path: Path) -> None:
    limiter, clock = fake_limiter(tmp_path)
    until = limiter.block(5.0, "HTTP 429")
    assert until == clock.now + 5.0
    assert limiter.block(1.0, "shorter") == until  # a shorter block never shortens a longer one
    grant = limiter.acquire("history-candles", max_block_wait_s=10.0)
    assert grant.slot == until and grant.waited_s == pytest.approx(5.0)
    limiter.block(600.0, "rate_limited: HTTP 418")
    with pytest.raises(VenueBlocked) as info:
        limiter.acquire("history-candles", max_block_wait_s=180.0)
    assert "okx is blocked until" in str(info.value) and "600s from now" in str(info.value)
    assert "'rate_limited: HTTP 418'" in str(info.value) and "recorded by pid" in str(info.value)


def test_a_slot_far_ahead_means_the_clock_stepped_back_and_is_reset(tmp_path: Path) -> None:
    limiter, clock = fake_limiter(tmp_path)
    limiter.acquire("history-candles")
    clock.now -= 2 * MAX_QUEUE_S  # NTP stepped the clock back
    assert limiter.acquire("history-candles").waited_s == 0.0


def test_a_torn_state_file_starts_afresh(tmp_path: Path) -> None:
    limiter, _ = fake_limiter(tmp_path)
    limiter.path.write_text('{"slots": {"history-c')
    assert limiter.acquire("history-candles").waited_s == 0.0
    assert json.loads(limiter.path.read_text())["granted"] == 1


def test_an_unwritable_state_dir_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    limiter = SharedLimiter(documented_budget("okx"), "okx", blocker / "state")
    with pytest.raises(OSError, match="set MARKETDATA_STATE_DIR to a writable directory"):
        limiter.acquire("history-candles")


# -- the retry loop shares what the venue said ----------------------------------------------------


def _fail_once(failure: Failure):  # noqa: ANN202
    calls: list[int] = []

    class Answer(Exception):
        pass

    def fn() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise Answer()
        return "ok"

    return fn, calls, (lambda exc: failure)


def test_rate_limit_answer_blocks_the_venue_for_its_retry_after(tmp_path: Path) -> None:
    limiter, clock = fake_limiter(tmp_path)
    fn, calls, classify = _fail_once(Failure(FailureKind.RATE_LIMITED, 2.0, "HTTP 429"))
    call_with_retry(fn, classify=classify, policy=RetryPolicy(), sleep=clock.sleep, limiter=limiter)
    state = limiter.snapshot()
    assert state["blocked_until"] == pytest.approx(1_700_000_000.0 + 2.0)
    assert state["blocked_reason"] == "rate_limited: HTTP 429"


def test_ban_without_retry_after_blocks_for_the_documented_period(tmp_path: Path) -> None:
    limiter, clock = fake_limiter(tmp_path, "bybit")
    fn, _, classify = _fail_once(Failure(FailureKind.BANNED, None, "HTTP 403"))
    with pytest.raises(RetryExhausted, match="no Retry-After"):
        call_with_retry(fn, classify=classify, policy=RetryPolicy(), sleep=clock.sleep, limiter=limiter)
    assert limiter.snapshot()["blocked_until"] == pytest.approx(clock.now + 600.0)


def test_a_block_recorded_elsewhere_fails_the_call_without_sending(tmp_path: Path) -> None:
    limiter, clock = fake_limiter(tmp_path)
    limiter.block(3600.0, "banned: HTTP 418")
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        limiter.acquire("history-candles", max_block_wait_s=60.0)
        raise AssertionError("sent while blocked")

    with pytest.raises(RetryExhausted, match="not sending: okx is blocked for 3600s more") as info:
        call_with_retry(
            fn, classify=lambda e: Failure(FailureKind.PERMANENT), policy=RetryPolicy(), limiter=limiter
        )
    assert info.value.failure.kind is FailureKind.BANNED and calls == [1]


# -- real processes ----------------------------------------------------------------------------------


def run_workers(mode: str, specs: Sequence[dict]) -> list[dict]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", WORKER, mode, json.dumps(spec)], stdout=subprocess.PIPE, text=True
        )
        for spec in specs
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"worker exited with {proc.returncode}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_processes_sharing_a_budget_never_exceed_it_in_any_window(tmp_path: Path) -> None:
    # OKX history-candles at 20 per 0.5 s: usable 15 per 0.5 s; 4 processes x 12 requests = 48
    limits = {"limit": 20, "window_s": 0.5}
    start_at = time.time() + 1.5  # all four are up and importing is done by then
    spec = {"venue": "okx", "endpoint": "history-candles", "count": 12, "state_dir": str(tmp_path)}
    results = run_workers("take", [{**spec, **limits, "start_at": start_at} for _ in range(4)])
    grants = [g for r in results for g in r["grants"]]
    assert len(grants) == 48 and all(r["blocked"] is None for r in results)
    slots = [(slot, cost) for slot, _, cost in grants]
    # booked slots: exact, whichever process booked them
    assert max_in_window(slots, 0.5) <= 20 * 0.8 + 1e-9
    assert len({slot for slot, _ in slots}) == 48  # no slot handed out twice
    # when the requests could actually go out: still under the venue's limit
    assert max_in_window([(sent, cost) for _, sent, cost in grants], 0.5) <= 20
    # and the budget was used, not wasted: 48 requests at 15 per 0.5 s take about 1.6 s
    assert max(s for s, _ in slots) - min(s for s, _ in slots) == pytest.approx(47 * 0.5 / 15, rel=0.01)


def test_a_ban_recorded_by_one_process_stops_every_other_until_it_ends(tmp_path: Path) -> None:
    key = {"venue": "binance", "state_dir": str(tmp_path)}
    [blocked] = run_workers("block", [{**key, "seconds": 2.0, "reason": "banned: HTTP 418"}])
    spec = {**key, "endpoint": "klines", "count": 3}
    waiting, refusing = run_workers(
        "take", [{**spec, "max_block_wait_s": 30.0}, {**spec, "max_block_wait_s": 0.5}]
    )
    assert len(waiting["grants"]) == 3
    assert min(sent for _, sent, _ in waiting["grants"]) >= blocked["until"]
    assert refusing["grants"] == []
    refusal = refusing["blocked"]
    assert refusal["until"] == blocked["until"] and refusal["pid"] == blocked["pid"]
    assert refusal["reason"] == "banned: HTTP 418"
    assert "binance is blocked until" in refusal["message"]


# -- the sources book every HTTP request ---------------------------------------------------------------


def test_every_ccxt_request_is_booked_load_markets_included(tmp_path: Path, make_simulator) -> None:
    from marketdata_assets.venues.ccxt_venue import CcxtCandleSource

    sim = make_simulator(seed=3)
    limiter = SharedLimiter.for_venue("okx", sim.venue_base_url("okx"), state_dir=tmp_path)
    with CcxtCandleSource(
        "okx", sim.venue_base_url("okx"), rate_limit_ms=5, shared_limiter=limiter
    ) as source:
        result = source.fetch_day("BTC/USDT", date(2024, 3, 5))
    assert limiter.snapshot()["granted"] == result.stats.requests + 1 == 16  # 15 pages + instruments
    assert set(limiter.snapshot()["slots"]) == {"history-candles", "instruments"}


def test_every_dvol_request_is_booked(tmp_path: Path, make_simulator) -> None:
    from marketdata_assets.venues.deribit import DeribitDvolSource

    sim = make_simulator(seed=3)
    limiter = SharedLimiter.for_venue("deribit", sim.venue_base_url("deribit"), state_dir=tmp_path)
    with DeribitDvolSource(sim.venue_base_url("deribit"), shared_limiter=limiter) as source:
        result = source.fetch_day("BTC", date(2024, 3, 5), resolution=60)
    assert result.stats.requests >= 1
    assert limiter.snapshot()["granted"] == result.stats.requests


def test_a_ban_one_client_earned_stops_another_before_it_sends(tmp_path: Path, make_simulator) -> None:
    import httpx

    from marketdata_assets.venues.base import VenueError
    from marketdata_assets.venues.ccxt_venue import CcxtCandleSource

    from .helpers import FAST_RETRY, venue_stats

    sim = make_simulator(seed=1, limit_scale=0.005, window_scale=0.02)  # a real 120 s ban
    url = sim.venue_base_url("binance")
    with httpx.Client() as client:  # a careless client ignoring Retry-After until it is banned
        for _ in range(200):
            if (
                client.get(url + "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"}).status_code
                == 418
            ):
                break
    first = CcxtCandleSource(
        "binance",
        url,
        retry=FAST_RETRY,
        shared_limiter=SharedLimiter.for_venue("binance", url, state_dir=tmp_path),
    )
    with first, pytest.raises(VenueError, match="banned by the venue for 1[12][0-9]s"):
        first.fetch_day("BTC/USDT", date(2024, 3, 5))
    sent = venue_stats(sim, "binance")["requests"]
    # another run (own client, own pacer, same machine) does not even try
    second = CcxtCandleSource(
        "binance",
        url,
        retry=FAST_RETRY,
        shared_limiter=SharedLimiter.for_venue("binance", url, state_dir=tmp_path),
    )
    with second, pytest.raises(VenueError) as info:
        second.fetch_day("BTC/USDT", date(2024, 3, 5))
    assert "could not load markets: not sending: binance is blocked for 1" in str(info.value)
    assert "HTTP 418" in str(info.value)
    assert venue_stats(sim, "binance")["requests"] == sent


def test_a_bad_shared_rate_limit_setting_names_its_key(tmp_path: Path) -> None:
    from marketdata_assets.settings import SettingsError, load_settings

    path = tmp_path / "s.yaml"
    path.write_text(
        "environment: t\nstorage: {root: data}\nvenues:\n  okx:\n    symbols: [BTC/USDT]\n"
        "    start_date: 2024-01-01\n    shared_rate_limit: {safety: 1.5, windw_s: 2}\n"
    )
    with pytest.raises(SettingsError) as info:
        load_settings(path, environ={})
    text = str(info.value)
    assert "venues.okx.shared_rate_limit.safety" in text
    assert "venues.okx.shared_rate_limit.windw_s: unknown key" in text
