"""``make demo``: the real pipeline end to end, offline, against the local exchange simulator.

1. starts ``marketdata-sim`` on a free loopback port (a separate process, as a user would run it);
2. runs ``marketdata backfill`` for the last 7 closed UTC days of the whole ``demo`` universe,
   with the ``demo`` settings (every venue pointed at the simulator; data root ``data/demo``,
   marked synthetic so it can never be mistaken for, or mixed into, real data);
   (raw -> validated 1m + gaps -> 5m..1d, DVOL 1m/1h, with their checks, then the catalog);
3. reads the served candles back through :class:`~marketdata_assets.client.MarketDataClient` the way a
   backtest would, prints what is available and a sample, stops the simulator, exits with the
   backfill's status (or 1 if the read-back finds a venue or timeframe missing).

The demo keeps its own Dagster instance under the demo data root, so synthetic runs never appear as
materialisations of the real pipeline. To browse them in the UI afterwards: ``make demo-ui``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from marketdata_assets.settings import CONFIG_DIR, PROJECT_DIR, load_settings

DEMO_DAYS = 7
SIM_START_TIMEOUT_S = 60
START_FILE = "demo-start"  # in the demo's Dagster home: its first day, for make demo-ui
UI_URL = "http://127.0.0.1:3000"


def demo_dagster_home(data_root: str) -> Path:
    """The demo's own instance directory (with a copy of the embedded instance config)."""
    home = Path(data_root) / ".dagster"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return home


def start_simulator(port_file: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Start ``marketdata-sim`` on a free loopback port; return the process and its base URL."""
    cmd = [sys.executable, "-m", "marketdata_assets.simulator.cli", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--port-file", str(port_file)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SIM_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return proc, port_file.read_text().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited with status {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the simulator did not start within {SIM_START_TIMEOUT_S} s:\n{log.read_text()}")


def main() -> int:
    from marketdata_assets.universe import latest_closed_day

    end = latest_closed_day()
    start = end - timedelta(days=DEMO_DAYS - 1)
    # the partitions start on the demo's first day: nothing before it reads as "missing" in the UI
    settings = load_settings(CONFIG_DIR / "demo.yaml", environ={"MARKETDATA_DEMO_START": start.isoformat()})
    assert settings.synthetic, "the demo must run on synthetic settings"
    home = demo_dagster_home(settings.storage_root)
    (home / START_FILE).write_text(start.isoformat() + "\n")
    with tempfile.TemporaryDirectory(prefix="marketdata-demo-") as tmp:
        proc, url = start_simulator(Path(tmp) / "sim.url", Path(tmp) / "sim.log")
        print(f"Simulator running at {url}")
        env = {
            **os.environ,
            "MARKETDATA_ENV": "demo",
            "MARKETDATA_SIM_URL": url,
            "MARKETDATA_DEMO_START": start.isoformat(),
            "DAGSTER_HOME": str(home),
        }
        env.pop("MARKETDATA_CONFIG", None)
        env.pop("MARKETDATA_ROOT", None)
        try:
            cmd = [sys.executable, "-m", "marketdata_assets.cli", "backfill"]
            cmd += ["--start", start.isoformat(), "--end", end.isoformat()]
            status = subprocess.call(cmd, env=env)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    if status == 0:
        status = read_back(settings.storage_root, start, end, settings)
    print()
    print(f"Demo data (synthetic) : {settings.storage_root}")
    print(f"Demo Dagster instance : {home}")
    print(f"Browse it             : make demo-ui, then open {UI_URL}")
    return status


def read_back(root: str, start, end, settings) -> int:  # noqa: ANN001 - dates, LoadedSettings
    """What a backtest sees: every venue x timeframe of the demo (and DVOL) through the client."""
    import pandas as pd

    from marketdata_assets.client import MarketDataClient
    from marketdata_assets.transform.resample import TIMEFRAMES
    from marketdata_assets.universe import DVOL_TIMEFRAMES

    client = MarketDataClient(root=root)
    print("\nServed data (MarketDataClient.available()):")
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(client.available().to_string(index=False))
    missing = []
    stop = end + timedelta(days=1)
    if settings.dvol is not None:
        rows = []
        for currency in settings.dvol.currencies:
            for timeframe in DVOL_TIMEFRAMES:
                frame = client.dvol(currency, timeframe, start.isoformat(), stop.isoformat())
                rows.append((currency, timeframe, len(frame), frame.index.min(), frame.index.max()))
                if frame.empty:
                    missing.append(f"DVOL {currency} {timeframe}")
        print("\nServed DVOL (MarketDataClient.dvol()):")
        print(
            pd.DataFrame(rows, columns=["currency", "timeframe", "rows", "first", "last"]).to_string(
                index=False
            )
        )
    instruments = client.instruments()
    print(
        f"\nInstruments (MarketDataClient.instruments()): {len(instruments)} listed on "
        + ", ".join(sorted(instruments["exchange"].unique()))
    )
    for venue, cfg in settings.venues.items():
        for timeframe in ("1m", *TIMEFRAMES):
            for symbol in cfg.symbols:
                frame = client.get_historical_data(
                    symbol, venue, timeframe, start.isoformat(), stop.isoformat()
                )
                if frame.empty:
                    missing.append(f"{venue} {symbol} {timeframe}")
    sample = client.get_historical_data("BTC/USDT", "bybit", "1h", start.isoformat(), stop.isoformat())
    print("\nclient.get_historical_data('BTC/USDT', 'bybit', '1h', ...).tail(3):")
    print(sample.tail(3).to_string())
    if missing:
        print(f"\nMissing from the served layer: {', '.join(missing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
