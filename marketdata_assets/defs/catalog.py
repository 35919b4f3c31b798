"""The catalog: what the served layer holds, checked and tidied after the series it depends on.

``serving/catalog`` (unpartitioned) runs :func:`~marketdata_assets.storage.compaction.compact` over the
monthly datasets (stale temp files of crashed writers, stray Parquet files; safe to re-run), then
queries the files through dagster-duckdb's :class:`DuckDBResource` (views over the Parquet on an
in-memory database by default: no DuckDB file that many runs would have to write at once) and
records the inventory - exchange, symbol, timeframe, first/last candle, rows, incomplete bins, gap
count - the gap minutes per kind, and a health summary of the latest days from the stored verdicts
(days held back by a blocking check, check warnings, per series) as metadata.
"""

from datetime import timedelta
from typing import Any

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset
from dagster_duckdb import DuckDBResource

from marketdata_assets.defs.common import to_metadata
from marketdata_assets.defs.dvol import DVOL_TIMEFRAMES, dvol_key
from marketdata_assets.defs.resampled import resampled_key
from marketdata_assets.defs.resources import StorageResource
from marketdata_assets.defs.validated import gaps_key, validated_candles_key
from marketdata_assets.settings import LoadedSettings
from marketdata_assets.transform.resample import TIMEFRAMES
from marketdata_assets.universe import latest_closed_day

CATALOG_KEY = AssetKey(["serving", "catalog"])
HEALTH_DAYS = 7  # the catalog's health summary covers this many latest closed days

_GAP_SUMMARY_SQL = """
SELECT exchange, symbol, kind, count(*) AS gaps, sum(minutes) AS minutes
FROM gaps GROUP BY exchange, symbol, kind ORDER BY exchange, symbol, kind
"""


def served_keys(settings: LoadedSettings) -> list[AssetKey]:
    keys: list[AssetKey] = []
    for venue in settings.venues:
        keys += [validated_candles_key(venue), gaps_key(venue)]
        keys += [resampled_key(venue, timeframe) for timeframe in TIMEFRAMES]
    if settings.dvol is not None:
        keys += [dvol_key(timeframe) for timeframe in DVOL_TIMEFRAMES]
    return keys


def build_catalog_asset(settings: LoadedSettings):  # noqa: ANN201 - AssetsDefinition
    @asset(
        key=CATALOG_KEY,
        deps=served_keys(settings),
        group_name="served",  # with the series it lists; its key stays serving/catalog
        kinds={"duckdb", "parquet"},
        description=(
            "Inventory of the served layer (what data we have, with gap counts), after compacting "
            "leftovers of crashed writers. Queried with DuckDB over the Parquet files."
        ),
    )
    def catalog(
        context: AssetExecutionContext, duckdb: DuckDBResource, storage: StorageResource
    ) -> MaterializeResult:
        from marketdata_assets.pipeline.validate import health
        from marketdata_assets.quality.tables import frame_table, table
        from marketdata_assets.storage.catalog import inventory, register_views
        from marketdata_assets.storage.compaction import compact
        from marketdata_assets.storage.served import MONTHLY_DATASETS

        root = storage.root()
        compaction: list[list[Any]] = []
        for name in MONTHLY_DATASETS:
            report = compact(root, name)
            compaction.append(
                [name, len(report.removed_tmp), len(report.merged), "; ".join(report.skipped[:10]) or "-"]
            )
            for skipped in report.skipped:
                context.log.warning(f"compaction left {skipped}")
        with duckdb.get_connection() as con:
            register_views(con, root)
            listing = inventory(root, con)
            gap_summary = con.execute(_GAP_SUMMARY_SQL).df()
        shown = listing.assign(first=listing["first"].astype(str), last=listing["last"].astype(str))
        # health: what the stored verdicts say about the last HEALTH_DAYS closed days of every series
        last = latest_closed_day()
        days = [last - timedelta(days=n) for n in range(HEALTH_DAYS)]
        health_rows = [
            health(root, venue, key, [d for d in days if d >= cfg.start_date])
            for venue, cfg in settings.venues.items()
            for key in cfg.symbol_keys
        ]
        held_back = sum(r["days_held_back"] for r in health_rows)
        warnings = sum(r["check_warnings"] for r in health_rows)
        return MaterializeResult(
            metadata=to_metadata(
                {
                    "health": f"last {HEALTH_DAYS} days: {held_back} days held back, {warnings} check warnings",
                    "days_held_back": held_back,
                    "check_warnings": warnings,
                    "health_by_series": table(list(health_rows[0]), [list(r.values()) for r in health_rows])
                    if health_rows
                    else "no candle series configured",
                    "series": len(listing),
                    "rows": int(listing["rows"].sum()) if len(listing) else 0,
                    "inventory": frame_table(shown) if len(shown) else "no served data yet",
                    "gaps": frame_table(gap_summary) if len(gap_summary) else "no gaps recorded",
                    "compaction": table(["dataset", "removed_tmp", "merged", "skipped"], compaction),
                    "root": root.display(root.path()),
                }
            )
        )

    return catalog
