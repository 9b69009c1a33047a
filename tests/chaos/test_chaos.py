"""The chaos suite: bursts of real jobs through a real stack while it is broken in every way the
issue lists; every accepted job must finish, nothing may be lost, stuck, duplicated or counted twice.

`pytest` (and `make test`) runs the SHORT profile: one burst of a few tens of jobs that meets
every fault once (worker SIGKILL + restart, object store down, Redis restart with AOF, gateway
restart, a poison photo). `make chaos` (CHAOS_PROFILE=full) runs each scenario on its own
stack with a large burst (CHAOS_JOBS, default 1,000) and writes one JSON line per scenario to
CHAOS_REPORT (default var/chaos/report.jsonl) for docs/reliability.md.

The poison photo: no accepted photo makes our decode or model code raise (the normalisation
handles every mode and shape tried), so the poison is a photo that kills every worker that
touches it: the suite SIGKILLs whichever worker runs its stage. The attempt limit must fail that
stage (`worker_lost`) and nothing else.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from damagelens.jobs.store import RUNNING_PREFIX
from tests.chaos.harness import Burst, Fault, ScenarioReport, write_report
from tests.support import images
from tests.support.stack import REPO, ChaosStack, chaos_stack

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow]
FULL = os.environ.get("CHAOS_PROFILE") == "full"
JOBS = int(os.environ.get("CHAOS_JOBS", "1000"))
REPORT = Path(os.environ.get("CHAOS_REPORT", REPO / "var" / "chaos" / "report.jsonl"))
WORKERS = {"classify": "classify", "explain": "explain", "detect": "detect", "assess": "assess", "explain-2": "explain"}


@pytest.fixture(scope="module")
def photos(data_dir: Path) -> list[bytes]:
    """Real photos when ../shared/data has them (a few per class), generated ones otherwise."""
    root = data_dir / "car-damage-6class"
    found = sorted(root.glob("*/*.jpg"))[::40][:12] if root.is_dir() else []
    return [p.read_bytes() for p in found] or [images.jpeg(640, 480, seed=s) for s in range(6)]


def _start(stack: ChaosStack) -> ChaosStack:
    stack.start_gateway()
    stack.start_reaper()
    for name, queue in WORKERS.items():
        stack.start_worker(name, queue)
    stack.wait_gateway()
    for name in WORKERS:
        stack.wait_warm(name)
    stack.supervise()
    return stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ChaosStack]:
    with chaos_stack(tmp_path) as running:
        yield _start(running)


# ---------------------------------------------------------------- faults


def kill_random_worker(stack: ChaosStack, rng: random.Random) -> Callable[[], None]:
    def action() -> None:
        victim = rng.choice([name for name in WORKERS if stack.procs[name].alive])
        stack.kill(victim)
        stack.start(victim)  # the supervisor restarts it; the reaper does not wait for that

    return action


def object_store_down(stack: ChaosStack, seconds: float) -> Callable[[], None]:
    def action() -> None:
        stack.s3_proxy.down()
        time.sleep(seconds)
        stack.s3_proxy.up()

    return action


def redis_restart(stack: ChaosStack, seconds: float) -> Callable[[], None]:
    def action() -> None:
        stack.redis.stop()
        time.sleep(seconds)
        stack.redis.start()

    return action


def gateway_restart(stack: ChaosStack) -> Callable[[], None]:
    def action() -> None:
        stack.terminate("gateway", timeout=60)
        stack.start_gateway()
        stack.wait_gateway()

    return action


def poison_watcher(stack: ChaosStack, burst: Burst, stage: str = "explain") -> Callable[[], None]:
    """Submit the poison photo and SIGKILL every worker that starts its stage, until it is settled."""

    def watch() -> None:
        # 12 MP, so its stage runs long enough (≈ 0.1-0.2 s since the Grad-CAM speed-up) to be caught
        # by a 10 ms poll every time; a small photo could finish between two polls and "survive".
        job_id = burst.submit(images.jpeg(4000, 3000, seed=666), role="poison", tasks=stage)
        client = redis.Redis.from_url(stack.env["DAMAGELENS_REDIS_URL"], decode_responses=True, socket_timeout=2)
        deadline = time.monotonic() + 600
        while job_id and time.monotonic() < deadline:
            try:
                held = client.hget(RUNNING_PREFIX + stage, job_id)
                state = client.hget(f"damagelens:job:{job_id}", f"stage:{stage}") or ""
            except redis.RedisError:
                time.sleep(0.5)
                continue
            if '"failed"' in state or '"succeeded"' in state:
                return
            if held:
                pid = held.split('"worker": "', 1)[1].split('"', 1)[0].rsplit("/", 1)[1]
                victim = next((n for n, p in stack.procs.items() if p.alive and str(p.popen.pid) == pid), None)
                if victim:
                    stack.kill(victim)
                    stack.start(victim)
            time.sleep(0.01)

    return watch


# ---------------------------------------------------------------- checks


def settle_and_check(burst: Burst, stack: ChaosStack, timeout: float) -> ScenarioReport:
    final = burst.settle(timeout)
    report = burst.account(final, f"http://127.0.0.1:{stack.s3_proxy.target_port}", stack.env["DAMAGELENS_S3_BUCKET"])
    report.notes += [f"{name} exited on its own {n}x (restarted by the supervisor)" for name, n in stack.crashes().items()]
    write_report(report, REPORT)
    poison = [job_id for job_id, role in burst.special.items() if role == "poison"]
    for job_id in poison:
        job = final[job_id]
        assert job["status"] == "failed" and job["error"]["code"] == "worker_lost", job
    assert report.lost == 0 and report.stuck == 0, report.summary()
    assert report.duplicated_artifacts == 0 and report.double_counted_stages == 0, report.summary()
    assert report.accepted == report.submitted, f"submissions given up: {report.summary()}"
    return report


# ---------------------------------------------------------------- the short profile (default run)


@pytest.mark.skipif(FULL, reason="CHAOS_PROFILE=full runs the scenarios one by one")
def test_short_burst_meets_every_fault(stack: ChaosStack, photos: list[bytes]) -> None:
    rng = random.Random(12)
    burst = Burst(stack, photos, "short: every fault once")
    faults = [
        Fault("worker SIGKILL + restart", 3, kill_random_worker(stack, rng)),
        Fault("object store down 8 s", 8, object_store_down(stack, 8)),
        Fault("redis restart (AOF)", 20, redis_restart(stack, 3)),
        Fault("gateway restart", 26, gateway_restart(stack)),
    ]
    burst.run(n_jobs=20, rate_per_second=0.8, faults=faults, extra=poison_watcher(stack, burst))
    report = settle_and_check(burst, stack, timeout=300)
    assert report.failed == {"explain:worker_lost": 1}, report.summary()  # only the poison photo's stage
    assert report.succeeded == report.accepted - 1, report.summary()
    assert report.orphan_objects <= report.rejected_503, report.summary()  # at most the upload of a refused submit


# ---------------------------------------------------------------- the full profile (`make chaos`)

full_only = pytest.mark.skipif(not FULL, reason="the full chaos run: make chaos (CHAOS_PROFILE=full)")


@full_only
def test_burst_with_a_worker_sigkill_every_10s(stack: ChaosStack, photos: list[bytes]) -> None:
    rng = random.Random(1)
    burst = Burst(stack, photos, f"burst of {JOBS}, worker SIGKILL every 10 s")
    rate = 4.0
    # Every 10 s while the burst is being submitted and 30 s beyond, so each kill meets a backlog (the
    # workers drain ~4 jobs/s here: kills after that would hit idle workers and measure nothing).
    kills = [Fault(f"SIGKILL #{i + 1}", 5 + 10 * i, kill_random_worker(stack, rng)) for i in range(int(JOBS / rate / 10) + 3)]
    burst.run(n_jobs=JOBS, rate_per_second=rate, faults=kills)
    report = settle_and_check(burst, stack, timeout=JOBS * 3.0)
    # A stage killed on every one of its deliveries fails by the attempt limit; nothing else may fail.
    assert set(report.failed) <= {f"{s}:worker_lost" for s in ("classify", "explain", "detect", "assess")}, report.summary()


@full_only
def test_redis_restart_mid_burst(stack: ChaosStack, photos: list[bytes]) -> None:
    burst = Burst(stack, photos, f"burst of {JOBS // 4}, Redis restarted (AOF, 5 s down)")
    burst.run(n_jobs=JOBS // 4, rate_per_second=4.0, faults=[Fault("redis restart", 10, redis_restart(stack, 5))])
    report = settle_and_check(burst, stack, timeout=JOBS * 1.0)
    assert report.rejected_503 > 0, "no submit met the outage"
    assert report.failed == {}, report.summary()


@full_only
def test_object_store_down_30s_mid_burst(stack: ChaosStack, photos: list[bytes]) -> None:
    burst = Burst(stack, photos, f"burst of {JOBS // 4}, object store down 30 s")
    burst.run(n_jobs=JOBS // 4, rate_per_second=4.0, faults=[Fault("object store down 30 s", 10, object_store_down(stack, 30))])
    report = settle_and_check(burst, stack, timeout=JOBS * 1.0)
    assert report.failed == {}, report.summary()
    assert report.orphan_objects <= report.rejected_503, report.summary()  # at most the upload of a refused submit


@full_only
def test_gateway_restart_mid_burst(stack: ChaosStack, photos: list[bytes]) -> None:
    burst = Burst(stack, photos, f"burst of {JOBS // 4}, gateway restarted")
    burst.run(n_jobs=JOBS // 4, rate_per_second=4.0, faults=[Fault("gateway restart", 10, gateway_restart(stack))])
    report = settle_and_check(burst, stack, timeout=JOBS * 1.0)
    assert report.failed == {}, report.summary()


@full_only
def test_poison_photo_fails_only_its_own_stage(stack: ChaosStack, photos: list[bytes]) -> None:
    burst = Burst(stack, photos, f"burst of {JOBS // 10} with a poison photo")
    burst.run(n_jobs=JOBS // 10, rate_per_second=2.0, faults=[], extra=poison_watcher(stack, burst))
    report = settle_and_check(burst, stack, timeout=JOBS * 1.0)
    assert report.failed == {"explain:worker_lost": 1}, report.summary()


@full_only
def test_object_store_outage_longer_than_the_retry_budget_fails_with_storage_unavailable(tmp_path: Path, photos: list[bytes]) -> None:
    with chaos_stack(tmp_path, DAMAGELENS_TASK_MAX_RETRIES="2") as stack:
        _start(stack)
        burst = Burst(stack, photos, "object store down longer than a retry budget of 2 (1.5-3 s)", tasks="explain")
        stack.s3_proxy.response_delay = 0.5  # slow reads: the outage starts while the stages fetch their input
        for photo in photos[:4]:
            burst.submit(photo)
        stack.s3_proxy.down()
        stack.s3_proxy.response_delay = 0.0
        try:
            final = burst.settle(timeout=40)
        finally:
            stack.s3_proxy.up()
        report = burst.account(final, f"http://127.0.0.1:{stack.s3_proxy.target_port}", stack.env["DAMAGELENS_S3_BUCKET"])
        write_report(report, REPORT)
        assert report.stuck == 0 and report.lost == 0, report.summary()  # every stage ended within the outage: no hang
        assert report.failed and set(report.failed) == {"explain:storage_unavailable"}, report.summary()
