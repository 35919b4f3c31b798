"""Where the backfill's time goes: py-spy over the 3 x 30 backfill and over the long-range start.

    uv run python -m bench.profile              # both; summaries in bench/results/profile-*.txt
    uv run python -m bench.profile --only long_range
    uv run python -m bench.profile --only backfill_3x30 --cpu   # CPU samples only, 200 Hz

Starts the simulator (limits off), starts ``marketdata backfill`` with the settings of the
``backfill_cpu`` / ``long_range`` scenarios, attaches ``py-spy record --subprocesses --idle`` (raw
collapsed stacks, 50 Hz) to it, and summarises the samples: top functions by own samples, top
project / Dagster / library functions by inclusive samples. ``long_range`` is ended after 60 s.
Wall-clock samples (``--idle``): waiting on the network or a lock counts too. ``--cpu`` records only
running threads (no ``--idle``) at 200 Hz: where the CPU goes, which is what ``backfill_cpu`` measures.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.common import BENCH_DIR, Simulator, backfill_cmd, project_env, settings_file

RESULTS = BENCH_DIR / "results"
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def summarise(raw: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples ({raw.name})", "", "own samples (where the time is spent):"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inclusive samples, project code (marketdata_assets):"]
    lines += [
        f"  {n / total:6.1%}  {frame}"
        for frame, n in inclusive.most_common()
        if "marketdata_assets/" in frame and "bench/" not in frame
    ][:top]
    lines += ["", "inclusive samples, dagster:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common() if "dagster/" in frame][
        :top
    ]
    lines += ["", "inclusive samples, imports (importlib _find_and_load):"]
    import_samples = sum(n for frame, n in inclusive.items() if frame.startswith("_find_and_load "))
    lines.append(f"  {import_samples / max(total, 1):6.1%}  stacks under an import")
    return "\n".join(lines) + "\n"


def profile(
    name: str, cmd: list[str], env: dict[str, str], workdir: Path, bound_s: float | None, cpu: bool = False
) -> Path:
    raw = workdir / f"{name}.raw"
    log = (workdir / f"{name}.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    # py-spy's binary sits beside the interpreter (.venv/bin) even when the venv is not on PATH
    spy = [
        shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    ]
    spy += ["record", "--pid", str(proc.pid), "--subprocesses", "--format", "raw"]
    spy += ["--rate", "200"] if cpu else ["--idle", "--rate", "50"]
    spy += ["--output", str(raw), "--nonblocking"]
    if bound_s:
        spy += ["--duration", str(int(bound_s))]
    spy_proc = subprocess.Popen(
        spy, stdout=subprocess.DEVNULL, stderr=(workdir / f"{name}.pyspy.log").open("w")
    )
    spy_proc.wait()
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["backfill_3x30", "long_range"])
    parser.add_argument("--cpu", action="store_true", help="CPU samples only (no --idle), 200 Hz")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    with Simulator(workdir, limits=False) as sim:
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        jobs = {
            "backfill_3x30": (date(2024, 3, 1), date(2024, 3, 30), False, None),
            "long_range": (date(2020, 1, 1), yesterday, True, 60.0),
        }
        for name, (start, end, raw_only, bound) in jobs.items():
            if args.only and name != args.only:
                continue
            run_dir = workdir / name
            settings = settings_file(
                run_dir / "settings.yaml", sim.url, run_dir / "data", venues={"binance": SYMBOLS}, start=start
            )
            env = project_env(settings, run_dir / "dagster_home", run_dir / "limits")
            t0 = time.perf_counter()
            raw = profile(
                name,
                backfill_cmd("binance", SYMBOLS, start, end, raw_only=raw_only),
                env,
                workdir,
                bound,
                cpu=args.cpu,
            )
            wall = time.perf_counter() - t0
            text = (
                f"{name}: {' '.join(backfill_cmd('binance', SYMBOLS, start, end, raw_only=raw_only)[1:])}\n"
            )
            samples = "CPU samples, 200 Hz" if args.cpu else "wall-clock samples, 50 Hz"
            text += f"wall {wall:.1f} s{' (ended at the bound)' if bound else ''}; {samples}\n\n" + summarise(
                raw
            )
            (RESULTS / f"profile-{name}.txt").write_text(text)
            shutil.copyfile(raw, RESULTS / f"profile-{name}.raw.txt")
            print(text)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
