"""Drive a real stack from outside, as clients do, while faults are injected; then account for
every job and every stored object.

A burst submits jobs at a steady rate from client threads that behave like a careful client:
a 503 is retried after its `Retry-After`, a refused or dropped connection after a short pause.
Faults run on their own timeline. Afterwards every accepted job must reach a terminal state
(else it is `stuck`; a 404 is `lost`), each object of a job must be an artifact that job should
have (else it is a duplicate), objects of no job at all are counted as orphans, and the cluster
counters must count each finished stage exactly once.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import boto3
import httpx
import redis

from damagelens.jobs.store import RUNNING_PREFIX
from tests.support.stack import TERMINAL, ChaosStack

STAGE_ARTIFACTS = {"classify": set(), "explain": {"overlay.jpg", "heatmap.png"}, "detect": {"detection.jpg"}, "assess": {"assessment.jpg"}}
SUBMIT_GIVE_UP_SECONDS = 90.0


@dataclass
class Fault:
    """Something done to the stack at `at` seconds into the burst. `action` returns when the fault
    is over (e.g. after the outage); recovery is measured from then."""

    name: str
    at: float
    action: Callable[[], None]


@dataclass
class ScenarioReport:
    scenario: str
    submitted: int = 0
    accepted: int = 0
    succeeded: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    stuck: int = 0
    duplicated_artifacts: int = 0
    orphan_objects: int = 0  # uploads of submits that were refused (503) and could not be cleaned up
    double_counted_stages: int = 0
    unacknowledged_jobs: int = 0
    recovery_seconds: list[float] = field(default_factory=list)
    submit_latency_ms: list[float] = field(default_factory=list)
    rejected_503: int = 0
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

        data = asdict(self)
        data.pop("recovery_seconds")
        data.pop("submit_latency_ms")
        data["recovery_s_p50"] = round(statistics.median(self.recovery_seconds), 1) if self.recovery_seconds else None
        data["recovery_s_max"] = round(max(self.recovery_seconds), 1) if self.recovery_seconds else None
        data["submit_ms_p50"] = pct(self.submit_latency_ms, 0.5)
        data["submit_ms_p99"] = pct(self.submit_latency_ms, 0.99)
        return data


class Burst:
    def __init__(self, stack: ChaosStack, photos: list[bytes], scenario: str, tasks: str = "classify,explain,detect,assess"):
        self.stack, self.photos, self.tasks = stack, photos, tasks
        self.report = ScenarioReport(scenario)
        self.accepted: dict[str, float] = {}  # job id -> accepted at (wall clock)
        self.special: dict[str, str] = {}  # job id -> role (e.g. poison)
        self._lock = threading.Lock()
        self.fault_windows: list[tuple[str, float, float, dict[str, set[str]]]] = []
        self.started = 0.0

    # ------------------------------------------------------------ submitting

    def submit(self, data: bytes, role: str | None = None, tasks: str | None = None) -> str | None:
        """One client submission, retried through outages; the job id once accepted (or None)."""
        with self._lock:
            self.report.submitted += 1
        give_up = time.monotonic() + SUBMIT_GIVE_UP_SECONDS
        with httpx.Client(base_url=self.stack.base_url, timeout=30) as client:
            while time.monotonic() < give_up:
                started = time.perf_counter()
                try:
                    response = client.post(
                        "/v1/jobs", files={"image": ("car.jpg", data, "image/jpeg")}, data={"model": "fast", "tasks": tasks or self.tasks}
                    )
                except httpx.HTTPError:
                    time.sleep(0.5)  # gateway restarting: connection refused or dropped
                    continue
                if response.status_code == 202:
                    job_id = response.json()["id"]
                    with self._lock:
                        self.report.accepted += 1
                        self.report.submit_latency_ms.append((time.perf_counter() - started) * 1000)
                        self.accepted[job_id] = time.time()
                        if role:
                            self.special[job_id] = role
                    return job_id
                if response.status_code == 503:
                    assert "Retry-After" in response.headers, "a 503 without Retry-After"
                    assert response.json()["error"]["code"] == "service_unavailable"
                    with self._lock:
                        self.report.rejected_503 += 1
                    time.sleep(min(float(response.headers["Retry-After"]), 2.0))
                    continue
                raise AssertionError(f"unexpected answer to a valid submit: {response.status_code} {response.text[:300]}")
        return None

    def run(self, n_jobs: int, rate_per_second: float, faults: list[Fault], extra: Callable[[], None] | None = None) -> None:
        self.started = time.monotonic()
        wall0 = time.time()
        fault_threads = [threading.Thread(target=self._fault, args=(fault,), daemon=True) for fault in faults]
        for thread in fault_threads:
            thread.start()
        if extra is not None:
            threading.Thread(target=extra, daemon=True).start()
        submitters: list[threading.Thread] = []
        for i in range(n_jobs):
            due = self.started + i / rate_per_second
            time.sleep(max(0.0, due - time.monotonic()))
            thread = threading.Thread(target=self.submit, args=(self.photos[i % len(self.photos)],), daemon=True)
            thread.start()
            submitters.append(thread)
            submitters = [t for t in submitters if t.is_alive()]
        for thread in submitters:
            thread.join(SUBMIT_GIVE_UP_SECONDS + 30)
        for thread, fault in zip(fault_threads, faults, strict=True):
            thread.join(max(0.0, self.started + fault.at - time.monotonic()) + 300)
        self.report.wall_seconds = time.time() - wall0

    def _fault(self, fault: Fault) -> None:
        time.sleep(max(0.0, self.started + fault.at - time.monotonic()))
        running = self.running_stages()
        began = time.time()
        fault.action()
        self.fault_windows.append((fault.name, began, time.time(), running))

    def running_stages(self) -> dict[str, set[str]]:
        """stage -> job ids running now (from the running-stages index)."""
        client = redis.Redis.from_url(self.stack.env["DAMAGELENS_REDIS_URL"], decode_responses=True, socket_timeout=5)
        try:
            return {stage: set(client.hkeys(RUNNING_PREFIX + stage)) for stage in STAGE_ARTIFACTS}
        except redis.RedisError:
            return {}

    # ------------------------------------------------------------ accounting

    def settle(self, timeout: float) -> dict[str, dict]:
        """Wait until every accepted job is terminal (or the deadline); the final job documents."""
        deadline = time.monotonic() + timeout
        final: dict[str, dict] = {}
        pending = set(self.accepted)
        with httpx.Client(base_url=self.stack.base_url, timeout=30) as client:
            while pending and time.monotonic() < deadline:
                for job_id in list(pending):
                    try:
                        response = client.get(f"/v1/jobs/{job_id}")
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 404:
                        final[job_id] = {"status": "lost"}
                        pending.discard(job_id)
                    elif response.status_code == 200 and response.json()["status"] in TERMINAL:
                        final[job_id] = response.json()
                        pending.discard(job_id)
                if pending:
                    time.sleep(1.0)
            for job_id in pending:
                final[job_id] = client.get(f"/v1/jobs/{job_id}").json()
        return final

    def account(self, final: dict[str, dict], s3_url: str, bucket: str) -> ScenarioReport:
        report = self.report
        failed: Counter[str] = Counter()
        finished_at: dict[tuple[str, str], float] = {}
        for job_id, job in final.items():
            status = job.get("status")
            if status == "lost":
                report.lost += 1
            elif status not in TERMINAL:
                report.stuck += 1
            elif status == "succeeded":
                report.succeeded += 1
            else:
                for stage, state in job["stages"].items():
                    if state["status"] == "failed":
                        failed[f"{stage}:{state['error']['code']}"] += 1
            for stage, state in job.get("stages", {}).items():
                if state.get("finished_at"):
                    finished_at[(job_id, stage)] = datetime.fromisoformat(state["finished_at"]).timestamp()
        report.failed = dict(failed)

        for name, began, ended, running in self.fault_windows:
            ends = [finished_at.get((job_id, stage)) for stage, ids in running.items() for job_id in ids]
            ends = [e for e in ends if e is not None]
            held = sum(map(len, running.values()))
            if held:  # a fault that met no running stage has nothing to recover; it would pull the p50 to 0
                if ends:
                    recovery = max(0.0, max(ends) - ended)
                    report.recovery_seconds.append(recovery)
                    outcome = f"recovered in {recovery:.1f}s"
                else:
                    outcome = "none of them finished"  # also counted as stuck or failed below
                report.notes.append(f"{name}: {ended - began:.1f}s long, {held} stages running at its start, {outcome}")
            else:
                report.notes.append(f"{name}: {ended - began:.1f}s long, no stage running at its start")

        # Storage: every object must be an artifact its job should have.
        s3 = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        store = redis.Redis.from_url(self.stack.env["DAMAGELENS_REDIS_URL"], decode_responses=True)
        known = {key.rsplit(":", 1)[1] for key in store.scan_iter("damagelens:job:*")}
        report.unacknowledged_jobs = len(known - set(self.accepted))
        by_job: dict[str, list[str]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="jobs/"):
            for obj in page.get("Contents", []):
                _, job_id, name = obj["Key"].split("/", 2)
                by_job.setdefault(job_id, []).append(name)
        for job_id, names in by_job.items():
            job = final.get(job_id)
            if job is None:
                report.orphan_objects += 0 if job_id in known else len(names)  # objects of no job at all
                continue
            allowed = {n for n in names if n.startswith("input.")}
            for stage in job.get("stages", {}):
                allowed |= STAGE_ARTIFACTS[stage]
            report.duplicated_artifacts += len([n for n in names if n not in allowed]) + (len(names) - len(set(names)))

        # Counters: each finished stage counted once, however often it was delivered.
        stats = store.hgetall("damagelens:stats")
        counted = sum(int(v) for k, v in stats.items() if k.startswith("stage:") and k.count(":") == 2)
        terminal = sum(
            1 for job in final.values() for state in job.get("stages", {}).values() if state["status"] in ("succeeded", "failed")
        )
        report.double_counted_stages = max(0, counted - terminal - self._unaccepted_terminal(store, known))
        return report

    def _unaccepted_terminal(self, store: redis.Redis, known: set[str]) -> int:
        """Stages of jobs the gateway created but never confirmed to the client (counted by the cluster too)."""
        extra = 0
        for job_id in known - set(self.accepted):
            for field_name, raw in store.hgetall(f"damagelens:job:{job_id}").items():
                if field_name.startswith("stage:") and json.loads(raw)["status"] in ("succeeded", "failed"):
                    extra += 1
        return extra


def write_report(report: ScenarioReport, path: Path | None) -> None:
    summary = report.summary()
    print("\n" + json.dumps(summary))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(json.dumps(summary) + "\n")
