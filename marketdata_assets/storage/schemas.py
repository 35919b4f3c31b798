"""The Arrow schemas of every stored file: explicit types, so a file's schema never depends on the data.

Timestamps are ``timestamp[ms, tz=UTC]`` (the candle's open time), prices float64, minute counts int16
(up to 32767 minutes: enough for a weekly candle), gap lengths int32. Hive partition columns
(exchange, symbol, timeframe, currency, month, date) live in the directory names, not in the files.
"""

from __future__ import annotations

import pyarrow as pa

from marketdata_assets.frames import PRICE_COLUMNS

UTC_MS = pa.timestamp("ms", tz="UTC")

_PRICES = [pa.field(c, pa.float64()) for c in PRICE_COLUMNS]

RAW_CANDLES = pa.schema([pa.field("timestamp", UTC_MS), *_PRICES, pa.field("volume", pa.float64())])
RAW_DVOL = pa.schema([pa.field("timestamp", UTC_MS), *_PRICES, pa.field("resolution_s", pa.int32())])
QUARANTINE_CANDLES = pa.schema([*RAW_CANDLES, pa.field("reason", pa.string())])

SERVED_CANDLES = pa.schema(
    [
        *RAW_CANDLES,
        pa.field("n_minutes", pa.int16()),
        pa.field("expected_minutes", pa.int16()),
        pa.field("complete", pa.bool_()),
    ]
)
SERVED_DVOL = pa.schema([pa.field("timestamp", UTC_MS), *_PRICES, pa.field("filled", pa.bool_())])
GAPS = pa.schema(
    [
        pa.field("venue", pa.string()),
        pa.field("start", UTC_MS),
        pa.field("end", UTC_MS),
        pa.field("minutes", pa.int32()),
        pa.field("kind", pa.string()),
        pa.field("day", pa.date32()),
    ]
)
