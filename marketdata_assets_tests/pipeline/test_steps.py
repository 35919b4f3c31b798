"""Every pipeline step run directly, with no Dagster: real Parquet files under a temporary root.

Each step takes (root, venue/instrument, days, policy) and returns one outcome per day; these tests
check the numbers, the verdict and what was written, and that a bad day never stops the others.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from marketdata_assets.pipeline.dvol import serve_dvol_days
from marketdata_assets.pipeline.resample import resample_days
from marketdata_assets.pipeline.validate import DayVerdict, read_day_verdict, validate_day, validate_days
from marketdata_assets.quality.day_checks import CheckPolicy
from marketdata_assets.storage.raw import read_quarantine_candles, write_raw_candles, write_raw_dvol
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_gaps, read_served_candles, read_served_dvol
from marketdata_assets_tests.storage.helpers import dvol_points, minute_candles

D1, D2, D3 = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    return StorageRoot.from_uri(tmp_path / "data")


def _bad_day(day: date) -> pd.DataFrame:
    """A day with a page-edge duplicate, one row whose high is below its low, and 10 minutes missing."""
    frame = minute_candles(day, skip=tuple(range(600, 610)))
    frame.loc[5, "high"] = frame.loc[5, "low"] - 1.0
    return pd.concat([frame, frame.iloc[[100]]], ignore_index=True)


def test_validate_day_is_pure_and_splits_valid_from_quarantined_rows() -> None:
    validated = validate_day(_bad_day(D1), D1, "binance", "BTCUSDT")
    assert len(validated.valid) == 1440 - 10 - 1
    assert len(validated.quarantined) == 1 and "high" in validated.quarantined["reason"].iloc[0]
    numbers = validated.numbers["1m"]
    assert numbers["rows_fetched"] == 1431 and numbers["identical_duplicates"] == 1
    assert numbers["missing_minutes"] == 11 and numbers["outage_minutes"] == 10
    assert numbers["quarantined_minutes"] == 1
    # one quarantined row against a limit of 0: the verdict blocks the day, naming the schema check
    assert not validated.verdict.usable
    assert validated.verdict.blocking_failure.name == "schema"
    assert not validated.verdict.checks["completeness"].passed


def test_validate_days_writes_each_layer_and_the_verdict_beside_the_day(root: StorageRoot) -> None:
    write_raw_candles(root, "binance", "BTCUSDT", D1, minute_candles(D1))
    write_raw_candles(root, "binance", "BTCUSDT", D2, _bad_day(D2))
    outcomes = validate_days(root, "binance", "BTCUSDT", [D1, D2, D3])

    assert [o.day for o in outcomes] == [D1, D2, D3]
    good, bad, missing = outcomes
    assert good.ok and good.numbers["1m"]["rows_valid"] == 1440 and good.verdict.usable
    assert bad.ok and not bad.verdict.usable  # stored, but held back from resampling
    assert not missing.ok and "raw data missing" in missing.error
    assert any("verdicts/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-03-04" in p for p in good.written)

    served = read_served_candles(
        root, "1m", "binance", "BTCUSDT", pd.Timestamp(D1, tz="UTC"), pd.Timestamp(D3, tz="UTC")
    )
    assert len(served) == 1440 + 1429
    assert len(read_quarantine_candles(root, "binance", "BTCUSDT", D2)) == 1
    gaps = read_gaps(root, "binance", "BTCUSDT", pd.Timestamp(D2, tz="UTC"), pd.Timestamp(D3, tz="UTC"))
    assert set(gaps["kind"]) == {"outage", "quarantined"}
    stored = read_day_verdict(root, "binance", "BTCUSDT", D2)
    assert stored == bad.verdict
    assert DayVerdict.from_json(stored.to_json()) == stored
    assert read_day_verdict(root, "binance", "BTCUSDT", D3) is None


def test_resample_obeys_the_stored_verdict_day_by_day(root: StorageRoot) -> None:
    write_raw_candles(root, "okx", "ETHUSDT", D1, minute_candles(D1))
    write_raw_candles(root, "okx", "ETHUSDT", D2, _bad_day(D2))
    validate_days(root, "okx", "ETHUSDT", [D1, D2])

    outcomes = resample_days(root, "okx", "ETHUSDT", [D1, D2])
    assert outcomes[0].ok and outcomes[0].numbers["1h"] == {"bins": 24, "incomplete_bins": 0}
    assert outcomes[0].numbers["1d"] == {"bins": 1, "incomplete_bins": 0}
    assert not outcomes[1].ok
    assert outcomes[1].error.startswith("not resampled: validated schema check fails")
    hourly = read_served_candles(root, "1h", "okx", "ETHUSDT", pd.Timestamp(D1, tz="UTC"), None)
    assert len(hourly) == 24 and hourly["timestamp"].dt.date.eq(D1).all()

    # a looser policy at validation time makes the same day usable: the verdict is what resample reads
    validate_days(root, "okx", "ETHUSDT", [D2], CheckPolicy(max_quarantined_rows=5))
    (outcome,) = resample_days(root, "okx", "ETHUSDT", [D2])
    assert outcome.ok and outcome.numbers["1h"]["incomplete_bins"] == 2  # the outage hour + the bad minute


def test_resample_needs_validated_data(root: StorageRoot) -> None:
    (outcome,) = resample_days(root, "bybit", "BTCUSDT", [D1])
    assert not outcome.ok and "no validated data for this day" in outcome.error


def test_each_day_is_validated_once_by_the_validate_and_resample_steps(
    root: StorageRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marketdata_assets.quality import clean, day_checks, schemas

    calls: list[str] = []
    original = schemas.validate_candles

    def counting(frame, day, *, model):  # noqa: ANN001, ANN202
        calls.append(f"{model.__name__} {day}")
        return original(frame, day, model=model)

    for module in (schemas, clean, day_checks):
        monkeypatch.setattr(module, "validate_candles", counting)
    for day in (D1, D2):
        write_raw_candles(root, "binance", "BTCUSDT", day, minute_candles(day))
    validate_days(root, "binance", "BTCUSDT", [D1, D2])
    resample_days(root, "binance", "BTCUSDT", [D1, D2])
    assert sorted(calls) == [f"ValidatedCandles {D1}", f"ValidatedCandles {D2}"]


def test_serve_dvol_days_leaves_bad_points_out_and_reports_missing_days(root: StorageRoot) -> None:
    points = dvol_points(D1)
    points.loc[3, "low"] = points.loc[3, "high"] + 1.0
    write_raw_dvol(root, "BTC", D1, points, resolution_s=3600)
    ok, missing = serve_dvol_days(root, "BTC", [D1, D2])
    assert ok.ok and ok.numbers["1h"]["dropped_rows"] == 1 and ok.numbers["1h"]["rows"] == 23
    assert ok.numbers["1m"]["rows"] > 0 and ok.numbers["1m"]["filled_rows"] > 0
    assert not missing.ok and "raw DVOL missing" in missing.error
    assert len(read_served_dvol(root, "1h", "BTC", pd.Timestamp(D1, tz="UTC"), None)) == 23


def test_validate_corroborates_outages_across_the_venues_symbols(root: StorageRoot) -> None:
    from marketdata_assets.pipeline.validate import VenueActivity

    quiet = tuple(range(600, 630))  # 10:00-10:30
    write_raw_candles(root, "okx", "XRPETH", D1, minute_candles(D1, skip=quiet))  # only this one is silent
    write_raw_candles(root, "okx", "BTCUSDT", D1, minute_candles(D1))
    write_raw_candles(root, "okx", "XRPETH", D2, minute_candles(D2, skip=quiet))  # the whole venue is silent
    write_raw_candles(root, "okx", "BTCUSDT", D2, minute_candles(D2, skip=quiet))
    activity = VenueActivity(root, "okx", ["XRPETH", "BTCUSDT"])

    one, both = validate_days(root, "okx", "XRPETH", [D1, D2], activity=activity)
    assert one.numbers["1m"]["outage_minutes"] == 0 and one.numbers["1m"]["no_trade_minutes"] == 30
    assert one.verdict.checks["completeness"].passed
    assert both.numbers["1m"]["outage_minutes"] == 30
    assert not both.verdict.checks["completeness"].passed
    # without the other symbols the length alone decides
    (alone,) = validate_days(root, "okx", "XRPETH", [D1])
    assert alone.numbers["1m"]["outage_minutes"] == 30
