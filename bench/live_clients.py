"""The clients of the ``live`` scenario, in a process of their own (so their CPU and GIL are not the
service's): ``load`` runs concurrent HTTP clients, ``events`` times SSE and Redis arrivals.

    python -m bench.live_clients load   < {"concurrency": 8, "rounds": 3, "targets": [...]}
    python -m bench.live_clients events < {"sse": URL, "redis_url": URL | null, "stream": KEY, "count": N}

Both read their job as JSON on stdin and answer JSON on stdout. ``load``: per round, per target (in the
order given, so project and floor interleave), ``concurrency`` asyncio tasks each send ``requests``
GETs one after the other over one shared ``httpx.AsyncClient`` (a target's own ``rounds`` caps how
many rounds it takes part in); every latency is kept (seconds, from
sending to the last body byte). ``events``: connects to the SSE stream (and reads the Redis stream
with ``XREAD BLOCK``), prints ``ready`` once both listen, then records ``time.time()`` of each event's
arrival by ``seq`` until ``count`` of each arrived (or 60 s passed).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any


async def _load(job: dict[str, Any]) -> dict[str, Any]:
    import httpx

    concurrency = int(job["concurrency"])
    out: dict[str, Any] = {t["name"]: {"latencies": [], "errors": 0, "bytes": None} for t in job["targets"]}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def worker(url: str, n: int, sink: dict[str, Any]) -> None:
            for _ in range(n):
                t0 = time.perf_counter()
                response = await client.get(url)
                body = response.content
                sink["latencies"].append(time.perf_counter() - t0)
                if response.status_code != 200:
                    sink["errors"] += 1
                sink["bytes"] = len(body)

        for round_ in range(int(job["rounds"])):
            for target in job["targets"]:
                if round_ >= int(target.get("rounds", job["rounds"])):
                    continue
                sink = out[target["name"]]
                t0 = time.perf_counter()
                await asyncio.gather(
                    *(worker(target["url"], int(target["requests"]), sink) for _ in range(concurrency))
                )
                sink.setdefault("wall_s", []).append(time.perf_counter() - t0)
    return out


def _events(job: dict[str, Any]) -> dict[str, Any]:
    import httpx

    count = int(job["count"])
    arrivals: dict[str, dict[int, float]] = {"sse": {}}
    listening = {"sse": threading.Event()}
    stop_at = time.monotonic() + 60

    def sse() -> None:
        with httpx.stream("GET", job["sse"], timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    listening["sse"].set()
                elif line.startswith("data: "):
                    arrivals["sse"][json.loads(line[6:])["seq"]] = time.time()
                    if len(arrivals["sse"]) >= count:
                        return
                if time.monotonic() > stop_at:
                    return

    def redis_reader(client: Any, key: str, last_id: str) -> None:
        listening["redis"].set()
        while len(arrivals["redis"]) < count and time.monotonic() < stop_at:
            answer = client.xread({key: last_id}, block=1000, count=100)
            now = time.time()
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    arrivals["redis"][int(fields[b"seq"])] = now

    threads = [threading.Thread(target=sse, daemon=True)]
    if job.get("redis_url"):
        import redis

        client = redis.Redis.from_url(job["redis_url"])
        newest = client.xrevrange(job["stream"], count=1)
        arrivals["redis"] = {}
        listening["redis"] = threading.Event()
        start_id = newest[0][0] if newest else b"0-0"
        threads.append(
            threading.Thread(target=redis_reader, args=(client, job["stream"], start_id), daemon=True)
        )
    for thread in threads:
        thread.start()
    for name, event in listening.items():
        if not event.wait(30):
            raise SystemExit(f"the {name} consumer did not connect within 30 s")
    print("ready", flush=True)
    for thread in threads:
        thread.join(max(stop_at - time.monotonic(), 0))
    return {name: {str(seq): t for seq, t in got.items()} for name, got in arrivals.items()}


def main() -> int:
    mode = sys.argv[1]
    job = json.loads(sys.stdin.readline())
    result = asyncio.run(_load(job)) if mode == "load" else _events(job)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
