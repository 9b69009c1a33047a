"""A real stack in processes that tests can break: kill or stop any worker, restart the gateway,
Redis (AOF on) or cut the object store off behind a TCP proxy.

Used by the recovery tests (tests/e2e/test_recovery.py) and the chaos suite (tests/chaos). Every
process runs in its own session, so SIGKILL to its process group kills the whole worker (main
process and pool children), as an OOM kill or a lost node would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.servers import RedisProcess, free_port

REPO = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "failed", "canceled"}
CLI = [sys.executable, "-m", "damagelens.cli"]


class TcpProxy:
    """Forwards a local port to a target; `down()` refuses new connections and cuts open ones,
    which is what clients see when a server goes away. The object store sits behind one, so its
    data survives the outage (moto keeps objects in memory)."""

    def __init__(self, target_port: int, port: int | None = None):
        self.target_port = target_port
        self.port = port or free_port()
        self.response_delay = 0.0  # seconds per forwarded chunk of a response: a slow object store
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns |= {client, upstream}
            for a, b, slow in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(a, b, slow), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        try:
            while data := src.recv(65536):
                if slow and self.response_delay:
                    time.sleep(self.response_delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(src)


@dataclass
class Proc:
    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen | None = None
    starts: int = 0
    expected_down: bool = False  # stopped on purpose: the supervisor leaves it alone
    crashes: int = 0  # exits nobody asked for (restarted by the supervisor)

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class ChaosStack:
    """Gateway, reaper and named workers against one Redis and one S3 endpoint (behind a proxy)."""

    redis: RedisProcess
    s3_proxy: TcpProxy
    env: dict[str, str]
    logs: Path
    port: int = field(default_factory=free_port)
    procs: dict[str, Proc] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    # ------------------------------------------------------------ processes

    def start(self, name: str, args: list[str] | None = None) -> Proc:
        with self._lock:
            proc = self.procs.get(name) or Proc(name, args or [], self.logs / f"{name}.log")
            self.procs[name] = proc
            if proc.alive or self._stopping.is_set():
                return proc  # never two processes under one name, nothing new while tearing down
            proc.starts += 1
            with proc.log.open("a") as log:
                log.write(f"\n=== start {proc.starts}\n")
            proc.popen = subprocess.Popen(
                [*CLI, *proc.args],
                env=self.env,
                stdout=proc.log.open("a"),
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
            proc.expected_down = False
            return proc

    def start_worker(self, name: str, queue: str) -> Proc:
        return self.start(name, ["worker", "--queue", queue])

    def start_gateway(self) -> Proc:
        return self.start("gateway", ["serve"])

    def start_reaper(self) -> Proc:
        return self.start("reaper", ["reaper"])

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group: the worker's main process and its pool children."""
        with self._lock:
            proc = self.procs[name]
            proc.expected_down = True
            if proc.alive:
                with suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)

    def terminate(self, name: str, timeout: float = 120.0) -> int:
        """SIGTERM to the main process only (what Kubernetes and honcho send); its exit code."""
        proc = self.procs[name]
        proc.expected_down = True
        if not proc.alive:
            return proc.popen.returncode
        proc.popen.send_signal(signal.SIGTERM)
        try:
            return proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(name)
            raise

    def supervise(self) -> None:
        """Restart any process that exits on its own, as Kubernetes or compose `restart:` would."""

        def loop() -> None:
            while not self._stopping.is_set():
                with self._lock:
                    crashed = [p for p in self.procs.values() if p.popen is not None and not p.alive and not p.expected_down]
                    for proc in crashed:
                        proc.crashes += 1
                        with proc.log.open("a") as log:
                            log.write(f"\n=== supervisor: exited with {proc.popen.returncode}, restarting\n")
                for proc in crashed:
                    self.start(proc.name)
                self._stopping.wait(0.5)

        threading.Thread(target=loop, name="supervisor", daemon=True).start()

    def crashes(self) -> dict[str, int]:
        return {name: proc.crashes for name, proc in self.procs.items() if proc.crashes}

    def stop_all(self) -> None:
        self._stopping.set()
        for name in list(self.procs):
            with suppress(Exception):
                self.terminate(name, timeout=20)
            with suppress(Exception):
                self.kill(name)

    # ------------------------------------------------------------ readiness

    def wait_warm(self, name: str, timeout: float = 240.0) -> None:
        """The current incarnation of a worker has loaded and warmed its models."""
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive:
                raise RuntimeError(f"{name} exited with {proc.popen.returncode}\n{self.tail_logs()}")
            current = proc.log_text().rsplit("=== start", 1)[-1]
            if '"worker warm"' in current:
                return
            time.sleep(0.3)
        raise RuntimeError(f"{name} not warm after {timeout}s\n{self.tail_logs()}")

    def wait_gateway(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            gateway = self.procs["gateway"]
            if not gateway.alive:
                raise RuntimeError(f"gateway exited with {gateway.popen.returncode}\n{self.tail_logs()}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"gateway not ready after {timeout}s\n{self.tail_logs()}")

    def job(self, job_id: str) -> dict:
        with self.client() as client:
            return client.get(f"/v1/jobs/{job_id}").json()

    def wait_for_job(self, job_id: str, timeout: float = 300.0, poll: float = 0.25) -> dict:
        deadline = time.monotonic() + timeout
        job: dict = {}
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError, ValueError):
                job = self.job(job_id)
                if job.get("status") in TERMINAL:
                    return job
            time.sleep(poll)
        raise AssertionError(f"job {job_id} not finished after {timeout}s: {job}\n{self.tail_logs()}")

    def wait_until(self, job_id: str, predicate, timeout: float = 120.0, poll: float = 0.05) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if predicate(job):
                return job
            time.sleep(poll)
        raise AssertionError(f"job {job_id}: condition not met after {timeout}s: {job}")

    def tail_logs(self, lines: int = 25) -> str:
        out = []
        for proc in self.procs.values():
            out.append(f"--- {proc.name}\n" + "\n".join(proc.log_text().splitlines()[-lines:]))
        return "\n".join(out)


@contextmanager
def chaos_stack(tmp: Path, **env_overrides: str) -> Iterator[ChaosStack]:
    """Redis (AOF on) and moto S3 behind a proxy; processes are started by the caller."""
    from moto.server import ThreadedMotoServer

    redis = RedisProcess(appendonly=True).start()
    s3_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    proxy = TcpProxy(s3_port).up()
    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DAMAGELENS_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "DAMAGELENS_STORAGE_BACKEND": "s3",
        "DAMAGELENS_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
        "DAMAGELENS_S3_ACCESS_KEY": "testing",
        "DAMAGELENS_S3_SECRET_KEY": "testing",
        "DAMAGELENS_S3_BUCKET": f"dl-chaos-{proxy.port}",  # moto keeps buckets per process: one per stack
        "DAMAGELENS_DEFAULT_MODEL": "fast",
        "DAMAGELENS_TORCH_THREADS": "1",
        "DAMAGELENS_FRONTEND_DIR": str(tmp / "no-frontend"),
        "HF_HUB_OFFLINE": "1",
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
        **env_overrides,
    }
    stack = ChaosStack(redis=redis, s3_proxy=proxy, env=env, logs=logs)
    stack.env["DAMAGELENS_PORT"] = str(stack.port)
    try:
        yield stack
    finally:
        stack.stop_all()
        proxy.down()
        moto.stop()
        redis.stop()
