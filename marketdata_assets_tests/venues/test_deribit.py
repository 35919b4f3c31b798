"""DeribitDvolSource against the local simulator over real HTTP (httpx, limits ON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from marketdata_assets.frames import DVOL_COLUMNS, MINUTES_PER_DAY, day_bounds_ms
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.venues.base import MalformedResponseError, UnknownSymbolError, VenueError
from marketdata_assets.venues.deribit import DeribitDvolSource
from marketdata_assets.venues.registry import get_source

from .helpers import DAY, FAST_RETRY, CorruptingProxy, at, breaches, minute_index

MakeSim = Callable[..., SimulatorServer]
DVOL_PATH = "/deribit/api/v2/public/get_volatility_index_data"


def source_for(sim: SimulatorServer, **kw) -> DeribitDvolSource:
    kw.setdefault("retry", FAST_RETRY)
    kw.setdefault("rate_limit_ms", 0)
    return DeribitDvolSource(sim.venue_base_url("deribit"), **kw)


def test_minute_day_pages_backwards_with_continuation(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=6)
    with source_for(sim) as source:
        result = source.fetch_day("BTC", DAY, resolution="60")
    frame = result.frame
    assert list(frame.columns) == DVOL_COLUMNS
    assert sorted(minute_index(frame, DAY)) == list(range(MINUTES_PER_DAY))
    assert result.resolution_s == 60
    # 1000 rows per answer: the newest 1000 first, then the 440 before them (fetch order is kept)
    assert (result.stats.pages, result.stats.requests, result.stats.duplicate_rows) == (2, 2, 0)
    assert minute_index(frame, DAY)[0] == 440
    assert result.stats.source_url == sim.url + DVOL_PATH
    assert frame[["open", "high", "low", "close"]].notna().all().all()
    assert breaches(sim, "deribit") == {}


def test_hourly_day(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=6)
    with source_for(sim) as source:
        result = source.fetch_day("ETH", DAY, resolution=3600)
    start, _ = day_bounds_ms(DAY)
    hours = sorted((t - start) // 3_600_000 for t in result.frame["timestamp"].astype("int64"))
    assert hours == list(range(24))
    assert result.resolution_s == 3600 and result.stats.pages == 1


def test_today_keeps_only_closed_points(make_simulator: MakeSim) -> None:
    now = at(DAY, 6, 0, 30)
    sim = make_simulator(seed=6, clock=lambda: now)
    with source_for(sim, clock=lambda: now) as source:
        result = source.fetch_day("BTC", DAY, resolution="60")
    assert sorted(minute_index(result.frame, DAY)) == list(range(360))


def test_policy_picks_minutes_recently_and_hours_further_back(make_simulator: MakeSim) -> None:
    now = at(DAY, 12, 0)
    sim = make_simulator(seed=6, clock=lambda: now)
    with source_for(sim, clock=lambda: now, minute_history_days=30) as source:
        recent = source.fetch_day("BTC", DAY - timedelta(days=3))
        old = source.fetch_day("BTC", DAY - timedelta(days=45))
    assert (recent.resolution_s, len(recent.frame)) == (60, MINUTES_PER_DAY)
    assert (old.resolution_s, len(old.frame)) == (3600, 24)


def test_empty_minute_answer_falls_back_to_hourly(make_simulator: MakeSim) -> None:
    now = at(DAY, 12, 0)
    # the venue keeps 1-minute DVOL for 10 days only, we believe 30
    sim = make_simulator(seed=6, clock=lambda: now, dvol_minute_history_days=10)
    with source_for(sim, clock=lambda: now, minute_history_days=30) as source:
        result = source.fetch_day("ETH", DAY - timedelta(days=20))
    assert result.resolution_s == 3600 and len(result.frame) == 24
    assert result.stats.requests == 2  # the empty 1-minute answer, then the hourly one
    assert "fell back to hourly" in result.notes[0]


def test_10028_too_many_requests_is_retried(make_simulator: MakeSim) -> None:
    # 2 requests of burst, then one every 0.25 s
    sim = make_simulator(seed=6, limit_scale=0.02, window_scale=0.1)
    with source_for(sim, rate_limit_wait_s=0.3) as source:
        results = [source.fetch_day("BTC", DAY - timedelta(days=d), resolution="60") for d in range(3)]
    assert all(len(r.frame) == MINUTES_PER_DAY for r in results)
    assert sum(r.stats.rate_limited for r in results) >= 1
    assert "10028" in next(r.stats.last_error for r in results if r.stats.last_error)
    assert breaches(sim, "deribit").get("10028", 0) >= 1


@pytest.mark.parametrize("fault", ["http503:count=2", "drop:count=1", "maintenance:count=1", "html:count=1"])
def test_transient_failures_are_retried(fault: str, make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=6)
    sim.add_fault(f"deribit:{fault}")
    with source_for(sim) as source:
        result = source.fetch_day("BTC", DAY, resolution="3600")
    assert len(result.frame) == 24
    assert result.stats.retries == int(fault.rsplit("=", 1)[1])


def test_slow_answer_past_the_timeout_is_retried(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=6)
    sim.add_fault("deribit:slow:delay=2,count=1")
    with source_for(sim, timeout_ms=400) as source:
        result = source.fetch_day("BTC", DAY, resolution="3600")
    assert len(result.frame) == 24 and result.stats.retries == 1
    assert "ReadTimeout" in (result.stats.last_error or "")


def test_other_json_rpc_errors_fail_at_once_with_code_and_message(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=6)
    sim.add_fault("deribit:http400")
    with source_for(sim) as source, pytest.raises(VenueError) as info:
        source.fetch_day("ETH", DAY, resolution="60")
    text = str(info.value)
    assert text.startswith(
        "deribit ETH 2024-03-05: permanent error: Deribit error 11094 'internal_server_error'"
    )
    assert sim.stats()["venues"]["deribit"]["requests"] == 1


def test_permanent_outage_names_the_last_error(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=6)
    sim.add_fault("deribit:http503")
    with source_for(sim) as source, pytest.raises(VenueError) as info:
        source.fetch_day("BTC", DAY, resolution="3600")
    text = str(info.value)
    assert "deribit BTC 2024-03-05: gave up after 6 retries" in text
    assert "last error: DeribitRpcError: HTTP 503" in text


def test_unknown_currency_is_refused_before_any_request(make_simulator: MakeSim) -> None:
    sim = make_simulator()
    with (
        source_for(sim) as source,
        pytest.raises(UnknownSymbolError, match=r"'SOL' \(no close match\).*BTC, ETH"),
    ):
        source.fetch_day("SOL", DAY)
    assert sim.stats()["venues"]["deribit"]["requests"] == 0


def test_null_price_is_kept_as_nan(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=6)
    sim.add_fault("deribit:invalid:what=nan,rows=2")
    with source_for(sim) as source:
        result = source.fetch_day("BTC", DAY, resolution="3600")
    assert len(result.frame) == 24
    assert int(result.frame[["open", "high", "low", "close"]].isna().any(axis=1).sum()) == 2


def _stuck_continuation(path: str, status: int, body: bytes) -> bytes | None:
    payload = json.loads(body)
    end = int(dict(httpx.QueryParams(path.split("?", 1)[1]))["end_timestamp"])
    payload["result"]["continuation"] = end  # "page back" to where we already are
    return json.dumps(payload).encode()


def test_continuation_that_does_not_move_back_is_malformed(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=6)
    with CorruptingProxy(sim.url, _stuck_continuation) as proxy:
        source = DeribitDvolSource(proxy.url + "/deribit", retry=FAST_RETRY, rate_limit_ms=0)
        with source, pytest.raises(MalformedResponseError, match="does not move back"):
            source.fetch_day("BTC", DAY, resolution="60")
    assert proxy.rewritten == 1


def test_registry_builds_the_dvol_source(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=6)
    source = get_source("deribit", sim.venue_base_url("deribit"), max_retries=1, minute_history_days=None)
    try:
        assert isinstance(source, DeribitDvolSource)
        assert source.retry.max_retries == 1 and source.minute_history_days == 30
        assert len(source.fetch_day("ETH", DAY, "3600").frame) == 24
    finally:
        source.close()
