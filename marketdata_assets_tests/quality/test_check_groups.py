"""The five day rules as the two checks Dagster shows per layer (``valid``, ``complete``)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from marketdata_assets.frames import TIMESTAMP_DTYPE
from marketdata_assets.quality.day_checks import (
    ERROR,
    WARN,
    CheckOutcome,
    dvol_day_checks,
    group_outcomes,
    raw_day_checks,
)

DAY = date(2024, 3, 5)


def day_frame(minutes: int = 1440) -> pd.DataFrame:
    ts = pd.date_range(pd.Timestamp(DAY, tz="UTC"), periods=minutes, freq="min").astype(TIMESTAMP_DTYPE)
    price = [100.0 + (i % 7) * 0.01 for i in range(minutes)]
    return pd.DataFrame(
        {
            "timestamp": ts,
            "open": price,
            "high": [p + 0.05 for p in price],
            "low": [p - 0.05 for p in price],
            "close": price,
            "volume": [1.0] * minutes,
        }
    )


def test_a_whole_day_passes_both_groups_with_every_rule_named() -> None:
    grouped = group_outcomes(raw_day_checks(day_frame(), DAY))
    assert list(grouped) == ["valid", "complete"]
    assert all(o.passed for o in grouped.values())
    assert grouped["valid"].metadata["rules"] == {"schema": "pass", "duplicates": "pass", "ohlc": "pass"}
    assert grouped["complete"].metadata["rules"] == {"completeness": "pass", "continuity": "pass"}
    for rule in ("schema", "duplicates", "ohlc"):
        assert f"{rule}: " in grouped["valid"].description


def test_a_failing_rule_fails_its_group_only_with_its_severity_and_numbers_first() -> None:
    frame = day_frame()
    frame.loc[10, "high"] = frame.loc[10, "low"] - 1  # one row breaks ohlc
    frame = frame.drop(index=range(600, 630))  # 30 minutes missing
    grouped = group_outcomes(raw_day_checks(frame, DAY))
    valid, complete = grouped["valid"], grouped["complete"]
    assert not valid.passed and valid.severity == WARN  # raw layer: the validated step quarantines it
    assert valid.description.startswith("ohlc: FAILS: ")
    assert valid.metadata["rules"]["ohlc"] == "fail (warn)" and valid.metadata["rules"]["schema"] == "pass"
    assert "ohlc_failures" in valid.metadata  # each rule's numbers under its own name
    assert not complete.passed and complete.metadata["completeness_missing_minutes"] == 30


def test_an_error_rule_makes_the_group_an_error_and_names_are_stable() -> None:
    outcomes = {
        "schema": CheckOutcome("schema", False, ERROR, "broken", {"failing_rows": 3}),
        "duplicates": CheckOutcome("duplicates", True, ERROR, "ok", {"failing_rows": 0}),
        "ohlc": CheckOutcome("ohlc", False, WARN, "bad", {"ohlc_rows_quarantined": 2}),
        "completeness": CheckOutcome("completeness", True, WARN, "whole", {}),
        "continuity": CheckOutcome("continuity", True, WARN, "smooth", {}),
    }
    valid = group_outcomes(outcomes)["valid"]
    assert not valid.passed and valid.severity == ERROR and valid.blocks
    assert valid.metadata["schema_failing_rows"] == 3 and valid.metadata["duplicates_failing_rows"] == 0
    assert valid.metadata["ohlc_rows_quarantined"] == 2  # already named by its rule: not prefixed twice
    assert group_outcomes(outcomes)["complete"].passed


def test_dvol_has_only_the_valid_group() -> None:
    frame = day_frame(24 * 60).iloc[::60].reset_index(drop=True)
    assert list(group_outcomes(dvol_day_checks(frame, DAY))) == ["valid"]
