"""Resampling reproduces the exchange's own candles: real 5m pair, filler minutes, incomplete bins."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from marketdata_assets.frames import candles_from_rows
from marketdata_assets.transform.resample import RESAMPLED_COLUMNS, TIMEFRAMES, resample_all, resample_candles
from marketdata_assets_tests.transform.real_fixtures import binance_archive_day, freqtrade_feather

T0 = 1_709_596_800_000  # 2024-03-05 00:00 UTC
MINUTE = 60_000


def ts(minute: int) -> pd.Timestamp:
    return pd.Timestamp(T0 + minute * MINUTE, unit="ms", tz="UTC")


def trade(minute: int, o: float, h: float, lo: float, c: float, v: float = 1.0) -> list[float]:
    return [T0 + minute * MINUTE, o, h, lo, c, v]


def filler(minute: int, price: float) -> list[float]:
    return [T0 + minute * MINUTE, price, price, price, price, 0.0]


def pandas_reference(df: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Plain pandas resampling (first/max/min/last/sum), valid when there are no filler rows."""
    rule = f"{TIMEFRAMES[timeframe]}min"
    grouped = df.set_index("timestamp").resample(rule, label="left", closed="left")
    out = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    counts = grouped["close"].count()
    return out[counts > 0].reset_index()


def test_timeframes() -> None:
    assert TIMEFRAMES == {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}


def test_real_sparse_1m_reproduces_the_exchange_5m_candles() -> None:
    one_minute = freqtrade_feather("XRP_ETH_1m.feather")
    exchange_5m = freqtrade_feather("XRP_ETH_5m.feather")
    ours = resample_candles(one_minute, "5m")

    assert list(ours.columns) == RESAMPLED_COLUMNS
    assert len(ours) == len(exchange_5m) == 706
    assert ours["timestamp"].equals(exchange_5m["timestamp"])
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(ours[column].to_numpy(), exchange_5m[column].to_numpy(), err_msg=column)
    np.testing.assert_allclose(
        ours["volume"].to_numpy(), exchange_5m["volume"].to_numpy(), rtol=1e-12, atol=0
    )
    # the source omits minutes without trades: most bins are incomplete, and say so
    assert (ours["n_minutes"] <= 5).all() and (ours["expected_minutes"] == 5).all()
    assert ours["complete"].tolist() == (ours["n_minutes"] == 5).tolist()
    assert int(ours["n_minutes"].sum()) == len(one_minute)


@pytest.mark.parametrize("timeframe", list(TIMEFRAMES))
def test_without_fillers_every_timeframe_matches_plain_pandas(timeframe: str) -> None:
    one_minute = freqtrade_feather("XRP_ETH_1m.feather")
    ours = resample_all(one_minute)[timeframe]
    reference = pandas_reference(one_minute, timeframe)
    pd.testing.assert_frame_equal(ours[reference.columns.tolist()], reference, check_exact=False, rtol=1e-12)


def test_a_filler_first_minute_never_sets_the_open_high_or_low() -> None:
    # previous close 10.0; the 5m bin opens with a filler at 10.0, then trades between 11 and 12
    df = candles_from_rows(
        [
            filler(0, 10.0),
            trade(1, 11.0, 11.5, 11.0, 11.2, 2.0),
            trade(2, 11.2, 12.0, 11.1, 11.8, 3.0),
            trade(3, 11.8, 11.9, 11.4, 11.5, 1.0),
            filler(4, 11.5),
        ]
    )
    (candle,) = resample_candles(df, "5m").to_dict("records")
    assert (candle["open"], candle["high"], candle["low"], candle["close"]) == (11.0, 12.0, 11.0, 11.5)
    assert candle["volume"] == 6.0
    assert (candle["n_minutes"], candle["expected_minutes"], candle["complete"]) == (5, 5, True)


def test_a_bin_of_only_fillers_is_a_zero_volume_candle_at_the_previous_close() -> None:
    df = candles_from_rows(
        [trade(m, 10.0, 10.4, 9.8, 10.25, 1.0) for m in range(5)] + [filler(m, 10.25) for m in range(5, 10)]
    )
    second = resample_candles(df, "5m").iloc[1]
    assert second["timestamp"] == ts(5)
    assert (second["open"], second["high"], second["low"], second["close"], second["volume"]) == (
        10.25,
        10.25,
        10.25,
        10.25,
        0.0,
    )
    assert bool(second["complete"])


def test_incomplete_bins_are_produced_and_flagged_empty_bins_are_not() -> None:
    df = candles_from_rows(
        [trade(m, 10.0, 11.0, 9.0, 10.5) for m in (0, 1, 2, 3, 4)]  # full bin
        + [trade(m, 10.0, 11.0, 9.0, 10.5) for m in (5, 7, 9)]  # 3 of 5 minutes
        + [trade(m, 10.0, 11.0, 9.0, 10.5) for m in (20,)]  # bins 10 and 15 have no row at all
    )
    out = resample_candles(df, "5m")
    assert out["timestamp"].tolist() == [ts(0), ts(5), ts(20)]
    assert out["n_minutes"].tolist() == [5, 3, 1]
    assert out["complete"].tolist() == [True, False, False]


