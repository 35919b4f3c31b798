"""Two runs of the same partition at once lose no row and leave every layer consistent.

Two real processes (spawn) run the pipeline's steps for the same venue x symbol x day at the same time:
store the fetched raw day, validate it, resample it. Their fetches differ the way two fetches minutes
apart can (each misses a different hour: a venue outage that healed in between), so whichever run
writes last must not drop what the other stored. Each worker sleeps right after every raw read, which
widens the read-modify-write window the way a slow disk or a busy machine does: without the per-series
lock, both read "nothing stored", and the last writer's hour-long hole wins. Bounded: ~5 s.
"""

from __future__ import annotations

import multiprocessing
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from marketdata_assets.storage.raw import read_raw_candles
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_served_candles

DAY = date(2024, 3, 5)
VENUE, SYMBOL = "binance", "BTCUSDT"
HOLES = {"a": tuple(range(100, 160)), "b": tuple(range(600, 660))}  # what each fetch misses
READ_PAUSE_S = 0.4


def run_pipeline_in_process(root_uri: str, which: str, barrier, results) -> None:  # noqa: ANN001
    """One "run" of the partition: raw store -> validate -> resample, after a shared start signal."""
    import marketdata_assets.storage.raw as raw_module
    import marketdata_assets.storage.revisions as revisions_module
    from marketdata_assets.pipeline.resample import resample_days
    from marketdata_assets.pipeline.validate import validate_days
    from marketdata_assets.storage.revisions import store_raw_candles
    from marketdata_assets_tests.storage.helpers import minute_candles

    real_read = raw_module.read_raw_candles

    def slow_read(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        try:
            return real_read(*args, **kwargs)
        finally:
            time.sleep(READ_PAUSE_S)

    raw_module.read_raw_candles = slow_read
    revisions_module.read_raw_candles = slow_read
    root = StorageRoot.from_uri(root_uri)
    fetched = minute_candles(DAY, base=100.0, skip=HOLES[which])
    barrier.wait(timeout=60)
    store_raw_candles(root, VENUE, SYMBOL, DAY, fetched)
    validated = validate_days(root, VENUE, SYMBOL, [DAY])
    resampled = resample_days(root, VENUE, SYMBOL, [DAY])
    results.put((which, [o.ok for o in validated + resampled]))


def test_two_runs_of_one_partition_at_once_keep_the_union_in_every_layer(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    uri = str(tmp_path / "data")
    workers = [
        context.Process(target=run_pipeline_in_process, args=(uri, which, barrier, results))
        for which in HOLES
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=90)
    assert [w.exitcode for w in workers] == [0, 0]
    outcomes = dict(results.get(timeout=5) for _ in workers)
    assert outcomes == {"a": [True, True], "b": [True, True]}  # neither run failed nor was stuck

    root = StorageRoot.from_uri(uri)
    raw = read_raw_candles(root, VENUE, SYMBOL, DAY)
    assert len(raw) == 1440 and raw["timestamp"].is_unique  # the union: each fetch's hole filled by the other
    start = pd.Timestamp(DAY, tz="UTC")
    served = read_served_candles(root, "1m", VENUE, SYMBOL, start, start + timedelta(days=1))
    assert (
        len(served) == 1440 and served["timestamp"].is_monotonic_increasing and served["timestamp"].is_unique
    )
    hourly = read_served_candles(root, "1h", VENUE, SYMBOL, start, start + timedelta(days=1))
    assert len(hourly) == 24 and hourly["complete"].all()  # bins from the whole day, not from a stale read
    assert (hourly["n_minutes"] == 60).all()
