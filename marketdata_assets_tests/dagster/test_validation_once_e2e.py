"""A whole-chain Dagster run validates each validated day once: the validate step stores the verdict,
the validated checks report it and the resampling step obeys it, without a second Pandera run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from dagster._core.test_utils import instance_for_test

from marketdata_assets_tests.dagster.test_quality_serving_e2e import CHAIN, evaluations
from marketdata_assets_tests.dagster.test_raw_ingestion_e2e import run, sim_settings

pytestmark = pytest.mark.e2e


def test_each_validated_day_is_validated_once_per_run(
    tmp_path: Path, make_simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marketdata_assets.quality import clean, day_checks, schemas

    calls: Counter[tuple[str, str]] = Counter()
    original = schemas.validate_candles

    def counting(frame, day, *, model):  # noqa: ANN001, ANN202
        calls[(model.__name__, str(day))] += 1
        return original(frame, day, model=model)

    for module in (schemas, clean, day_checks):
        monkeypatch.setattr(module, "validate_candles", counting)

    sim = make_simulator(seed=3, limits_enabled=False)
    settings = sim_settings(tmp_path, sim)
    with instance_for_test() as instance:
        result = run(settings, CHAIN, "2024-03-04|BTCUSDT", "2024-03-06|BTCUSDT", instance)
        assert result.success
        # the validated checks ran and reported each day (from the stored verdict)
        assert set(evaluations(result, "binance/ohlcv_1m", "valid")) == {
            f"2024-03-0{d}|BTCUSDT" for d in (4, 5, 6)
        }
    validated = {day: n for (model, day), n in calls.items() if model == "ValidatedCandles"}
    assert validated == {"2024-03-04": 1, "2024-03-05": 1, "2024-03-06": 1}
    # the raw layer's own checks validate the raw day once each, against the raw model
    assert {day: n for (model, day), n in calls.items() if model == "RawCandles"} == validated
