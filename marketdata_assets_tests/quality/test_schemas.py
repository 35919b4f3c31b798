"""Every schema rule, each with a frame that breaks it, and the report the Dagster checks read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import pytest

from marketdata_assets.frames import candles_from_rows, day_bounds_ms, dvol_from_rows
from marketdata_assets.quality.schemas import (
    DUPLICATES,
    OHLC,
    SCHEMA,
    DvolCandles,
    RawCandles,
    RawDvol,
    ValidatedCandles,
    validate_candles,
)

DAY = date(2024, 3, 5)
START_MS = day_bounds_ms(DAY)[0]
MINUTE = 60_000


def good_day(n: int = 10) -> pd.DataFrame:
    return candles_from_rows([[START_MS + i * MINUTE, 10.0, 11.0, 9.0, 10.5, 3.0] for i in range(n)])


def with_value(column: str, row: int, value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, column] = value
        return df

    return mutate


def with_timestamp_ms(row: int, ms: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, "timestamp"] = pd.Timestamp(ms, unit="ms", tz="UTC")
        return df

    return mutate


def test_a_good_day_passes_every_model() -> None:
    df = good_day(1440)
    for model in (RawCandles, ValidatedCandles):
        report = validate_candles(df, DAY, model=model)
        assert report.ok, report.failure_markdown()
        assert report.rows == 1440
        assert report.failing_rows == frozenset()
    assert validate_candles(df, None).ok


@pytest.mark.parametrize(
    ("mutate", "check", "column", "category"),
    [
        pytest.param(with_value("high", 4, 8.5), "high_ge_open_close", "high", OHLC, id="high-below-low"),
        pytest.param(with_value("high", 4, 10.2), "high_ge_open_close", "high", OHLC, id="high-below-close"),
        pytest.param(with_value("low", 4, 10.2), "low_le_open_close", "low", OHLC, id="low-above-open"),
        pytest.param(
            with_value("volume", 4, -1.0), "greater_than_or_equal_to(0)", "volume", SCHEMA, id="neg-vol"
        ),
        pytest.param(with_value("close", 4, np.nan), "not_nullable", "close", SCHEMA, id="nan-close"),
        pytest.param(with_value("volume", 4, np.nan), "not_nullable", "volume", SCHEMA, id="nan-volume"),
        pytest.param(with_value("high", 4, np.inf), "finite", "high", SCHEMA, id="inf-high"),
        pytest.param(with_value("volume", 4, np.inf), "finite", "volume", SCHEMA, id="inf-volume"),
        pytest.param(with_value("low", 4, 0.0), "greater_than(0)", "low", SCHEMA, id="zero-low"),
        pytest.param(with_value("open", 4, -10.0), "greater_than(0)", "open", SCHEMA, id="negative-open"),
        pytest.param(
            with_timestamp_ms(4, START_MS + 4 * MINUTE + 30_000),
            "minute_aligned",
            "timestamp",
            SCHEMA,
            id="30s",
        ),
        pytest.param(
            with_timestamp_ms(9, START_MS + 86_400_000), "inside_day", "timestamp", SCHEMA, id="next-day"
        ),
    ],
)
def test_each_row_rule_names_the_failing_row(
    mutate: Callable[[pd.DataFrame], pd.DataFrame], check: str, column: str, category: str
) -> None:
    df = mutate(good_day())
    for model in (RawCandles, ValidatedCandles):
        report = validate_candles(df, DAY, model=model)
        assert not report.ok
        failing_row = 9 if check == "inside_day" else 4
        assert report.failing_rows == {failing_row}
        matching = [f for f in report.failures if f.check == check]
        assert len(matching) == 1, report.failure_markdown()
        failure = matching[0]
        assert (failure.column, failure.index, failure.category) == (column, failing_row, category)
        assert failure.timestamp == df.loc[failing_row, "timestamp"]
        assert not report.in_category(category).ok


def test_failure_value_is_the_offending_value() -> None:
    report = validate_candles(with_value("volume", 2, -7.5)(good_day()), DAY)
    (failure,) = report.failures
    assert failure.value == -7.5
    assert failure.reason == "volume: greater_than_or_equal_to(0)"


def test_timestamp_before_the_day_is_outside_it() -> None:
    df = candles_from_rows([[START_MS - MINUTE, 10.0, 11.0, 9.0, 10.5, 3.0]])
    report = validate_candles(df, DAY)
    assert [f.check for f in report.failures] == ["inside_day"]
    assert validate_candles(df, None).ok  # without a day only the model rules apply


def test_duplicated_timestamp_is_allowed_raw_but_not_validated() -> None:
    df = pd.concat([good_day(5), good_day(5).iloc[[2]]], ignore_index=True)
    assert validate_candles(df, DAY, model=RawCandles).ok
    report = validate_candles(df, DAY, model=ValidatedCandles)
    assert report.counts() == {"field_uniqueness": 2, "strictly_increasing": 1}
    assert report.failing_rows == {2, 5}
    assert report.in_category(DUPLICATES).failing_rows == {2, 5}
    assert report.in_category(SCHEMA).ok and report.in_category(OHLC).ok


def test_non_increasing_timestamps_fail_validated_only() -> None:
    df = good_day(5).iloc[[0, 2, 1, 3, 4]].reset_index(drop=True)
    assert validate_candles(df, DAY, model=RawCandles).ok
    report = validate_candles(df, DAY)
    assert report.counts() == {"strictly_increasing": 1}
    assert report.failing_rows == {2}
    assert report.failures[0].category == DUPLICATES


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        pytest.param(
            lambda df: df.assign(timestamp=df["timestamp"].dt.tz_localize(None)), "dtype", id="naive"
        ),
        pytest.param(
            lambda df: df.assign(timestamp=df["timestamp"].astype("datetime64[ns, UTC]")),
            "dtype",
            id="ns-unit",
        ),
        pytest.param(lambda df: df.assign(volume=df["volume"].astype("int64")), "dtype", id="int-volume"),
        pytest.param(lambda df: df.assign(close=df["close"].astype("float32")), "dtype", id="float32-close"),
        pytest.param(lambda df: df.drop(columns="volume"), "column_in_dataframe", id="missing-volume"),
    ],
)
def test_frame_level_failures_blame_no_row(
    mutate: Callable[[pd.DataFrame], pd.DataFrame], check: str
) -> None:
    report = validate_candles(mutate(good_day()), DAY)
    assert not report.ok
    assert report.frame_failures, report.failure_markdown()
    assert all(f.check.startswith(check) for f in report.frame_failures)
    assert report.failing_rows == frozenset()
    assert report.failures[0].index is None  # frame-level failures come first


def test_missing_column_is_named() -> None:
    report = validate_candles(good_day().drop(columns="high"), DAY)
    assert [(f.check, f.column) for f in report.failures] == [("column_in_dataframe", "high")]


def test_report_renders_the_first_failures_for_check_metadata() -> None:
    df = good_day(30)
    df.loc[:, "volume"] = -1.0
    report = validate_candles(df, DAY)
    assert len(report.failures) == 30
    table = report.failure_table(limit=5)
    assert len(table) == 5
    assert table[0] == {
        "check": "greater_than_or_equal_to(0)",
        "category": SCHEMA,
        "column": "volume",
        "row": 0,
        "timestamp": "2024-03-05T00:00:00+00:00",
        "value": -1.0,
    }
    markdown = report.failure_markdown(limit=5)
    assert markdown.splitlines()[0] == "| check | category | column | row | timestamp | value |"
    assert (
        "| greater_than_or_equal_to(0) | schema | volume | 4 | 2024-03-05T00:04:00+00:00 | -1.0 |" in markdown
    )
    assert markdown.endswith("... and 25 more failures")
    assert validate_candles(good_day(), DAY).failure_markdown() == "No failures."


def test_non_finite_values_render_as_text() -> None:
    table = validate_candles(with_value("high", 1, np.inf)(good_day()), DAY).failure_table()
    assert table == [
        {
            "check": "finite",
            "category": SCHEMA,
            "column": "high",
            "row": 1,
            "timestamp": "2024-03-05T00:01:00+00:00",
            "value": "inf",
        }
    ]


def test_reasons_by_row_collects_every_rule_a_row_breaks() -> None:
    df = good_day()
    df.loc[3, ["high", "volume"]] = [9.5, -2.0]
    reasons = validate_candles(df, DAY).reasons_by_row()
    assert reasons == {3: ["high: high_ge_open_close", "volume: greater_than_or_equal_to(0)"]}


def test_row_indices_are_positions_whatever_the_index() -> None:
    df = with_value("volume", 1, -1.0)(good_day(3))
    df.index = [100, 50, 7]
    assert validate_candles(df, DAY).failing_rows == {1}


def test_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown category"):
        validate_candles(good_day(), DAY).in_category("completeness")


def dvol_day(resolution_ms: int, n: int) -> pd.DataFrame:
    return dvol_from_rows([[START_MS + i * resolution_ms, 50.0, 51.0, 49.0, 50.5] for i in range(n)])


def test_dvol_models_accept_second_resolution_and_no_volume() -> None:
    for df in (dvol_day(1_000, 120), dvol_day(3_600_000, 24)):
        assert validate_candles(df, DAY, model=DvolCandles).ok
        assert validate_candles(df, DAY, model=RawDvol).ok


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        pytest.param(with_value("low", 2, 0.0), "greater_than(0)", id="zero"),
        pytest.param(with_value("high", 2, np.nan), "not_nullable", id="nan"),
        pytest.param(with_value("high", 2, np.inf), "finite", id="inf"),
        pytest.param(with_value("low", 2, 50.7), "low_le_open_close", id="low-above-close"),
        pytest.param(
            with_timestamp_ms(2, START_MS + 2 * 3_600_000 + 500), "second_aligned", id="half-second"
        ),
    ],
)
def test_dvol_row_rules(mutate: Callable[[pd.DataFrame], pd.DataFrame], check: str) -> None:
    report = validate_candles(mutate(dvol_day(3_600_000, 5)), DAY, model=DvolCandles)
    assert [(f.check, f.index) for f in report.failures] == [(check, 2)]


def test_dvol_duplicates_fail_only_the_validated_model() -> None:
    df = pd.concat([dvol_day(60_000, 3), dvol_day(60_000, 1)], ignore_index=True)
    assert validate_candles(df, DAY, model=RawDvol).ok
    assert validate_candles(df, DAY, model=DvolCandles).in_category(DUPLICATES).failing_rows == {0, 3}


def _broken_frames(base: pd.DataFrame) -> list[pd.DataFrame]:
    """``base`` broken every way a rule (or a frame-level check) can see, one frame each."""
    out = []
    numeric = [c for c in ("open", "high", "low", "close", "volume") if c in base.columns]
    for column in numeric:
        for value in (np.nan, np.inf, -np.inf, 0.0, -1.0, 1e9, 1e-9):
            out.append(with_value(column, 2, value)(base.copy()))
        out.append(base.drop(columns=[column]))
        out.append(base.astype({column: "float32"}))
        out.append(base.astype({column: "object"}))
    step = int(base["timestamp"].diff().iloc[1] / pd.Timedelta(milliseconds=1))
    for offset in (1, 999, 30_000, -step, 0, step * 10**6):
        out.append(with_timestamp_ms(2, START_MS + 2 * step + offset)(base.copy()))
    stamps = base.copy()
    stamps.loc[2, "timestamp"] = pd.NaT
    out.append(stamps)
    out.append(pd.concat([base, base.iloc[[1]]], ignore_index=True))  # a duplicate, out of order
    out.append(pd.concat([base.iloc[[0]], base], ignore_index=True))  # a duplicate, in order
    out.append(base.iloc[::-1])
    out.append(base.drop(columns=["timestamp"]))
    out.append(base.assign(timestamp=base["timestamp"].dt.tz_localize(None)))
    out.append(base.assign(timestamp=base["timestamp"].astype("datetime64[ns, UTC]")))
    out.append(base.assign(timestamp=base["timestamp"].dt.tz_convert("Europe/Paris")))
    out.append(pd.concat([base, base[["open"]]], axis=1))  # a column twice
    return out


@pytest.mark.parametrize("model", [RawCandles, ValidatedCandles, RawDvol, DvolCandles])
def test_the_fast_path_vouches_only_for_frames_pandera_passes(model: type) -> None:
    """``validate_candles`` skips Pandera for frames it can prove pass; it must never skip one that fails."""
    from marketdata_assets.quality import schemas

    base = good_day(30) if model in (RawCandles, ValidatedCandles) else dvol_day(60_000, 30)
    frames = [base, base.iloc[:0], base.iloc[:1], *_broken_frames(base)]
    for frame in frames:
        frame = frame.reset_index(drop=True)
        pandera_ok = not schemas._pandera_failures(frame, model)
        if schemas._certainly_passes(frame, model):
            assert pandera_ok, frame
    assert schemas._certainly_passes(base, model)
    assert schemas._certainly_passes(base.iloc[:0].reset_index(drop=True), model)


def test_a_passing_frame_reports_what_pandera_would() -> None:
    from marketdata_assets.quality import schemas

    df = good_day(1440)
    for model in (RawCandles, ValidatedCandles):
        assert schemas._certainly_passes(df, model)
        assert schemas._pandera_failures(df, model) == []
    outside = with_timestamp_ms(5, START_MS - MINUTE)(df.copy())
    report = validate_candles(outside, DAY, model=RawCandles)
    assert [(f.check, f.index) for f in report.failures] == [("inside_day", 5)]
