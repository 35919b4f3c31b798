"""CcxtCandleSource against the local simulator over real HTTP (stock ccxt, limits ON)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from marketdata_assets.frames import CANDLE_COLUMNS, MINUTES_PER_DAY, TIMESTAMP_DTYPE, day_bounds_ms
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.venues.base import MalformedResponseError, UnknownSymbolError, VenueError
from marketdata_assets.venues.ccxt_venue import CcxtCandleSource
from marketdata_assets.venues.registry import VENUES, get_source

from .helpers import DAY, FAST_RETRY, PATHS, CorruptingProxy, at, breaches, minute_index, venue_stats

MakeSim = Callable[..., SimulatorServer]


@pytest.fixture
def open_source() -> Iterator[Callable[..., CcxtCandleSource]]:
    sources: list[CcxtCandleSource] = []

    def factory(sim: SimulatorServer, venue: str, **kw: Any) -> CcxtCandleSource:
        kw.setdefault("rate_limit_ms", 10)
        kw.setdefault("retry", FAST_RETRY)
        source = CcxtCandleSource(venue, sim.venue_base_url(venue), **kw)
        sources.append(source)
        return source

    yield factory
    for source in sources:
        source.close()


@pytest.mark.parametrize("venue", VENUES)
def test_full_day_is_1440_closed_candles_in_order(venue: str, make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=3)  # real limits
    source = get_source(venue, sim.venue_base_url(venue), rate_limit_ms=10, retry=FAST_RETRY)
    try:
        result = source.fetch_day("BTC/USDT", DAY)
    finally:
        source.close()
    frame = result.frame
    assert list(frame.columns) == CANDLE_COLUMNS
    assert str(frame["timestamp"].dtype) == TIMESTAMP_DTYPE
    assert minute_index(frame, DAY) == list(range(MINUTES_PER_DAY))
    assert frame[["open", "high", "low", "close", "volume"]].notna().all().all()
    assert (frame["high"] >= frame["low"]).all()
    stats = result.stats
    pages = {"binance": 2, "bybit": 2, "okx": 15}[venue]
    assert (stats.requests, stats.pages, stats.retries) == (pages, pages, 0)
    assert (stats.rows_received, stats.duplicate_rows) == (MINUTES_PER_DAY, 0)
    assert stats.source_url == sim.url + PATHS[venue]
    assert result.open_candles_dropped == 0 and result.rows_outside_day == 0
    seen = venue_stats(sim, venue)
    assert seen["limit_breaches"] == 0 and seen["bans_active"] == []
    assert sum(seen["requests_by_endpoint"].values()) == pages + 1  # + one load_markets


@pytest.mark.parametrize("venue", VENUES)
def test_today_returns_only_closed_candles(venue: str, make_simulator: MakeSim, open_source) -> None:
    now = at(DAY, 10, 30, 30)  # the 10:30 candle is still open
    sim = make_simulator(seed=3, clock=lambda: now)
    result = open_source(sim, venue, clock=lambda: now).fetch_day("BTC/USDT", DAY)
    assert minute_index(result.frame, DAY) == list(range(10 * 60 + 30))  # 00:00 .. 10:29
    assert result.open_candles_dropped == 1  # the venue served 10:30; we dropped it


def test_day_that_has_not_started_costs_no_request(make_simulator: MakeSim, open_source) -> None:
    now = at(DAY, 0, 0, 30)
    sim = make_simulator(clock=lambda: now)
    result = open_source(sim, "binance", clock=lambda: now).fetch_day("BTC/USDT", DAY)
    assert result.frame.empty and result.stats.requests == 0


@pytest.mark.parametrize("venue", VENUES)
def test_outage_longer_than_a_page_is_a_gap_and_paging_goes_on(
    venue: str, make_simulator: MakeSim, open_source
) -> None:
    sim = make_simulator(seed=5)
    start, _ = day_bounds_ms(DAY)
    # 02:00-19:00 UTC: 17 hours, wider than any venue's page
    sim.add_outage(venue, start + 120 * 60_000, start + 1140 * 60_000, symbol="BTC/USDT")
    result = open_source(sim, venue).fetch_day("BTC/USDT", DAY)
    minutes = minute_index(result.frame, DAY)
    assert minutes == [m for m in range(MINUTES_PER_DAY) if not 120 <= m < 1140]
    assert minutes[-1] == 1439  # pagination carried on past the gap
    assert result.stats.empty_pages >= 1
    assert result.stats.requests == result.stats.pages


@pytest.mark.parametrize(("venue", "pages"), [("okx", 15), ("binance", 2)])
def test_page_boundary_duplicates_are_kept_and_counted(
    venue: str, pages: int, make_simulator: MakeSim, open_source
) -> None:
    sim = make_simulator(seed=2)
    sim.add_fault(f"{venue}:duplicates:rows=1")  # each page starts one row before the cursor
    result = open_source(sim, venue).fetch_day("BTC/USDT", DAY)
    frame = result.frame
    assert result.stats.duplicate_rows == pages - 1
    assert len(frame) == MINUTES_PER_DAY + pages - 1  # raw keeps them; the quality layer dedupes
    assert frame["timestamp"].nunique() == MINUTES_PER_DAY
    assert result.rows_outside_day == 1  # the first page's extra row is yesterday's 23:59
    assert result.stats.rows_received == MINUTES_PER_DAY + pages


def test_binance_429_is_retried_after_retry_after_without_a_ban(make_simulator: MakeSim, open_source) -> None:
    # 30 weight per 1.2 s: exchangeInfo (20) + 15 pages of klines (2 each) cannot fit in one window
    sim = make_simulator(seed=1, limit_scale=0.005, window_scale=0.02)
    result = open_source(sim, "binance", page_limit=100).fetch_day("BTC/USDT", DAY)
    assert minute_index(result.frame, DAY) == list(range(MINUTES_PER_DAY))
    assert result.stats.rate_limited >= 1 and result.stats.retries >= 1
    assert result.stats.waited_s >= 1.0  # Retry-After is whole seconds, at least 1
    assert "DDoSProtection" in (result.stats.last_error or "")
    kinds = breaches(sim, "binance")
    assert kinds.get("429", 0) >= 1 and "418" not in kinds
    assert venue_stats(sim, "binance")["bans_active"] == []


def test_bybit_10006_is_retried_without_earning_the_403_ban(make_simulator: MakeSim, open_source) -> None:
    sim = make_simulator(seed=1, limit_scale=0.005, window_scale=0.2)  # 3 requests per 1 s
    source = open_source(sim, "bybit", page_limit=200, rate_limit_wait_s=1.0)
    result = source.fetch_day("BTC/USDT", DAY)
    assert minute_index(result.frame, DAY) == list(range(MINUTES_PER_DAY))
    assert result.stats.rate_limited >= 1
    assert "RateLimitExceeded" in (result.stats.last_error or "")
    kinds = breaches(sim, "bybit")
    assert kinds.get("10006", 0) >= 1 and "403" not in kinds


def test_okx_50011_is_retried(make_simulator: MakeSim, open_source) -> None:
    sim = make_simulator(seed=1, limit_scale=0.25, window_scale=0.5)  # history-candles: 5 per 1 s
    result = open_source(sim, "okx", rate_limit_wait_s=1.0).fetch_day("BTC/USDT", DAY)
    assert minute_index(result.frame, DAY) == list(range(MINUTES_PER_DAY))
    assert result.stats.rate_limited >= 1
    assert breaches(sim, "okx").get("50011", 0) >= 1


def _hammer_until_banned(sim: SimulatorServer) -> None:
    """Ignore Retry-After like a careless client until Binance answers 418."""
    url = sim.venue_base_url("binance") + "/api/v3/klines"
    with httpx.Client() as client:
        for _ in range(200):
            status = client.get(url, params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1}).status_code
            if status == 418:
                return
    raise AssertionError("the simulator never banned the hammering client")


def test_short_ban_is_waited_out(make_simulator: MakeSim, open_source) -> None:
    sim = make_simulator(seed=1, limit_scale=0.005, window_scale=0.02, ban_scale=0.01)  # 1.2 s ban
    _hammer_until_banned(sim)
    result = open_source(sim, "binance").fetch_day("BTC/USDT", DAY)
    assert len(result.frame) == MINUTES_PER_DAY


def test_long_ban_fails_at_once_and_says_so(make_simulator: MakeSim, open_source) -> None:
    sim = make_simulator(seed=1, limit_scale=0.005, window_scale=0.02)  # a real 120 s ban
    _hammer_until_banned(sim)
    source = open_source(sim, "binance")
    with pytest.raises(VenueError) as info:
        source.fetch_day("BTC/USDT", DAY)
    text = str(info.value)
    assert "binance BTC/USDT 2024-03-05" in text
    assert "longer than max_ban_wait_s=10s" in text
    assert "418" in text
    assert source.market_stats.requests == 1  # no hammering of a banned IP


@pytest.mark.parametrize(
    ("venue", "fault"),
    [
        ("binance", "http500:count=2"),
        ("bybit", "drop:count=2"),
        ("okx", "html:count=2"),  # an HTML error page (502) instead of JSON
        ("binance", "truncate:count=2"),
        ("bybit", "maintenance:count=1"),
        ("okx", "http502:count=1"),
    ],
)
def test_transient_failures_are_retried(venue: str, fault: str, make_simulator: MakeSim, open_source) -> None:
    sim = make_simulator(seed=4)
    sim.add_fault(f"{venue}:{fault},endpoint=ohlcv")
    result = open_source(sim, venue).fetch_day("BTC/USDT", DAY)
    count = int(fault.rsplit("count=", 1)[1])
    assert len(result.frame) == MINUTES_PER_DAY
    assert result.stats.retries == count
    assert result.stats.requests == result.stats.pages + count
    assert result.stats.last_error


def test_slow_answer_past_the_timeout_is_retried(make_simulator: MakeSim, open_source) -> None:
    sim = make_simulator(seed=4)
    sim.add_fault("binance:slow:delay=2,count=1,endpoint=klines")
    result = open_source(sim, "binance", timeout_ms=500).fetch_day("BTC/USDT", DAY)
    assert len(result.frame) == MINUTES_PER_DAY
    assert result.stats.retries == 1
    assert "RequestTimeout" in (result.stats.last_error or "")


def test_permanently_failing_venue_names_venue_symbol_day_and_last_error(
    make_simulator: MakeSim, open_source
) -> None:
    sim = make_simulator(seed=4)
    sim.add_fault("okx:http503:endpoint=history-candles")
    source = open_source(sim, "okx", retry=FAST_RETRY.__class__(max_retries=2, base_delay_s=0.01))
    with pytest.raises(VenueError) as info:
        source.fetch_day("SOL/USDT", DAY)
    text = str(info.value)
    assert text.startswith("okx SOL/USDT 2024-03-05: gave up after 2 retries fetching page 2024-03-05T00:00")
    assert "(last error: HTTP 503: ExchangeNotAvailable: okx" in text
    assert venue_stats(sim, "okx")["requests_by_endpoint"]["history-candles"] == 3


def test_wrong_base_url_fails_fast_without_retries(make_simulator: MakeSim) -> None:
    sim = make_simulator()
    source = CcxtCandleSource("bybit", sim.url + "/no-such-venue", retry=FAST_RETRY)
    try:
        with pytest.raises(VenueError, match=r"bybit BTC/USDT 2024-03-05: could not load markets: permanent"):
            source.fetch_day("BTC/USDT", DAY)
        assert source.market_stats.requests == 1
    finally:
        source.close()


def _html_instead_of_json(path: str, status: int, body: bytes) -> bytes | None:
    return b"<html><body>Welcome!</body></html>" if "/market/kline" in path else None


def test_non_json_200_body_is_retried(make_simulator: MakeSim, open_source) -> None:
    sim = make_simulator(seed=4)
    with CorruptingProxy(sim.url, _html_instead_of_json, budget=2) as proxy:
        source = CcxtCandleSource("bybit", proxy.url + "/bybit", rate_limit_ms=10, retry=FAST_RETRY)
        try:
            result = source.fetch_day("BTC/USDT", DAY)
        finally:
            source.close()
    assert len(result.frame) == MINUTES_PER_DAY
    assert result.stats.retries == 2
    assert "kline answer has no JSON body" in (result.stats.last_error or "")


def test_always_non_json_fails_as_malformed(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=4)
    with CorruptingProxy(sim.url, _html_instead_of_json) as proxy:
        source = CcxtCandleSource("bybit", proxy.url + "/bybit", rate_limit_ms=10, retry=FAST_RETRY)
        try:
            with pytest.raises(MalformedResponseError) as info:
                source.fetch_day("ETH/USDT", DAY)
        finally:
            source.close()
    error = info.value
    assert (error.venue, error.symbol, error.day) == ("bybit", "ETH/USDT", DAY)
    assert "malformed response: kline answer has no JSON body [page 2024-03-05T00:00" in str(error)
    assert proxy.rewritten == 1 + FAST_RETRY.max_malformed_retries


def _drop_a_field(path: str, status: int, body: bytes) -> bytes | None:
    if "/api/v3/klines" not in path:
        return None
    rows = json.loads(body)
    rows[3] = rows[3][:4]  # open time, open, high, low: no close, no volume
    return json.dumps(rows).encode()


def _non_numeric_price(path: str, status: int, body: bytes) -> bytes | None:
    if "history-candles" not in path:
        return None
    payload = json.loads(body)
    payload["data"][0][2] = "n/a"
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("venue", "rewrite", "what"),
    [
        ("binance", _drop_a_field, "row has 4 fields, expected 12"),
        ("okx", _non_numeric_price, "high is not a number"),
    ],
)
def test_malformed_rows_fail_naming_what_was_wrong(
    venue: str, rewrite: Callable[..., bytes | None], what: str, make_simulator: MakeSim
) -> None:
    sim = make_simulator(seed=4)
    with CorruptingProxy(sim.url, rewrite) as proxy:
        source = CcxtCandleSource(venue, f"{proxy.url}/{venue}", rate_limit_ms=10, retry=FAST_RETRY)
        try:
            with pytest.raises(MalformedResponseError) as info:
                source.fetch_day("BTC/USDT", DAY)
        finally:
            source.close()
    assert str(info.value).startswith(f"{venue} BTC/USDT 2024-03-05: malformed response: {what}")
    assert info.value.what.startswith(what)


def test_invalid_values_are_data_not_malformed(make_simulator: MakeSim, open_source) -> None:
    sim = make_simulator(seed=4)
    sim.add_fault("binance:invalid:what=nan,rows=2")
    result = open_source(sim, "binance").fetch_day("BTC/USDT", DAY)
    assert len(result.frame) == MINUTES_PER_DAY
    assert int(result.frame["close"].isna().sum()) == 4  # 2 rows on each of the 2 pages


def test_unknown_symbol_lists_close_matches(make_simulator: MakeSim, open_source) -> None:
    sim = make_simulator()
    source = open_source(sim, "binance")
    with pytest.raises(UnknownSymbolError) as info:
        source.fetch_day("BTC/USDX", DAY)
    assert "did you mean BTC/USDT" in str(info.value)
    with pytest.raises(UnknownSymbolError, match=r"'DOGEUSDT' \(did you mean DOGE/USDT\?\)"):
        source.check_symbols(["ETH/USDT", "DOGEUSDT"])
    assert "SOL/USDT" in source.symbols()
    assert venue_stats(sim, "binance")["requests_by_endpoint"] == {"exchangeInfo": 1}


def test_registry_rejects_unknown_venues() -> None:
    with pytest.raises(ValueError, match="unknown venue 'kraken'"):
        get_source("kraken", None)


@pytest.mark.parametrize("venue", VENUES)
def test_rows_parsed_once_are_the_rows_parsed_twice(
    venue: str, make_simulator: MakeSim, open_source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's rows are taken from ccxt's own parse of them, kept by a hook, and plainly fine rows skip
    validate_row's per-value checks: each page gives the rows the full re-parse and checks give."""
    import math

    from marketdata_assets.venues import ccxt_venue

    sim = make_simulator(seed=2)
    sim.add_fault(f"{venue}:duplicates:rows=1")
    sim.add_fault(f"{venue}:invalid:what=nan,rows=2")
    pages: list[tuple[list, list]] = []
    real_rows = CcxtCandleSource._rows_of_last_page
    real_parsed_of = CcxtCandleSource._parsed_of

    def both(self: CcxtCandleSource, symbol: str, day: Any) -> list:
        fast = real_rows(self, symbol, day)
        assert real_parsed_of(
            self, self.wire.raw_rows(self._exchange.last_json_response), self._exchange.market(symbol)
        )
        with monkeypatch.context() as m:
            m.setattr(CcxtCandleSource, "_parsed_of", lambda self, raw_rows, market: None)
            m.setattr(ccxt_venue, "clean_row", lambda parsed, raw, min_fields: None)
            slow = real_rows(self, symbol, day)
        pages.append((fast, slow))
        return fast

    monkeypatch.setattr(CcxtCandleSource, "_rows_of_last_page", both)
    result = open_source(sim, venue).fetch_day("BTC/USDT", DAY)
    assert pages and int(result.frame["close"].isna().sum()) > 0
    for fast, slow in pages:
        assert [[type(v) for v in r] for r in fast] == [[type(v) for v in r] for r in slow]
        same = [
            [a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(f, s, strict=True)]
            for f, s in zip(fast, slow, strict=True)
        ]
        assert len(fast) == len(slow) and all(all(r) for r in same)


