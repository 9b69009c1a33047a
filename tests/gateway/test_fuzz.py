"""API fuzzing with schemathesis over every operation of the running gateway's OpenAPI document.

A real `damagelens serve` process against a real Redis and S3 endpoint (no workers: submitted
jobs stay queued). Hypothesis drives each operation's case strategy, valid and invalid inputs, with a bounded number of
examples so it fits the default run. Properties checked on every answer: never a 5xx, and
every error in the documented `{"error": {"code", "message"}}` shape.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from damagelens.settings import Settings
from tests.support.servers import free_port

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 25


@pytest.fixture
def gateway_url(s3_settings: Settings, tmp_path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DAMAGELENS_REDIS_URL": s3_settings.redis_url,
        "DAMAGELENS_STORAGE_BACKEND": "s3",
        "DAMAGELENS_S3_ENDPOINT_URL": s3_settings.s3_endpoint_url or "",
        "DAMAGELENS_S3_ACCESS_KEY": s3_settings.s3_access_key or "",
        "DAMAGELENS_S3_SECRET_KEY": s3_settings.s3_secret_key or "",
        "DAMAGELENS_S3_BUCKET": s3_settings.s3_bucket,
        "DAMAGELENS_PORT": str(port),
        "DAMAGELENS_COMPAT_TIMEOUT_SECONDS": "2",
        "DAMAGELENS_FRONTEND_DIR": str(tmp_path / "no-frontend"),
        "DAMAGELENS_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "gateway.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "damagelens.cli", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def test_no_5xx_and_every_error_has_the_documented_shape(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]
    problems: list[str] = []
    for operation, mode in [(op, mode) for op in operations for mode in schemathesis.GenerationMode]:

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:
            response = case.call(base_url=gateway_url, timeout=30)
            where = f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:300]}"
            assert response.status_code < 500, where
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"}, where
                assert isinstance(body["error"].get("code"), str) and isinstance(body["error"].get("message"), str), where

        try:
            fuzz()
        except Unsatisfiable:
            assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label  # nothing to make invalid (no parameters)
        except AssertionError as exc:
            problems.append(str(exc).splitlines()[0])
    print(f"\nfuzzed {len(operations)} operations, valid and invalid inputs, up to {MAX_EXAMPLES} examples each")
    assert not problems, "\n".join(problems)
