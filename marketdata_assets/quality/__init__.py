"""Data quality, pure: schemas and validation reports, dedupe, quarantine, gap accounting, continuity."""

from marketdata_assets.quality.clean import CleanResult, FrameContractError, clean_partition
from marketdata_assets.quality.continuity import price_jumps
from marketdata_assets.quality.dedupe import DedupeResult, dedupe_candles
from marketdata_assets.quality.gaps import (
    FILLER,
    GAP_COLUMNS,
    NO_TRADES,
    OUTAGE,
    Completeness,
    completeness,
    filler_mask,
    find_gaps,
    missing_minute_ranges,
)
from marketdata_assets.quality.schemas import (
    DUPLICATES,
    OHLC,
    SCHEMA,
    CheckFailure,
    DvolCandles,
    RawCandles,
    RawDvol,
    ValidatedCandles,
    ValidationReport,
    validate_candles,
)

__all__ = [
    "DUPLICATES",
    "FILLER",
    "GAP_COLUMNS",
    "NO_TRADES",
    "OHLC",
    "OUTAGE",
    "SCHEMA",
    "CheckFailure",
    "CleanResult",
    "Completeness",
    "DedupeResult",
    "DvolCandles",
    "FrameContractError",
    "RawCandles",
    "RawDvol",
    "ValidatedCandles",
    "ValidationReport",
    "clean_partition",
    "completeness",
    "dedupe_candles",
    "filler_mask",
    "find_gaps",
    "missing_minute_ranges",
    "price_jumps",
    "validate_candles",
]
