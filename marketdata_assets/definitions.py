"""The one entry point Dagster loads (workspace.yaml, [tool.dagster]): Definitions built from settings.

Per candle venue: ``<venue>/ohlcv_1m_raw`` -> ``<venue>/ohlcv_1m`` + ``<venue>/gaps`` (validated) ->
``<venue>/ohlcv_5m|15m|1h|4h|1d`` (served), with partitioned checks on the raw and validated layers.
DVOL: ``deribit/dvol_raw`` -> ``deribit/dvol_1m`` + ``deribit/dvol_1h``. Reference data:
``<venue>/instruments``; the served layer's inventory: ``serving/catalog``. Settings come from the
environment (see :mod:`marketdata_assets.settings`); a bad config file makes loading fail with one error
naming the file and key.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor
from dagster_duckdb import DuckDBResource

from marketdata_assets.defs.automation import build_automation
from marketdata_assets.defs.catalog import build_catalog_asset
from marketdata_assets.defs.checks import build_candle_checks, build_dvol_checks
from marketdata_assets.defs.dvol import build_dvol_served_assets
from marketdata_assets.defs.freshness import build_freshness_checks, build_freshness_schedule
from marketdata_assets.defs.raw import build_dvol_raw_asset, build_raw_candle_asset
from marketdata_assets.defs.reference import build_reference_assets
from marketdata_assets.defs.resampled import build_resampled_assets
from marketdata_assets.defs.resources import resources_from_settings
from marketdata_assets.defs.validated import build_validated_assets
from marketdata_assets.settings import LoadedSettings, load_settings


def build_definitions(settings: LoadedSettings) -> Definitions:
    assets: list = []
    checks: list = []
    for venue in settings.venues:
        assets += [
            build_raw_candle_asset(settings, venue),
            build_validated_assets(settings, venue),
            build_resampled_assets(settings, venue),
        ]
        checks += build_candle_checks(settings, venue)
    if settings.dvol is not None:
        assets += [build_dvol_raw_asset(settings), build_dvol_served_assets(settings)]
        checks += build_dvol_checks(settings)
    checks += build_freshness_checks(settings)
    assets += build_reference_assets(settings)
    assets.append(build_catalog_asset(settings))
    # In-process: a run's steps share one process, so ccxt/pandas/pandera are imported once per run
    # (the multiprocess executor re-imports them for every step: ~11 s vs ~5.6 s per run measured).
    # Nightly schedules, the gap backfill sensor and the catalog refresh (defs/automation.py).
    automation = build_automation(settings)
    return Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=automation.jobs,
        schedules=[*automation.schedules, build_freshness_schedule(settings)],
        sensors=automation.sensors,
        resources={"duckdb": DuckDBResource(database=":memory:"), **resources_from_settings(settings)},
        executor=in_process_executor,
    )


defs = build_definitions(load_settings())
