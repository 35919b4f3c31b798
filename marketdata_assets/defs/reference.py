"""Reference assets: each candle venue's listed instruments, stored and checked against the settings.

``<venue>/instruments`` (group ``reference``, unpartitioned, pool ``venue_<venue>`` like the raw
assets, so it shares the venue's concurrency limit) loads the venue's markets (one request), replaces
``reference/instruments/exchange=<venue>/data.parquet`` and then validates the configured symbols:
an unknown or delisted symbol fails the step with one message naming each of them (and close
matches); a halted symbol only logs a warning and is listed in the metadata. The file is written
before the check, so what the venue lists can be inspected (``MarketDataClient().instruments(...)``)
even when the settings are wrong. Deribit DVOL is an index, not a listed instrument: no asset.
"""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from marketdata_assets.defs.common import to_metadata
from marketdata_assets.defs.resources import StorageResource, VenuesResource
from marketdata_assets.quality.tables import table
from marketdata_assets.settings import LoadedSettings

REFERENCE_GROUP = "reference"


def instruments_key(venue: str) -> AssetKey:
    return AssetKey([venue, "instruments"])


def build_reference_assets(settings: LoadedSettings) -> list[AssetsDefinition]:
    """One ``<venue>/instruments`` asset per configured candle venue."""
    return [build_instruments_asset(settings, venue) for venue in settings.venues]


def build_instruments_asset(settings: LoadedSettings, venue: str) -> AssetsDefinition:
    cfg = settings.venues[venue]

    @asset(
        key=instruments_key(venue),
        group_name=REFERENCE_GROUP,
        kinds={"parquet", "ccxt"},
        pool=f"venue_{venue}",
        description=(
            f"Spot instruments {venue} lists (tick size, amount step, minimum order, status, listing "
            f"date where exposed), one Parquet file under `reference/instruments/exchange={venue}/`. "
            "Fails when a configured symbol is unknown or delisted; halted symbols only warn."
        ),
    )
    def instruments(
        context: AssetExecutionContext, storage: StorageResource, venues: VenuesResource
    ) -> MaterializeResult:
        from marketdata_assets.pipeline.reference import store_instruments

        outcome = store_instruments(storage.root(), venue, cfg.symbols, venues.load_instruments(venue))
        metadata = _metadata(outcome.frame, cfg.symbols)
        metadata.update(
            {
                "path": MetadataValue.path(outcome.path),
                "bytes": MetadataValue.int(outcome.bytes),
                "requests": MetadataValue.int(outcome.requests),
                "retries": MetadataValue.int(outcome.retries),
            }
        )
        if outcome.error is not None:
            exc = outcome.error
            context.log.error(str(exc))
            raise Failure(
                description=str(exc),
                metadata={
                    **metadata,
                    "unknown_symbols": MetadataValue.text(", ".join(exc.unknown) or "none"),
                    "delisted_symbols": MetadataValue.text(", ".join(exc.delisted) or "none"),
                },
            ) from exc
        for warning in outcome.warnings:
            context.log.warning(warning)
        metadata["halted_symbols"] = MetadataValue.text(", ".join(outcome.halted) or "none")
        return MaterializeResult(metadata=metadata)

    return instruments


def _metadata(frame: Any, configured: list[str]) -> dict[str, Any]:
    """Counts per status and a table of the configured symbols' reference values."""
    counts = frame["status"].value_counts()
    metadata: dict[str, Any] = {"instruments": MetadataValue.int(len(frame))}
    for status in ("trading", "halted", "delisted"):
        metadata[f"instruments_{status}"] = MetadataValue.int(int(counts.get(status, 0)))
    by_symbol = frame.set_index("symbol")
    rows = []
    for symbol in configured:
        if symbol not in by_symbol.index:
            rows.append([symbol, "-", "-", "-", "-", "-", "not listed"])
            continue
        row = by_symbol.loc[symbol]
        rows.append(
            [
                symbol,
                row["venue_id"],
                _num(row["tick_size"]),
                _num(row["amount_step"]),
                _num(row["min_amount"]),
                _num(row["min_notional"]),
                f"{row['status']} ({row['raw_status']})",
            ]
        )
    header = ["symbol", "venue id", "tick size", "amount step", "min amount", "min notional", "status"]
    metadata["configured_symbols"] = to_metadata({"configured_symbols": table(header, rows)})[
        "configured_symbols"
    ]
    metadata["fetched_at"] = MetadataValue.text(
        frame["fetched_at"].iloc[0].isoformat() if len(frame) else "-"
    )
    return metadata


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.10g}"  # NaN -> "-"
