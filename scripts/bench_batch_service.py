#!/usr/bin/env python
"""Does micro-batching help at the service level? A sweep over batch size B and wait T on one real stack.

    python scripts/bench_batch_service.py --configs 1:0 4:5 4:20 8:5 8:20 --burst 24 --single 5

Starts Redis, moto S3 (behind the tests' TCP proxy), the gateway and one worker per stage queue
(tests/support/stack.py, the chaos suite's stack), then for each `B:T` restarts the stage workers
with `DAMAGELENS_BATCH_SIZE=B`, `DAMAGELENS_BATCH_WAIT_MS=T` and measures, through the HTTP API with
real photos: submit → finished latency of `--single` jobs one after another (p50), and the
throughput of a burst of `--burst` jobs submitted at once (jobs/s, first submit → last finished),
plus the mean batch size the stages reported (`stages.<stage>.batch_size`). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

from damagelens.settings import get_settings  # noqa: E402
from tests.support.stack import chaos_stack  # noqa: E402

TERMINAL = {"succeeded", "failed", "canceled"}


def photos(n: int) -> list[bytes]:
    found = sorted((get_settings().data_dir / "car-damage-6class").rglob("*.jpg"))
    if not found:
        sys.exit(f"no photos under {get_settings().data_dir}/car-damage-6class")
    step = max(1, len(found) // n)
    return [p.read_bytes() for p in found[::step][:n]]


def run_job(stack, data: bytes, tasks: str, model: str) -> tuple[float, dict]:
    with stack.client() as client:
        start = time.perf_counter()
        response = client.post("/v1/jobs", files={"image": ("car.jpg", data)}, data={"model": model, "tasks": tasks})
        response.raise_for_status()
        job_id = response.json()["id"]
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in TERMINAL:
                return time.perf_counter() - start, job
            time.sleep(0.02)


def batch_sizes(job: dict) -> list[float]:
    return [s.get("batch_size") or 1 for s in job.get("stages", {}).values() if isinstance(s, dict)]


def first_stage_wait_ms(job: dict, stage: str) -> float:
    """Created → the first stage started: the broker hop plus, when batching, the wait for the batch to fill."""
    created = datetime.fromisoformat(job["created_at"])
    started = datetime.fromisoformat(job["stages"][stage]["started_at"])
    return (started - created).total_seconds() * 1000


def measure(stack, images: list[bytes], burst: int, single: int, tasks: str, model: str) -> dict:
    latencies, waits = [], []
    for data in images[:single]:
        seconds, job = run_job(stack, data, tasks, model)
        assert job["status"] == "succeeded", job
        latencies.append(seconds)
        waits.append(first_stage_wait_ms(job, tasks.split(",")[0]))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=burst) as pool:
        done = list(pool.map(lambda d: run_job(stack, d, tasks, model), (images[i % len(images)] for i in range(burst))))
    wall = time.perf_counter() - started
    failed = sum(job["status"] != "succeeded" for _, job in done)
    sizes = [b for _, job in done for b in batch_sizes(job)]
    return {
        "single_p50_s": round(statistics.median(latencies), 3),
        "single_first_wait_ms": round(statistics.median(waits), 1),
        "burst_jobs_per_s": round(burst / wall, 2),
        "burst_p50_s": round(statistics.median(s for s, _ in done), 3),
        "mean_batch": round(statistics.mean(sizes), 2) if sizes else None,
        "failed": failed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["1:0", "4:5", "4:20", "8:5", "8:20"], help="B:T_ms pairs")
    ap.add_argument("--burst", type=int, default=24)
    ap.add_argument("--single", type=int, default=5)
    ap.add_argument("--tasks", default="classify,explain,detect")
    ap.add_argument("--model", default="fast")
    args = ap.parse_args()
    images = photos(max(args.burst, args.single))
    queues = args.tasks.split(",")
    rows: list[tuple[str, dict]] = []  # a config may repeat (e.g. 1:0 first and last, to see drift in the load)
    with tempfile.TemporaryDirectory(prefix="dl-batch-bench-") as tmp, chaos_stack(Path(tmp)) as stack:
        stack.start_gateway()
        stack.wait_gateway()
        for config in args.configs:
            size, wait_ms = config.split(":")
            stack.env["DAMAGELENS_BATCH_SIZE"] = size
            stack.env["DAMAGELENS_BATCH_WAIT_MS"] = str(max(1, int(wait_ms)))
            for queue in queues:
                if queue in stack.procs:
                    stack.terminate(queue)
                stack.procs.pop(queue, None)  # a fresh log, so "worker warm" is this incarnation's
                stack.start_worker(queue, queue)
            for queue in queues:
                stack.wait_warm(queue)
            run_job(stack, images[0], args.tasks, args.model)  # first request of each worker
            row = measure(stack, images, args.burst, args.single, args.tasks, args.model)
            row["load1"] = round(os.getloadavg()[0], 2)
            rows.append((config, row))
            print(config, json.dumps(row), flush=True)
    print(f"\ntasks={args.tasks} model={args.model} burst={args.burst} single={args.single} cores={os.cpu_count()}")
    print("| B:T ms | single p50 s | single: created → first stage started, ms | burst jobs/s | burst p50 s | mean batch | failed | load |")
    print("|---|---|---|---|---|---|---|---|")
    for config, r in rows:
        print(
            f"| {config} | {r['single_p50_s']} | {r['single_first_wait_ms']} | {r['burst_jobs_per_s']} | {r['burst_p50_s']} "
            f"| {r['mean_batch']} | {r['failed']} | {r['load1']} |"
        )


if __name__ == "__main__":
    main()
