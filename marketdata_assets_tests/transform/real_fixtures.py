"""The recorded exchange data in ``marketdata_assets_tests/fixtures/real`` (provenance: its SOURCES.md), loaded as
canonical frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from marketdata_assets.frames import CANDLE_COLUMNS, TIMESTAMP_DTYPE, candles_from_rows

REAL_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real"


def real_fixture(*parts: str) -> Path:
    path = REAL_FIXTURES.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: see {REAL_FIXTURES / 'SOURCES.md'}")
    return path


def freqtrade_feather(name: str) -> pd.DataFrame:
    """A freqtrade ``.feather`` (``date`` column, ns UTC) as a canonical candle frame."""
    frame = pd.read_feather(real_fixture("ohlcv", name)).rename(columns={"date": "timestamp"})
    frame["timestamp"] = frame["timestamp"].astype(TIMESTAMP_DTYPE)
    return frame[CANDLE_COLUMNS]


def binance_archive_day(name: str) -> pd.DataFrame:
    """A data.binance.vision daily kline CSV (headerless, 12 columns) as a canonical candle frame."""
    raw = pd.read_csv(real_fixture("ohlcv", name), header=None)
    return candles_from_rows(raw.iloc[:, :6].itertuples(index=False, name=None))
