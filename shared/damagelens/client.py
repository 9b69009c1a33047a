"""Python client of the DamageLens HTTP API: submit photos, follow them live, fetch results.

    from damagelens.client import DamageLensClient
    with DamageLensClient("http://127.0.0.1:8000", api_key=None) as dl:
        job = dl.wait(dl.submit("car.jpg").id)
        print(job.results.classification.label)

Results are the service's own pydantic schemas. Every submit carries an `Idempotency-Key`, so a
submit retried after a connection error (the request may have arrived, only the answer was lost)
never makes a second job.
"""

from __future__ import annotations

import email.utils
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx

from damagelens.schemas import TERMINAL, InspectionAccepted, InspectionPublic, JobAccepted, JobPublic

PhotoInput = str | Path | bytes | tuple[str, bytes]
RETRY_STATUSES = {429, 503}
# With an Idempotency-Key a request may be repeated safely, so these are retried too: the first
# attempt still running (409 idempotency_in_progress) and a proxy that lost the answer (502, 504).
IDEMPOTENT_RETRY_STATUSES = RETRY_STATUSES | {409, 502, 504}


class DamageLensError(RuntimeError):
    """An error answer of the API: the HTTP status and the `{"error": {"code", "message"}}` body."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _retry_after(value: str | None, default: float) -> float:
    """Seconds from a Retry-After header: a number, or an HTTP date (RFC 9110) as proxies send."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _photo(photo: PhotoInput, index: int) -> tuple[str, bytes]:
    if isinstance(photo, tuple):
        return photo
    if isinstance(photo, bytes):
        return f"photo-{index + 1}.jpg", photo
    path = Path(photo)
    return path.name, path.read_bytes()


class DamageLensClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 4,
        backoff_seconds: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)
        self.retries = retries
        self.backoff = backoff_seconds

    def __enter__(self) -> DamageLensClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ requests

    def _request(self, method: str, url: str, **kwargs) -> httpx.Response:
        """Retries connection errors, 429 and 503 (after Retry-After), and for a request with an
        Idempotency-Key also 409 (first attempt still running), 502 and 504; raises DamageLensError otherwise."""
        idempotent = method == "GET" or "Idempotency-Key" in (kwargs.get("headers") or {})
        retry_on = IDEMPOTENT_RETRY_STATUSES if idempotent else RETRY_STATUSES
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, url, **kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
                continue
            if response.status_code in retry_on and attempt < self.retries:
                time.sleep(min(60.0, _retry_after(response.headers.get("retry-after"), self.backoff * 2**attempt)))
                continue
            if response.status_code >= 400:
                try:
                    error = response.json()["error"]
                    raise DamageLensError(response.status_code, error["code"], error["message"])
                except (ValueError, KeyError, TypeError):
                    raise DamageLensError(response.status_code, "http_error", response.text[:300]) from None
            return response
        raise AssertionError("unreachable")

    @staticmethod
    def _form(**fields: str | None) -> dict[str, str]:
        return {k: v for k, v in fields.items() if v is not None}

    def submit(
        self,
        photo: PhotoInput,
        *,
        model: str | None = None,
        tasks: Sequence[str] | None = None,
        cam_method: str | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobAccepted:
        name, data = _photo(photo, 0)
        form = self._form(model=model, tasks=",".join(tasks) if tasks else None, cam_method=cam_method, webhook_url=webhook_url)
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        response = self._request("POST", "/v1/jobs", files={"image": (name, data)}, data=form, headers=headers)
        return JobAccepted.model_validate(response.json())

    def submit_inspection(
        self,
        photos: Sequence[PhotoInput],
        *,
        model: str | None = None,
        tasks: Sequence[str] | None = None,
        cam_method: str | None = None,
        reference: str | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> InspectionAccepted:
        files = [("images", _photo(p, i)) for i, p in enumerate(photos)]
        form = self._form(
            model=model, tasks=",".join(tasks) if tasks else None, cam_method=cam_method, reference=reference, webhook_url=webhook_url
        )
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        response = self._request("POST", "/v1/inspections", files=files, data=form, headers=headers)
        return InspectionAccepted.model_validate(response.json())

    def job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._request("GET", f"/v1/jobs/{job_id}").json())

    def inspection(self, inspection_id: str) -> InspectionPublic:
        return InspectionPublic.model_validate(self._request("GET", f"/v1/inspections/{inspection_id}").json())

    def cancel(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._request("DELETE", f"/v1/jobs/{job_id}").json())

    # ------------------------------------------------------------------ waiting

    def wait(
        self, resource_id: str, *, kind: Literal["job", "inspection"] = "job", timeout: float = 600.0, poll_seconds: float = 1.0
    ) -> JobPublic | InspectionPublic:
        """Follow the server-sent events until a terminal status; poll if the stream breaks."""
        read = self.job if kind == "job" else self.inspection
        path = f"/v1/{kind}s/{resource_id}/events"
        deadline = time.monotonic() + timeout
        try:
            for document in self._events(path, deadline):
                parsed = (JobPublic if kind == "job" else InspectionPublic).model_validate(document)
                if parsed.status in TERMINAL:
                    return parsed
        except (httpx.HTTPError, ValueError):
            pass  # proxies that cut streams, old gateways: fall back to polling
        except DamageLensError as exc:
            if exc.status not in RETRY_STATUSES and exc.status < 500:
                raise  # 401, 404: polling would answer the same
            # a brief outage (Redis restarting: 503) while opening the stream: polling retries it
        while True:
            current = read(resource_id)
            if current.status in TERMINAL:
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind} {resource_id} still {current.status.value} after {timeout:g}s")
            time.sleep(poll_seconds)

    def _events(self, path: str, deadline: float) -> Iterator[dict]:
        with self.http.stream("GET", path, timeout=httpx.Timeout(30.0, read=60.0)) as response:
            if response.status_code >= 400:
                response.read()
                error = response.json().get("error", {})
                raise DamageLensError(response.status_code, error.get("code", "http_error"), error.get("message", ""))
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield json.loads(line.removeprefix("data: "))
                if time.monotonic() > deadline:
                    return

    # ------------------------------------------------------------------ results

    def download_artifacts(self, job: JobPublic | str, out_dir: str | Path) -> list[Path]:
        """Input and every image result of a job into OUT_DIR, named `<job id>_<artifact>`."""
        if isinstance(job, str):
            job = self.job(job)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        urls = {f"input{Path(job.input.filename).suffix or '.jpg'}": job.input.url}
        if job.results.explanation:
            urls["overlay.jpg"] = job.results.explanation.overlay_url
            urls["heatmap.png"] = job.results.explanation.heatmap_url
        if job.results.detection:
            urls["detection.jpg"] = job.results.detection.image_url
        if job.results.assessment:
            urls["assessment.jpg"] = job.results.assessment.image_url
        written = []
        for name, url in urls.items():
            response = self._request("GET", url, follow_redirects=True)
            path = out / f"{job.id}_{name}"
            path.write_bytes(response.content)
            written.append(path)
        return written

    def report(self, inspection_id: str, format: Literal["html", "pdf"] = "html") -> bytes:
        return self._request("GET", f"/v1/inspections/{inspection_id}/report", params={"format": format}).content
