"""Screenshots of the Dagster UI over the demo instance, taken with headless Chromium.

    make demo       # once: writes data/demo/ and its Dagster instance data/demo/.dagster
    make ui-shots   # starts dagster-webserver on a free port, shoots, stops it

Writes docs/ui/*.png: the asset catalog, one raw partition, the checks of binance/ohlcv_1m, the runs
list and one refresh run. Needs Chromium (Debian/Ubuntu: `apt-get install chromium`); without it the
script prints "skipped: ..." and exits 0, so it never breaks a pipeline that has no browser.

Environment: CHROMIUM (the browser binary), UI_SHOTS_BUDGET (Chromium's virtual-time budget in ms
per page, default 15000: raise it if a picture shows a spinner), UI_SHOTS_OUT (output directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_HOME = ROOT / "data" / "demo" / ".dagster"
OUT = Path(os.environ.get("UI_SHOTS_OUT", ROOT / "docs" / "ui"))
BUDGET_MS = int(os.environ.get("UI_SHOTS_BUDGET", "15000"))
DEFAULT_CHROMIUM = "/usr/bin/chromium"
RAW_ASSET = ("bybit", "ohlcv_1m_raw")
CHECKS_ASSET = ("binance", "ohlcv_1m")


def find_chromium() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    if Path(DEFAULT_CHROMIUM).is_file():
        return DEFAULT_CHROMIUM
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(base: str, query: str) -> dict:
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(
        f"{base}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL error: {payload['errors']}")
    return payload["data"]


def wait_until_up(base: str, server: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"dagster-webserver exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    sys.exit(f"dagster-webserver did not answer {base}/server_info in {timeout:.0f}s; log: {log}")


def pick_partition(base: str) -> str:
    """The first day of the demo range for BTCUSDT (any key if that one is not there)."""
    path = json.dumps(list(RAW_ASSET))
    data = graphql(
        base, f"{{ assetNodeOrError(assetKey: {{path: {path}}}) {{ ... on AssetNode {{ partitionKeys }} }} }}"
    )
    keys = data["assetNodeOrError"].get("partitionKeys") or []
    if not keys:
        sys.exit(f"{'/'.join(RAW_ASSET)} has no partitions in this instance")
    start = (DEMO_HOME / "demo-start").read_text().strip() if (DEMO_HOME / "demo-start").exists() else ""
    for key in keys:
        if key.startswith(start) and "BTC" in key:
            return key
    return keys[0]


def pick_run(base: str) -> str:
    """The newest refresh run of a venue (a run with a marketdata/venue tag), else the newest run."""
    data = graphql(
        base,
        "{ runsOrError(limit: 50) { ... on Runs { results { runId jobName tags { key value } } } } }",
    )
    runs = data["runsOrError"].get("results") or []
    if not runs:
        sys.exit("the demo instance has no runs: run make demo first")
    for run in runs:
        if any(tag["key"] == "marketdata/venue" for tag in run["tags"]):
            return run["runId"]
    return runs[0]["runId"]


def shoot(chromium: str, url: str, png: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="ui-shots-chromium-") as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--window-size=1440,900",
            f"--virtual-time-budget={BUDGET_MS}",
            f"--screenshot={png}",
            url,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if result.returncode != 0 or not png.is_file():
        sys.exit(f"chromium failed on {url} ({result.returncode}):\n{result.stderr[-2000:]}")
    print(f"  {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}  <-  {url}")


def main() -> int:
    chromium = find_chromium()
    if chromium is None:
        explicit = os.environ.get("CHROMIUM")
        where = f"{explicit} (CHROMIUM)" if explicit else f"{DEFAULT_CHROMIUM} nor on PATH"
        print(
            f"skipped: chromium not found at {where}; "
            "install it with `apt-get install chromium` (Debian/Ubuntu) or set CHROMIUM=/path/to/it"
        )
        return 0
    if not DEMO_HOME.is_dir():
        print(f"{DEMO_HOME} is missing: run make demo first", file=sys.stderr)
        return 1

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(DEMO_HOME)
    env["MARKETDATA_ENV"] = "demo"
    start_file = DEMO_HOME / "demo-start"
    if start_file.exists():
        env["MARKETDATA_DEMO_START"] = start_file.read_text().strip()
    webserver = shutil.which("dagster-webserver") or "dagster-webserver"
    log = Path(tempfile.mkstemp(prefix="ui-shots-webserver-", suffix=".log")[1])
    print(f"starting dagster-webserver on {base} (log: {log})")
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [webserver, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its code server too
        )
    try:
        wait_until_up(base, server, log)
        # What clicking "Skip" on the "Join the Dagster community" dialog does (it would cover every
        # picture): it writes .nux/nux.yaml in the demo instance's DAGSTER_HOME.
        graphql(base, "mutation { setNuxSeen }")
        partition = pick_partition(base)
        run_id = pick_run(base)
        raw = "/".join(RAW_ASSET)
        checks = "/".join(CHECKS_ASSET)
        query = urllib.parse.urlencode({"view": "partitions", "partition": partition})
        shots = [
            ("catalog.png", "/assets"),
            ("raw-partition.png", f"/assets/{raw}?{query}"),
            ("checks.png", f"/assets/{checks}?view=checks"),
            ("runs.png", "/runs"),
            ("run.png", f"/runs/{run_id}"),
        ]
        OUT.mkdir(parents=True, exist_ok=True)
        print(f"shooting with {chromium}, {BUDGET_MS} ms of virtual time per page:")
        for name, path in shots:
            shoot(chromium, base + path, OUT / name)
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
