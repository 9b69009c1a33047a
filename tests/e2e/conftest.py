"""The real stack in processes: redis-server, an S3 endpoint, `damagelens serve`, one worker per queue."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from damagelens.schemas import Stage
from tests.support.servers import RedisProcess, S3Endpoint, free_port

REPO = Path(__file__).resolve().parents[2]
QUEUES = (*(stage.value for stage in Stage), "notify")  # one worker per Stage queue; notify: webhook deliveries
WEBHOOK_SECRET = "whsec_ZTJlLXN0YWNrLXdlYmhvb2stc2VjcmV0"
TERMINAL = {"succeeded", "failed", "canceled"}


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    logs: Path
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    gateway: subprocess.Popen | None = None

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def wait_for_job(self, job_id: str, timeout: float = 300.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in TERMINAL:
                    return job
                time.sleep(0.25)
        raise AssertionError(f"job {job_id} not finished after {timeout}s: {job}\n{self.tail_logs()}")

    def tail_logs(self, lines: int = 30) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            out.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def stack(redis_server: RedisProcess, s3_endpoint: S3Endpoint, tmp_path_factory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("stack-logs")
    port = free_port()
    env = {
        **os.environ,
        "DAMAGELENS_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/2",
        "DAMAGELENS_STORAGE_BACKEND": "s3",
        "DAMAGELENS_S3_ENDPOINT_URL": s3_endpoint.url,
        "DAMAGELENS_S3_ACCESS_KEY": s3_endpoint.access_key,
        "DAMAGELENS_S3_SECRET_KEY": s3_endpoint.secret_key,
        "DAMAGELENS_S3_BUCKET": f"dl-e2e-{port}",
        "DAMAGELENS_PORT": str(port),
        "DAMAGELENS_TORCH_THREADS": "1",
        "DAMAGELENS_COMPAT_TIMEOUT_SECONDS": "180",
        # Webhooks to receivers the tests start on 127.0.0.1, retried quickly.
        "DAMAGELENS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DAMAGELENS_WEBHOOK_ALLOW_HTTP": "true",
        "DAMAGELENS_WEBHOOK_ALLOWLIST": '["127.0.0.1/32"]',
        "DAMAGELENS_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
        "HF_HUB_OFFLINE": "1",
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
    }
    cli = [sys.executable, "-m", "damagelens.cli"]
    stack = Stack(base_url=f"http://127.0.0.1:{port}", env=env, logs=logs)
    for queue in QUEUES:
        stack.workers[queue] = _spawn([*cli, "worker", "--queue", queue], env, logs / f"worker-{queue}.log")
    stack.gateway = _spawn([*cli, "serve"], env, logs / "gateway.log")
    try:
        _wait_ready(stack)
        yield stack
    finally:
        for proc in [stack.gateway, *stack.workers.values()]:
            _stop(proc)


def _wait_ready(stack: Stack, timeout: float = 240.0) -> None:
    """Gateway ready, and each worker warm (its child logged `worker warm`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in [("gateway", stack.gateway), *stack.workers.items()]:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{stack.tail_logs()}")
        try:
            ready = httpx.get(f"{stack.base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            ready = False
        warm = all('"worker warm"' in (stack.logs / f"worker-{q}.log").read_text(errors="replace") for q in QUEUES)
        if ready and warm:
            return
        time.sleep(0.5)
    raise RuntimeError(f"stack not ready after {timeout}s\n{stack.tail_logs()}")
