"""Fixtures shared by the worker tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from damagelens.settings import get_settings
from damagelens_worker import runner


@pytest.fixture
def env(redis_url: str, tmp_path: Path, monkeypatch) -> Iterator[None]:
    """The runner against a real Redis and a local store in tmp_path, with its cached clients reset."""
    monkeypatch.setenv("DAMAGELENS_REDIS_URL", redis_url)
    monkeypatch.setenv("DAMAGELENS_STORAGE_BACKEND", "local")
    monkeypatch.setenv("DAMAGELENS_STORAGE_DIR", str(tmp_path / "store"))
    get_settings.cache_clear()
    runner.job_store.cache_clear()
    runner.object_store.cache_clear()
    yield
    runner.job_store.cache_clear()
    runner.object_store.cache_clear()
