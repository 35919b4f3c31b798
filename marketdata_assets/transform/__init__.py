"""Transformations, pure: 1m candles to higher timeframes, DVOL to a minute grid and to hours."""

from marketdata_assets.transform.dvol import DVOL_MINUTE_COLUMNS, dvol_hourly, dvol_to_minutes
from marketdata_assets.transform.resample import RESAMPLED_COLUMNS, TIMEFRAMES, resample_all, resample_candles

__all__ = [
    "DVOL_MINUTE_COLUMNS",
    "RESAMPLED_COLUMNS",
    "TIMEFRAMES",
    "dvol_hourly",
    "dvol_to_minutes",
    "resample_all",
    "resample_candles",
]
