"""The API's JSON rendering of candle tables: the same text as per-cell ``isoformat`` + JSONResponse."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from starlette.responses import JSONResponse

from marketdata_assets.live.api import _json_body, _records


def frame(tz: str | None = "UTC", freq: str = "min") -> pd.DataFrame:
    n = 500
    rng = np.random.default_rng(3)
    ts = pd.date_range("2024-03-01", periods=n, freq=freq, tz=tz).astype(
        f"datetime64[ms{', ' + tz if tz else ''}]"
    )
    return pd.DataFrame(
        {
            "timestamp": ts,
            "open": rng.random(n) * 100,
            "close": rng.random(n) / 3,  # floats needing all 17 digits
            "volume": rng.random(n) * 1e4,
            "complete": rng.random(n) > 0.1,
            "n_minutes": np.full(n, 5, dtype="int16"),
        }
    )


def per_cell(f: pd.DataFrame) -> list[dict]:
    out = f.copy()
    out["timestamp"] = out["timestamp"].map(lambda t: t.isoformat())
    return out.to_dict(orient="records")


def test_records_equal_the_per_cell_rendering_for_minutes_seconds_and_naive_times() -> None:
    for f in (frame(), frame(freq="1500ms"), frame(tz=None)):
        assert _records(f) == per_cell(f)


def test_json_body_is_what_jsonresponse_renders_and_round_trips_every_float() -> None:
    f = frame()
    envelope = {"exchange": "binance", "symbol": "BTCUSDT", "timeframe": "1m"}
    body = _json_body(envelope, f)
    assert body == JSONResponse({**envelope, "candles": per_cell(f)}).body
    assert [row["close"] for row in json.loads(body)["candles"]] == f["close"].tolist()
