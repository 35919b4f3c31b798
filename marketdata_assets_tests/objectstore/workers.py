"""Functions run in spawned worker processes by the object-store lock tests (importable by name)."""

from __future__ import annotations

from datetime import date

from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import write_served_days
from marketdata_assets_tests.storage.helpers import minute_candles


def write_days(root_uri: str, lock_dsn: str, days: list[date], barrier=None) -> None:
    """Write each day of 1-minute candles in its own month read-modify-write (base = day of month)."""
    root = StorageRoot.from_uri(root_uri, lock_dsn=lock_dsn)
    if barrier is not None:
        barrier.wait(timeout=60)
    for day in days:
        write_served_days(root, "1m", "binance", "BTCUSDT", {day: minute_candles(day, base=float(day.day))})