def test_clean_rows_are_exactly_the_rows_validate_row_accepts_as_they_are() -> None:
    from marketdata_assets.venues.ccxt_venue import clean_row, validate_row

    good = [1_709_596_800_000, 1.0, 2.0, 0.5, 1.5, 3.0]
    raw = [str(v) for v in good] + ["x"] * 6
    assert clean_row(good, raw, 12) == good
    variants = [
        (good, tuple(raw)),  # a tuple: validate_row decides
        (good, raw[:11]),
        (good[:5], raw),
        ([good[0] + 1, *good[1:]], raw),
        ([float(good[0]), *good[1:]], raw),
        ([True, *good[1:]], raw),
        ([good[0], 1, *good[2:]], raw),
        ([good[0], *good[1:5], None], raw),
        ([good[0], *good[1:5], "3.0"], raw),
        ([good[0], *good[1:5], float("nan")], raw),
    ]
    for parsed, row in variants:
        clean = clean_row(parsed, row, 12)
        if clean is not None:
            assert validate_row(parsed, row, 12) is None
            assert clean == [int(parsed[0]), *(float(v) for v in parsed[1:6])]


def test_frames_of_parsed_rows_are_the_frames_of_rows() -> None:
    import math
    import random

    import pandas as pd

    from marketdata_assets.frames import candles_from_parsed_rows, candles_from_rows

    start = day_bounds_ms(DAY)[0]
    rng = random.Random(7)
    rows = [[start + i * 60_000, *(rng.uniform(0, 1e5) for _ in range(5))] for i in range(1440)]
    rows[3][2], rows[4][5], rows[5][1] = math.nan, math.inf, -0.0
    rows.append(list(rows[0]))  # a duplicate, out of order
    for case in (rows, rows[:1], []):
        pd.testing.assert_frame_equal(
            candles_from_parsed_rows(case), candles_from_rows(case), check_exact=True
        )
