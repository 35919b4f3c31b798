"""Gap accounting: no-trade minutes, Binance fillers and outages, as queryable gap-table rows."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from marketdata_assets.frames import candles_from_rows, day_bounds_ms
from marketdata_assets.quality.gaps import (
    DEFAULT_OUTAGE_MIN_MINUTES,
    FILLER,
    GAP_COLUMNS,
    NO_TRADES,
    NO_TRADES_MAX_MINUTES,
    OUTAGE,
    Completeness,
    completeness,
    filler_mask,
    find_gaps,
    missing_minute_ranges,
    venue_presence,
)
from marketdata_assets_tests.storage.helpers import minute_candles
from marketdata_assets_tests.transform.real_fixtures import binance_archive_day, freqtrade_feather

DAY = date(2024, 3, 5)
T0 = day_bounds_ms(DAY)[0]
MINUTE = 60_000


def at(minute: int) -> pd.Timestamp:
    return pd.Timestamp(T0 + minute * MINUTE, unit="ms", tz="UTC")


def day_frame(missing: set[int] = frozenset(), fillers: set[int] = frozenset()) -> pd.DataFrame:
    rows = []
    close = 100.0
    for m in range(1440):
        if m in missing:
            continue
        if m in fillers:
            rows.append([T0 + m * MINUTE, close, close, close, close, 0.0])
        else:
            rows.append([T0 + m * MINUTE, close, close + 1, close - 1, close + 0.5, 2.0])
            close += 0.5
    return candles_from_rows(rows)


def as_tuples(gaps: pd.DataFrame) -> list[tuple]:
    return [(r.start, r.end, r.minutes, r.kind) for r in gaps.itertuples(index=False)]


def test_defaults_match_the_documented_threshold() -> None:
    assert (NO_TRADES_MAX_MINUTES, DEFAULT_OUTAGE_MIN_MINUTES) == (5, 6)


def test_a_day_with_a_no_trade_minute_a_filler_and_a_three_hour_outage() -> None:
    outage = set(range(600, 780))
    df = day_frame(missing={100} | outage, fillers={200})
    gaps = find_gaps(df, DAY, "binance", "BTC/USDT")

    assert list(gaps.columns) == GAP_COLUMNS
    assert as_tuples(gaps) == [
        (at(100), at(101), 1, NO_TRADES),
        (at(200), at(201), 1, FILLER),
        (at(600), at(780), 180, OUTAGE),
    ]
    assert set(gaps["venue"]) == {"binance"} and set(gaps["symbol"]) == {"BTC/USDT"}
    assert (
        str(gaps["start"].dtype) == "datetime64[ms, UTC]" and str(gaps["end"].dtype) == "datetime64[ms, UTC]"
    )
    assert gaps["minutes"].dtype == np.int64
    # end is exclusive: end - start == minutes
    assert ((gaps["end"] - gaps["start"]) == pd.to_timedelta(gaps["minutes"], unit="min")).all()

    assert completeness(df, DAY) == Completeness(present=1440 - 181, expected=1440, missing=181)
    assert missing_minute_ranges(df, DAY) == [(at(100), at(101)), (at(600), at(780))]


def test_an_empty_day_is_one_outage() -> None:
    empty = candles_from_rows([])
    gaps = find_gaps(empty, DAY, "okx", "ETH/USDT")
    assert as_tuples(gaps) == [(at(0), at(1440), 1440, OUTAGE)]
    assert gaps["end"].iloc[0] == pd.Timestamp("2024-03-06", tz="UTC")
    assert completeness(empty, DAY) == (0, 1440, 1440)
    assert missing_minute_ranges(empty, DAY) == [(at(0), at(1440))]


def test_a_complete_day_has_no_gaps() -> None:
    df = day_frame()
    gaps = find_gaps(df, DAY, "bybit", "BTC/USDT")
    assert gaps.empty and list(gaps.columns) == GAP_COLUMNS
    assert completeness(df, DAY) == (1440, 1440, 0)
    assert missing_minute_ranges(df, DAY) == []


def test_the_threshold_separates_no_trades_from_outages() -> None:
    df = day_frame(missing=set(range(10, 15)) | set(range(100, 106)))  # a 5- and a 6-minute run
    assert [(r.minutes, r.kind) for r in find_gaps(df, DAY, "okx", "X").itertuples()] == [
        (5, NO_TRADES),
        (6, OUTAGE),
    ]
    relaxed = find_gaps(df, DAY, "okx", "X", outage_min_minutes=30)
    assert set(relaxed["kind"]) == {NO_TRADES}
    strict = find_gaps(df, DAY, "okx", "X", outage_min_minutes=1)
    assert set(strict["kind"]) == {OUTAGE}
    with pytest.raises(ValueError, match="outage_min_minutes"):
        find_gaps(df, DAY, "okx", "X", outage_min_minutes=0)


def test_leading_and_trailing_runs_use_the_same_threshold() -> None:
    df = day_frame(missing=set(range(0, 3)) | set(range(1380, 1440)))
    assert as_tuples(find_gaps(df, DAY, "okx", "X")) == [
        (at(0), at(3), 3, NO_TRADES),
        (at(1380), at(1440), 60, OUTAGE),
    ]
    df = day_frame(missing=set(range(0, 120)) | {1439})
    assert as_tuples(find_gaps(df, DAY, "okx", "X")) == [
        (at(0), at(120), 120, OUTAGE),
        (at(1439), at(1440), 1, NO_TRADES),
    ]


def test_consecutive_fillers_form_one_range_of_any_length() -> None:
    df = day_frame(fillers=set(range(300, 303)) | set(range(900, 960)))
    assert as_tuples(find_gaps(df, DAY, "binance", "X")) == [
        (at(300), at(303), 3, FILLER),
        (at(900), at(960), 60, FILLER),
    ]
    assert completeness(df, DAY).missing == 0  # fillers are present rows


def test_filler_means_flat_and_zero_volume() -> None:
    df = candles_from_rows(
        [
            [T0, 5.0, 5.0, 5.0, 5.0, 0.0],  # filler
            [T0 + MINUTE, 5.0, 5.0, 5.0, 5.0, 1.0],  # flat but traded
            [T0 + 2 * MINUTE, 5.0, 6.0, 5.0, 5.0, 0.0],  # zero volume with a range: not Binance's filler
        ]
    )
    assert filler_mask(df).tolist() == [True, False, False]


def test_rows_outside_the_day_are_ignored() -> None:
    df = pd.concat([candles_from_rows([[T0 - MINUTE, 1, 1, 1, 1, 1]]), day_frame()], ignore_index=True)
    assert find_gaps(df, DAY, "okx", "X").empty
    assert completeness(df, DAY) == (1440, 1440, 0)


def test_real_binance_archive_day_has_one_filler_and_no_missing_minute() -> None:
    df = binance_archive_day("binance_spot_ADABTC_1m_2021-11-27.csv")
    day = date(2021, 11, 27)
    gaps = find_gaps(df, day, "binance", "ADA/BTC")
    assert as_tuples(gaps) == [
        (
            pd.Timestamp("2021-11-27 22:42", tz="UTC"),
            pd.Timestamp("2021-11-27 22:43", tz="UTC"),
            1,
            FILLER,
        )
    ]
    assert completeness(df, day) == (1440, 1440, 0)


def test_real_sparse_day_accounts_for_every_missing_minute() -> None:
    day = date(2019, 10, 11)
    df = freqtrade_feather("XRP_ETH_1m.feather")
    df = df[df["timestamp"].dt.date == day]
    gaps = find_gaps(df, day, "binance", "XRP/ETH")
    missing = gaps[gaps["kind"] != FILLER]
    assert int(missing["minutes"].sum()) == completeness(df, day).missing > 0
    assert (
        missing["kind"] == np.where(missing["minutes"] >= DEFAULT_OUTAGE_MIN_MINUTES, OUTAGE, NO_TRADES)
    ).all()
    assert [(s, e) for s, e, *_ in as_tuples(missing)] == missing_minute_ranges(df, day)


def _xrp_eth_day(day: date) -> pd.DataFrame:
    df = freqtrade_feather("XRP_ETH_1m.feather")
    return df[df["timestamp"].dt.date == day].reset_index(drop=True)


@pytest.mark.parametrize("day", [date(2019, 10, 11), date(2019, 10, 12)])
def test_quiet_stretches_of_an_illiquid_pair_are_no_trades_while_the_venue_trades(day: date) -> None:
    """Real Binance XRP/ETH: the length threshold alone calls quiet stretches outages; corroborated by
    another symbol of the venue that traded through them, they are minutes without trades."""
    df = _xrp_eth_day(day)
    alone = find_gaps(df, day, "binance", "XRPETH")
    assert (alone["kind"] == OUTAGE).sum() >= 2  # what the threshold alone says

    liquid = minute_candles(day)  # another symbol of the venue, a candle every minute
    corroborated = find_gaps(df, day, "binance", "XRPETH", venue_active=venue_presence([liquid], day))
    assert not (corroborated["kind"] == OUTAGE).any()
    missing = corroborated[corroborated["kind"] != FILLER]
    assert int(missing["minutes"].sum()) == completeness(df, day).missing  # every minute still accounted


def test_a_venue_wide_outage_is_an_outage_even_for_the_illiquid_pair() -> None:
    day = date(2019, 10, 11)
    start, end = pd.Timestamp("2019-10-11 12:00", tz="UTC"), pd.Timestamp("2019-10-11 13:00", tz="UTC")

    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["timestamp"] < start) | (frame["timestamp"] >= end)].reset_index(drop=True)

    df, liquid = cut(_xrp_eth_day(day)), cut(minute_candles(day))
    gaps = find_gaps(df, day, "binance", "XRPETH", venue_active=venue_presence([liquid], day))
    outages = gaps[gaps["kind"] == OUTAGE]
    assert len(outages) == 1
    assert outages["start"].iloc[0] <= start and outages["end"].iloc[0] >= end
    # the hour itself is the outage; the pair's own quiet minutes around it stay no_trades
    assert int(outages["minutes"].iloc[0]) - 60 < DEFAULT_OUTAGE_MIN_MINUTES * 4


def test_without_other_symbols_the_threshold_decides() -> None:
    day = date(2019, 10, 11)
    df = _xrp_eth_day(day)
    assert venue_presence([], day) is None
    pd.testing.assert_frame_equal(
        find_gaps(df, day, "binance", "XRPETH", venue_active=None), find_gaps(df, day, "binance", "XRPETH")
    )
