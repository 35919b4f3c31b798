"""The live chart (``GET /``) in a real headless Chromium: the page loads the vendored Lightweight Charts
from the service, draws the buffer as candles with its gaps marked, and adds each closed candle from
the SSE stream. Chromium missing: skipped with the reason, and a failure in CI (``CI=true``), where
``make test`` installs it first (``make browser``: see README, Live service).

``MARKETDATA_CHART_SCREENSHOT=docs/live-chart.png`` also writes the screenshot there (the README's).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from marketdata_assets.frames import MINUTE_MS
from marketdata_assets.live.server import LiveServer
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets_tests.live.chromium import Chromium, find_chromium
from marketdata_assets_tests.live.conftest import ManualClock, at

MakeLive = Callable[..., LiveServer]


def test_the_page_and_the_vendored_chart_library_are_served_from_the_package(
    make_simulator: Callable[..., SimulatorServer], make_live: MakeLive
) -> None:
    clock = ManualClock(at("2024-03-10T10:00:30"))
    live = make_live(
        make_simulator(seed=5, limits_enabled=False, clock=clock), clock, {"binance": ["BTC/USDT"]}
    )
    page = httpx.get(f"{live.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/chart.js">' in page.text and "https://" not in page.text  # no CDN
    lib = httpx.get(f"{live.url}/static/lightweight-charts.standalone.production.js")
    assert lib.status_code == 200 and "Lightweight Charts" in lib.text[:300]
    assert "Apache License" in httpx.get(f"{live.url}/static/lightweight-charts.LICENSE").text
    assert httpx.get(f"{live.url}/static/nope.js").status_code == 404
    assert "/" not in httpx.get(f"{live.url}/openapi.json").json()["paths"]


def test_the_chart_renders_the_buffer_marks_gaps_and_updates_from_the_stream(
    make_simulator: Callable[..., SimulatorServer], make_live: MakeLive, tmp_path: Path
) -> None:
    chromium = find_chromium()
    if chromium is None:
        reason = (
            "no Chromium on PATH (make browser, or apt-get install -y chromium chromium-driver; "
            "or MARKETDATA_TEST_CHROMIUM=path)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    clock = ManualClock(at("2024-03-10T10:00:30"))
    sim = make_simulator(seed=5, limits_enabled=False, clock=clock)
    gap_start = int(at("2024-03-10T09:30:00").timestamp() * 1000)
    sim.add_outage("binance", gap_start, gap_start + 3 * MINUTE_MS)  # 09:30-09:33: a gap in the buffer
    live = make_live(sim, clock, {"binance": ["BTC/USDT"]})

    with Chromium(chromium) as browser:
        page = browser.open(f"{live.url}/?exchange=binance&symbol=BTCUSDT&timeframe=1m")
        status = browser.wait_for(
            page,
            "document.getElementById('status').textContent.includes('live') && "
            "document.getElementById('status').textContent",
        )
        assert "binance:BTCUSDT:1m" in status and "last candle 2024-03-10T09:59:00Z" in status
        assert "gaps 1" in status and "venue ok" in status
        chart = browser.evaluate(
            page,
            "JSON.stringify({...document.getElementById('chart').dataset, "
            "canvases: document.querySelectorAll('#chart canvas').length})",
        )
        chart = json.loads(chart)
        assert chart["candles"] == "100"  # the buffer: its last 100 candles (around the gap)
        assert int(chart["markers"]) >= 1 and chart["canvases"] >= 1
        selected = browser.evaluate(
            page, "['exchange','symbol','timeframe'].map(id => document.getElementById(id).value).join(' ')"
        )
        assert selected == "binance BTCUSDT 1m"

        clock.advance(60)  # 10:00 closes: the service publishes it, the page adds it from the stream
        assert [e.timeframe for e in live.poll()] == ["1m"]
        browser.wait_for(page, "document.getElementById('chart').dataset.candles === '101'")
        assert (
            browser.evaluate(page, "document.getElementById('status').dataset.last") == "2024-03-10T10:00:00Z"
        )

        png = browser.screenshot(page)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    (tmp_path / "live-chart.png").write_bytes(png)
    target = os.environ.get("MARKETDATA_CHART_SCREENSHOT")
    if target:
        shutil.copyfile(tmp_path / "live-chart.png", target)
