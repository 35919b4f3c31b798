"""``resample``: ``transform.resample.resample_all`` vs pandas ``resample().agg()`` on a year of 1m.

A synthetic year of 1m (random walk; 1% Binance-style zero-volume filler minutes, 0.2% missing
minutes), all five timeframes from one frame, interleaved, repeated. The pandas side is what a user
writes: ``set_index("timestamp").resample(rule, label="left", closed="left").agg(first/max/min/
last/sum).dropna()``; it computes no ``n_minutes`` / ``complete``. Checked: the same bins come out,
and every bin without a filler minute has identical open/high/low/close and volume equal to 1e-9
relative. Bins holding a filler differ by design (a filler never sets open/high/low: the exchange's
own 5m candle opens at the first trade); how many of them do differ is reported.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bench import synthetic
from bench.common import Row, ScenarioResult, median, timed_load

NAME = "resample"
DEFAULT_REPEATS = 5
RULES = {"5m": "5min", "15m": "15min", "1h": "1h", "4h": "4h", "1d": "1D"}
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def pandas_all(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    indexed = frame.set_index("timestamp")
    return {
        tf: indexed.resample(rule, label="left", closed="left").agg(AGG).dropna(subset=["open"])
        for tf, rule in RULES.items()
    }


def compare(frame: pd.DataFrame, ours: dict[str, pd.DataFrame], theirs: dict[str, pd.DataFrame]) -> dict:
    from marketdata_assets.quality.gaps import filler_mask

    filler = np.asarray(filler_mask(frame))
    ms = frame["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")
    out = {}
    for tf, minutes in {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}.items():
        a, b = ours[tf].set_index("timestamp"), theirs[tf]
        same_bins = a.index.equals(b.index)
        step = minutes * 60_000
        bins_with_filler = np.unique(ms[filler] // step * step)
        has_filler = np.isin(a.index.to_numpy(dtype="datetime64[ms]").view("int64"), bins_with_filler)
        clean_a, clean_b = a[~has_filler], b[~has_filler] if same_bins else b
        prices = ["open", "high", "low", "close"]
        clean_equal = bool(
            same_bins
            and (clean_a[prices].to_numpy() == clean_b[prices].to_numpy()).all()
            and np.allclose(clean_a["volume"], clean_b["volume"], rtol=1e-9, atol=0)
        )
        differing = (
            int((a[has_filler][prices].to_numpy() != b[has_filler][prices].to_numpy()).any(axis=1).sum())
            if same_bins
            else None
        )
        out[tf] = {
            "bins": len(a),
            "same_bins": same_bins,
            "bins_without_filler_equal": clean_equal,
            "bins_with_filler": int(has_filler.sum()),
            "filler_bins_differing": differing,
        }
    return out


def run(workdir: Path, repeats: int, quick: bool = False) -> ScenarioResult:
    from marketdata_assets.transform.resample import resample_all

    result = ScenarioResult(NAME, repeats=repeats)
    days = 31 if quick else 365
    with timed_load(result):
        frame = synthetic.minutes(date(2023, 1, 1), days, filler_rate=0.01, missing_rate=0.002)
        check = compare(frame, resample_all(frame), pandas_all(frame))
        times: dict[str, list[float]] = {"project": [], "pandas": []}
        for _ in range(repeats):
            for name, fn in (("project", resample_all), ("pandas", pandas_all)):
                t = time.perf_counter()
                fn(frame)
                times[name].append(time.perf_counter() - t)
    p, b = median(times["project"]), median(times["pandas"])
    ok = all(c["same_bins"] and c["bins_without_filler_equal"] for c in check.values())
    differing = sum(c["filler_bins_differing"] or 0 for c in check.values())
    with_filler = sum(c["bins_with_filler"] for c in check.values())
    note = (
        f"{len(frame) / p / 1e6:.1f} vs {len(frame) / b / 1e6:.1f} M rows/s; "
        + ("same bins, filler-free bins equal" if ok else "MISMATCH, see latest.json")
        + f"; {differing}/{with_filler} filler bins differ (by design)"
    )
    result.rows.append(
        Row(NAME, f"1m x {days} days -> 5 tfs", "s", "s", p, b, "pandas resample().agg()", note)
    )
    result.samples = {"times_s": times, "rows": len(frame), "check": check}
    if not ok:
        result.notes.append("resample_all and pandas disagree on bins without fillers: see samples.check")
    return result
