from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from damagelens.settings import Settings
from damagelens_gateway.app import create_app


@pytest.fixture
def client(s3_settings: Settings) -> Iterator[TestClient]:
    """The real app against a real Redis and S3 endpoint; no worker runs, so jobs stay queued."""
    with TestClient(create_app(s3_settings)) as test_client:
        yield test_client


@pytest.fixture
def app_state(client: TestClient):
    return client.app.state
