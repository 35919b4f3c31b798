"""Verdicts: what the validate step concluded about one stored day, beside the day, as JSON.

Layout::

    verdicts/ohlcv_1m/exchange=X/symbol=Y/date=YYYY-MM-DD/verdict.json

The validate step (:mod:`marketdata_assets.pipeline.validate`) validates each day once and writes its
verdict here; the validated layer's checks and the resampling step read it instead of validating again.
A verdict is replaced atomically together with each re-validation of its day.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from marketdata_assets.storage.atomic import write_bytes_atomic
from marketdata_assets.storage.objectstore import read_snapshot
from marketdata_assets.storage.root import StorageRoot, dataset_segments, day_segment, key_segments

VERDICTS_DATASET = "verdicts/ohlcv_1m"
VERDICT_FILE = "verdict.json"


def verdict_path(root: StorageRoot, exchange: str, symbol_key: str, day: date) -> str:
    keys = {"exchange": exchange, "symbol": symbol_key}
    return root.path(
        *dataset_segments(VERDICTS_DATASET),
        *key_segments(keys, ("exchange", "symbol")),
        day_segment(day),
        VERDICT_FILE,
    )


def write_verdict(
    root: StorageRoot, exchange: str, symbol_key: str, day: date, payload: dict[str, Any]
) -> str:
    """Store a day's verdict (a JSON object), replacing the previous one; returns its display path."""
    path = verdict_path(root, exchange, symbol_key, day)
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    write_bytes_atomic(root.fs, path, body, media_type="application/json")
    return root.display(path)


def read_verdict(root: StorageRoot, exchange: str, symbol_key: str, day: date) -> dict[str, Any] | None:
    """A day's stored verdict, or None when the day was never validated."""
    path = verdict_path(root, exchange, symbol_key, day)
    if not root.exists(path):
        return None
    return json.loads(read_snapshot(root.fs, path).to_pybytes().decode())
