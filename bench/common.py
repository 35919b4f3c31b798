"""Shared by every scenario: the simulator process, the process-tree meters, the load, the rows.

Every scenario measures the project and its baseline or floor in the same run, interleaved
(A B A B ...), and reports medians and their ratio, with the machine's load before and after.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
PYTHON = sys.executable


@dataclass
class Row:
    """One line of the table: a measured quantity of the project against its baseline or floor."""

    scenario: str
    case: str
    metric: str
    unit: str
    project: float | None
    baseline: float | None
    baseline_name: str
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.project is None or not self.baseline:
            return None
        return self.project / self.baseline

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class ScenarioResult:
    name: str
    rows: list[Row] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)  # every raw measurement, for latest.json
    notes: list[str] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0
    repeats: int = 0


def median(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]


# -- the machine -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_gb": mem_gb,
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("dagster", "pandas", "pyarrow", "duckdb", "polars", "ccxt", "numpy"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except ImportError:
            out[name] = "not installed"
    return out


# -- processes ---------------------------------------------------------------------------------------


def children_cpu() -> float:
    """User + system CPU seconds of every terminated and waited-for descendant so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ppid_map() -> dict[int, int]:
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
        out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def process_tree(root: int) -> list[int]:
    parents = _ppid_map()
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree += frontier
    return tree


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler:
    """Samples a process tree's memory every ``interval`` seconds in a thread: the peak of the summed
    resident set (VmRSS) and the largest single-process high-water mark (VmHWM)."""

    def __init__(self, pid: int, interval: float = 0.25, on_sample: Callable[[], None] | None = None) -> None:
        self.pid = pid
        self.interval = interval
        self.on_sample = on_sample
        self.peak_tree_rss_kb = 0
        self.peak_process_hwm_kb = 0
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = process_tree(self.pid)
            self.max_processes = max(self.max_processes, len(pids))
            self.peak_tree_rss_kb = max(self.peak_tree_rss_kb, sum(_status_kb(p, "VmRSS:") for p in pids))
            self.peak_process_hwm_kb = max(
                [self.peak_process_hwm_kb, *(_status_kb(p, "VmHWM:") for p in pids)]
            )
            if self.on_sample is not None:
                self.on_sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measured:
    """One subprocess run: wall seconds, CPU seconds of its whole tree, exit status, memory peaks."""

    wall_s: float
    cpu_s: float
    returncode: int | None
    peak_tree_rss_mb: float = 0.0
    peak_process_hwm_mb: float = 0.0
    killed: bool = False
    log: str = ""


def run_measured(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log: Path,
    timeout_s: float | None = None,
    on_sample: Callable[[], None] | None = None,
    sample_interval: float = 0.25,
) -> Measured:
    """Run ``cmd`` in its own process group; CPU from ``RUSAGE_CHILDREN`` deltas (the whole tree, once
    waited for), wall from ``perf_counter``. ``timeout_s`` ends the group (SIGTERM, then SIGKILL)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    killed = False
    with log.open("w") as out:
        proc = subprocess.Popen(
            list(cmd), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_DIR, start_new_session=True
        )
        with TreeSampler(proc.pid, sample_interval, on_sample) as sampler:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                killed = True
                _end_group(proc)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    return Measured(
        wall_s=wall,
        cpu_s=cpu,
        returncode=proc.returncode,
        peak_tree_rss_mb=sampler.peak_tree_rss_kb / 1024,
        peak_process_hwm_mb=sampler.peak_process_hwm_kb / 1024,
        killed=killed,
        log=str(log),
    )


def _end_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # the group may outlive its leader (Dagster step processes): make sure it is gone
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


# -- the simulator -----------------------------------------------------------------------------------


class Simulator:
    """``marketdata-sim`` in its own process (its CPU is not the measured tree's), on a free port."""

    def __init__(self, workdir: Path, *, limits: bool) -> None:
        self.workdir = workdir
        self.limits = limits
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> Simulator:
        port_file = self.workdir / "sim.url"
        cmd = [PYTHON, "-m", "marketdata_assets.simulator.cli", "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--port-file", str(port_file)]
        if not self.limits:
            cmd.append("--no-limits")
        log = (self.workdir / "sim.log").open("w")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_DIR)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.url = port_file.read_text().strip()
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited: {(self.workdir / 'sim.log').read_text()}")
            time.sleep(0.05)
        raise RuntimeError("simulator did not start within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._get("/__sim/stats")["venues"]

    def reset(self) -> None:
        for path in ("/__sim/stats/reset", "/__sim/limits/reset"):
            req = urllib.request.Request(self.url + path, method="POST", data=b"")
            urllib.request.urlopen(req, timeout=5).read()


def settings_file(
    path: Path,
    sim_url: str,
    data_root: Path,
    *,
    venues: dict[str, list[str]],
    start: date,
    dvol: list[str] | None = None,
) -> Path:
    """A settings file pointing the given venues (and DVOL) at the simulator, like ``config/demo.yaml``
    (``rate_limit_ms: 5``; everything else, shared rate limit included, at its defaults)."""
    blocks = "".join(
        f"""
          {venue}:
            symbols: [{", ".join(symbols)}]
            start_date: {start.isoformat()}
            base_url: {sim_url}/{venue}
            rate_limit_ms: 5
        """
        for venue, symbols in venues.items()
    )
    dvol_block = ""
    if dvol:
        dvol_block = f"""
        dvol:
          currencies: [{", ".join(dvol)}]
          start_date: {max(start, date(2021, 3, 24)).isoformat()}
          base_url: {sim_url}/deribit
          rate_limit_ms: 5
          minute_history_days: 100000
        """
    text = f"""
        environment: bench
        synthetic: true
        storage:
          root: {data_root}
        venues:{blocks}
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) + textwrap.dedent(dvol_block))
    return path


def project_env(settings: Path, dagster_home: Path, state_dir: Path) -> dict[str, str]:
    """The environment of a ``marketdata backfill`` subprocess: its own settings, Dagster instance and
    rate-limit state (never the shared ``~/.cache`` budget other people's runs on this machine use)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("MARKETDATA_ENV", "MARKETDATA_ROOT")}
    env.update(
        MARKETDATA_CONFIG=str(settings),
        DAGSTER_HOME=str(dagster_home),
        MARKETDATA_STATE_DIR=str(state_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


def backfill_cmd(venue: str, symbols: Sequence[str], start: date, end: date, *, raw_only: bool) -> list[str]:
    cmd = [PYTHON, "-m", "marketdata_assets.cli", "backfill", "--venue", venue]
    cmd += ["--symbols", ",".join(symbols), "--start", start.isoformat(), "--end", end.isoformat()]
    return cmd + (["--raw-only"] if raw_only else [])


def plain_cmd(
    sim_url: str, venue: str, symbols: Sequence[str], start: date, end: date, out: Path
) -> list[str]:
    cmd = [PYTHON, str(BENCH_DIR / "plain_backfill.py"), "--sim", sim_url, "--venue", venue]
    return cmd + [
        "--symbols",
        ",".join(symbols),
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--out",
        str(out),
    ]


@contextmanager
def timed_load(result: ScenarioResult) -> Iterator[None]:
    result.load_before = load()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        result.seconds = round(time.perf_counter() - t0, 1)
        result.load_after = load()


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def best_of(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value
