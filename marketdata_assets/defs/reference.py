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

from marketdata_assets.assets.common import storage_root
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
            f"date where exposed), one Parquet file under reference/instruments/exchange={venue}/. "
            "Fails when a configured symbol is unknown or delisted; halted symbols only warn."
        ),
    )
    def instruments(context: AssetExecutionContext) -> MaterializeResult:
        from marketdata_assets.storage.reference import write_instruments
        from marketdata_assets.venues.instruments import UniverseError, load_instruments, validate_universe
        from marketdata_assets.venues.limiter import limiter_from_settings

        fetched = load_instruments(
            venue,
            cfg.base_url,
            timeout_ms=cfg.timeout_ms,
            rate_limit_ms=cfg.rate_limit_ms,
            max_retries=cfg.max_retries,
            shared_limiter=limiter_from_settings(venue, cfg),
        )
        frame = fetched.frame
        root = storage_root(settings)
        written = write_instruments(root, venue, frame)
        metadata = _metadata(frame, cfg.symbols)
        metadata.update(
            {
                "path": MetadataValue.path(written.path),
                "bytes": MetadataValue.int(written.bytes),
                "requests": MetadataValue.int(fetched.stats.requests),
                "retries": MetadataValue.int(fetched.stats.retries),
            }
        )
        try:
            report = validate_universe(cfg.symbols, frame, venue)
        except UniverseError as exc:
            context.log.error(str(exc))
            raise Failure(
                description=str(exc),
                metadata={
                    **metadata,
                    "unknown_symbols": MetadataValue.text(", ".join(exc.unknown) or "none"),
                    "delisted_symbols": MetadataValue.text(", ".join(exc.delisted) or "none"),
                },
            ) from exc
        for warning in report.warnings:
            context.log.warning(warning)
        metadata["halted_symbols"] = MetadataValue.text(", ".join(report.halted) or "none")
        return MaterializeResult(metadata=metadata)

    return instruments


def _metadata(frame: Any, configured: list[str]) -> dict[str, Any]:
    """Counts per status and a table of the configured symbols' reference values."""
    counts = frame["status"].value_counts()
    metadata: dict[str, Any] = {"instruments": MetadataValue.int(len(frame))}
    for status in ("trading", "halted", "delisted"):
        metadata[f"instruments_{status}"] = MetadataValue.int(int(counts.get(status, 0)))
    by_symbol = frame.set_index("symbol")
    lines = [
        "| symbol | venue id | tick size | amount step | min amount | min notional | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for symbol in configured:
        if symbol not in by_symbol.index:
            lines.append(f"| {symbol} | - | - | - | - | - | not listed |")
            continue
        row = by_symbol.loc[symbol]
        lines.append(
            f"| {symbol} | {row['venue_id']} | {_num(row['tick_size'])} | {_num(row['amount_step'])} "
            f"| {_num(row['min_amount'])} | {_num(row['min_notional'])} | {row['status']} ({row['raw_status']}) |"
        )
    metadata["configured_symbols"] = MetadataValue.md("\n".join(lines))
    metadata["fetched_at"] = MetadataValue.text(
        frame["fetched_at"].iloc[0].isoformat() if len(frame) else "-"
    )
    return metadata


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.10g}"  # NaN -> "-"