def test_bins_are_aligned_to_utc_midnight() -> None:
    df = candles_from_rows([trade(m, 10.0, 11.0, 9.0, 10.5) for m in (-1, 0, 239, 240, 1439, 1440)])
    out = resample_all(df, ["4h", "1d"])
    assert out["4h"]["timestamp"].tolist() == [ts(-240), ts(0), ts(240), ts(1200), ts(1440)]
    assert out["1d"]["timestamp"].tolist() == [ts(-1440), ts(0), ts(1440)]
    assert out["1d"]["expected_minutes"].tolist() == [1440, 1440, 1440]
    assert str(out["1d"]["timestamp"].dtype) == "datetime64[ms, UTC]"


def test_real_binance_day_with_a_filler_resamples_to_1d_and_1h() -> None:
    day = binance_archive_day("binance_spot_ADABTC_1m_2021-11-27.csv")
    filler_rows = day[day["volume"] == 0]
    assert len(filler_rows) == 1
    filler_time = filler_rows["timestamp"].iloc[0]

    out = resample_all(day, ["1h", "1d"])
    (daily,) = out["1d"].to_dict("records")
    assert daily["timestamp"] == pd.Timestamp("2021-11-27", tz="UTC")
    assert daily["open"] == day["open"].iloc[0]
    assert daily["close"] == day["close"].iloc[-1]
    assert (daily["high"], daily["low"]) == (day["high"].max(), day["low"].min())
    assert daily["volume"] == pytest.approx(day["volume"].sum(), rel=1e-12)
    assert (daily["n_minutes"], daily["complete"]) == (1440, True)

    hourly = out["1h"]
    assert len(hourly) == 24 and hourly["complete"].all() and (hourly["n_minutes"] == 60).all()
    assert hourly["volume"].sum() == pytest.approx(day["volume"].sum(), rel=1e-12)
    hour = hourly[hourly["timestamp"] == filler_time.floor("h")].iloc[0]
    rows = day[day["timestamp"].dt.floor("h") == filler_time.floor("h")]
    real = rows[rows["volume"] > 0]
    assert hour["open"] == real["open"].iloc[0]
    assert (hour["high"], hour["low"], hour["close"]) == (
        real["high"].max(),
        real["low"].min(),
        real["close"].iloc[-1],
    )


def test_real_binance_filler_at_the_start_of_a_bin_takes_the_open_from_the_next_trade() -> None:
    day = binance_archive_day("binance_spot_ADABTC_1m_2021-11-27.csv")
    filler_index = int(np.flatnonzero(day["volume"].to_numpy() == 0)[0])
    bin_start = day["timestamp"].iloc[filler_index]
    window = day.iloc[filler_index : filler_index + 3]  # 22:42 filler, 22:43 and 22:44 trades: one 5m bin
    (candle,) = resample_candles(window, "5m").to_dict("records")
    assert candle["timestamp"] == bin_start.floor("5min")
    assert candle["open"] == day["open"].iloc[filler_index + 1]
    assert candle["n_minutes"] == 3 and not candle["complete"]


def test_unsorted_input_is_sorted_and_duplicates_are_refused() -> None:
    rows = [trade(m, 10.0 + m, 11.0 + m, 9.0 + m, 10.5 + m) for m in range(5)]
    shuffled = candles_from_rows([rows[i] for i in (3, 0, 4, 1, 2)])
    assert resample_candles(shuffled, "5m").equals(resample_candles(candles_from_rows(rows), "5m"))
    with pytest.raises(ValueError, match="duplicate"):
        resample_candles(candles_from_rows(rows + rows[:1]), "5m")
    with pytest.raises(ValueError, match="unknown timeframe"):
        resample_candles(candles_from_rows(rows), "2m")


def test_empty_input_gives_an_empty_typed_frame() -> None:
    out = resample_candles(candles_from_rows([]), "1h")
    assert out.empty and list(out.columns) == RESAMPLED_COLUMNS
    assert str(out["timestamp"].dtype) == "datetime64[ms, UTC]" and out["complete"].dtype == bool


def test_a_year_of_minutes_resamples_in_well_under_a_second() -> None:
    n = 365 * 1440
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    df = pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex((T0 + np.arange(n) * MINUTE).astype("datetime64[ms]")).tz_localize(
                "UTC"
            ),
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": rng.random(n),
        }
    )
    started = time.perf_counter()
    out = resample_all(df)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{elapsed:.3f} s"
    assert len(out["1d"]) == 365 and out["1d"]["complete"].all()
    assert len(out["5m"]) == n // 5
