#!/usr/bin/env python3
"""Benchmark a running DamageLens stack: submit → finished latency and burst throughput.

Usage: make run (in another terminal), then
    .venv/bin/python scripts/bench_service.py --url http://127.0.0.1:8000 --n 12
Prints numbers; asserts nothing (these machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))
from damagelens.settings import get_settings

TERMINAL = {"succeeded", "failed", "canceled"}


def photos(data_dir: Path, n: int) -> list[Path]:
    found = sorted((data_dir / "car-damage-6class").rglob("*.jpg"))
    if not found:
        raise SystemExit(f"no photos under {data_dir}/car-damage-6class (set --data)")
    step = max(1, len(found) // n)
    return found[::step][:n]


def submit(client: httpx.Client, path: Path, model: str, tasks: str) -> tuple[str, float]:
    start = time.perf_counter()
    response = client.post("/v1/jobs", files={"image": (path.name, path.read_bytes())}, data={"model": model, "tasks": tasks})
    response.raise_for_status()
    return response.json()["id"], start


def wait(client: httpx.Client, job_id: str, poll: float = 0.05) -> dict:
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(poll)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--data", type=Path, default=get_settings().data_dir)
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--model", default="accurate")
    parser.add_argument("--tasks", default="classify,explain,detect")
    args = parser.parse_args()
    images = photos(args.data, args.n)
    client = httpx.Client(base_url=args.url, timeout=120)

    latencies, stage_ms = [], {}
    for path in images:  # one at a time: the latency a single user sees
        job_id, start = submit(client, path, args.model, args.tasks)
        job = wait(client, job_id)
        latencies.append(time.perf_counter() - start)
        if job["status"] != "succeeded":
            print(f"job {job_id} {job['status']}: {job['error']}", file=sys.stderr)
        for stage, state in job["stages"].items():
            stage_ms.setdefault(stage, []).append(sum(state["speed_ms"].values()))

    burst_start = time.perf_counter()  # all at once: what the worker pools sustain
    ids = [submit(client, path, args.model, args.tasks)[0] for path in images]
    burst = [wait(client, job_id, poll=0.2) for job_id in ids]
    burst_s = time.perf_counter() - burst_start

    summary = {
        "url": args.url,
        "model": args.model,
        "tasks": args.tasks,
        "n": len(images),
        "sequential_submit_to_finished_s": {
            "p50": round(statistics.median(latencies), 3),
            "p95": round(pct(latencies, 0.95), 3),
            "min": round(min(latencies), 3),
            "max": round(max(latencies), 3),
        },
        "worker_stage_ms_median": {stage: round(statistics.median(ms), 1) for stage, ms in stage_ms.items()},
        "burst": {
            "jobs": len(ids),
            "wall_s": round(burst_s, 2),
            "jobs_per_s": round(len(ids) / burst_s, 2),
            "succeeded": sum(j["status"] == "succeeded" for j in burst),
        },
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
