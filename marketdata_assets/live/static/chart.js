// The live chart: one series' buffer as candles (GET .../buffer/{tf}), then each closed candle from the
// SSE stream (GET /api/v1/stream?series=...). Gaps are marked: the buffer's gap metadata, incomplete
// candles (fewer minutes than the bin), and bins without a candle (a seq jump, live or in the buffer).
"use strict";
(function () {
  const BIN_S = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400 };
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const box = $("chart");
  const chart = LightweightCharts.createChart(box, {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#333" },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  const series = chart.addCandlestickSeries();
  let live = [];
  let source = null;
  let state = null; // {name, tf, bars, markers, lastSeq, gaps, venue, connected}

  const sec = (iso) => Math.floor(Date.parse(iso) / 1000);
  const utc = (s) => new Date(s * 1000).toISOString().replace(".000Z", "Z");
  const bar = (c) => ({ time: sec(c.timestamp), open: c.open, high: c.high, low: c.low, close: c.close });

  function fill(select, values, wanted) {
    select.replaceChildren(...values.map((v) => new Option(v, v)));
    if (values.includes(wanted)) select.value = wanted;
  }

  function choices(params) {
    const ex = [...new Set(live.map((s) => s.exchange))];
    fill($("exchange"), ex, params.exchange);
    const sym = [...new Set(live.filter((s) => s.exchange === $("exchange").value).map((s) => s.symbol))];
    fill($("symbol"), sym, params.symbol);
    fill($("timeframe"), Object.keys(BIN_S), params.timeframe || "1m");
  }

  function gapMarker(time, text) {
    return { time, position: "aboveBar", color: "#b00020", shape: "arrowDown", text };
  }

  function markers(candles, gaps, tf) {
    const out = [];
    const bin = BIN_S[tf];
    const times = candles.map((c) => sec(c.timestamp));
    candles.forEach((c, i) => {
      if (!c.complete) {
        out.push({ time: times[i], position: "belowBar", color: "#e69500", shape: "circle",
                   text: `${c.n_minutes}/${c.expected_minutes}m` });
      }
      if (i > 0 && times[i] - times[i - 1] > bin) {
        out.push(gapMarker(times[i], `gap ${(times[i] - times[i - 1]) / bin - 1} bins`));
      }
    });
    for (const g of gaps) {
      const start = Math.floor(sec(g.start) / bin) * bin;
      const at = times.find((t) => t >= start);
      if (at !== undefined) out.push(gapMarker(at, `${g.kind} ${g.minutes}m`));
    }
    return out.sort((a, b) => a.time - b.time);
  }

  function render() {
    const s = state;
    const last = s.bars.length ? utc(s.bars[s.bars.length - 1].time) : "none";
    status.textContent = `${s.name} · ${s.bars.length} candles · last candle ${last} · ` +
      `venue ${s.venue} · gaps ${s.gaps} · ${s.connected ? "live" : "connecting"}`;
    status.className = s.venue === "ok" ? "" : "failing";
    status.dataset.last = last;
    box.dataset.candles = String(s.bars.length);
    box.dataset.markers = String(s.markers.length);
  }

  async function load() {
    const ex = $("exchange").value, sym = $("symbol").value, tf = $("timeframe").value;
    if (!ex || !sym) return;
    if (source) source.close();
    history.replaceState(null, "", `?exchange=${ex}&symbol=${sym}&timeframe=${tf}`);
    const res = await fetch(`/api/v1/market-data/${ex}/${sym}/buffer/${tf}`);
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    const bars = body.candles.map(bar);
    const marks = markers(body.candles, body.gaps, tf);
    const lastSeq = bars.length ? bars[bars.length - 1].time / BIN_S[tf] : null;
    state = { name: `${ex}:${sym}:${tf}`, tf, bars, markers: marks, lastSeq, gaps: body.gaps.length,
              venue: body.freshness.venue_status, connected: false };
    series.setData(bars);
    series.setMarkers(marks);
    chart.timeScale().fitContent();
    render();
    source = new EventSource(`/api/v1/stream?series=${encodeURIComponent(state.name)}`);
    const mine = state;
    source.onopen = () => { mine.connected = true; if (state === mine) render(); };
    source.onerror = () => { mine.connected = false; if (state === mine) render(); };
    source.addEventListener("candle", (msg) => {
      if (state !== mine) return;
      const ev = JSON.parse(msg.data);
      const b = bar(ev.candle);
      if (mine.lastSeq !== null && ev.seq > mine.lastSeq + 1) {
        mine.markers.push(gapMarker(b.time, `gap ${ev.seq - mine.lastSeq - 1} bins`));
      }
      if (!ev.candle.complete) {
        mine.markers.push({ time: b.time, position: "belowBar", color: "#e69500", shape: "circle",
                            text: `${ev.candle.n_minutes}/${ev.candle.expected_minutes}m` });
      }
      mine.lastSeq = ev.seq;
      mine.bars.push(b);
      series.update(b);
      series.setMarkers(mine.markers);
      render();
    });
  }

  function reload() {
    load().catch((err) => { status.textContent = `error: ${err.message}`; status.className = "error"; });
  }

  async function main() {
    const res = await fetch("/api/v1/market-data/available");
    live = (await res.json()).live;
    const params = Object.fromEntries(new URLSearchParams(location.search));
    choices(params);
    $("exchange").onchange = () => { choices({ timeframe: $("timeframe").value }); reload(); };
    $("symbol").onchange = reload;
    $("timeframe").onchange = reload;
    await load();
  }

  main().catch((err) => { status.textContent = `error: ${err.message}`; status.className = "error"; });
})();
