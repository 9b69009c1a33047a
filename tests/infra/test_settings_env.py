"""Settings: .env.example documents every DAMAGELENS_ setting (no more, no less), and the values
that .env.example, compose and the Kubernetes ConfigMaps hand to the processes really parse."""

from __future__ import annotations

import pytest
from infra_helpers import SETTINGS_PREFIX, by_kind, env_example, kustomize, settings_env_names

pytestmark = pytest.mark.infra


def test_env_example_lists_every_setting():
    active, commented = env_example()
    listed = {k for k in (*active, *commented) if k.startswith(SETTINGS_PREFIX)}
    known = settings_env_names()
    assert not known - listed, f"settings missing from .env.example: {sorted(known - listed)}"
    assert not listed - known, f".env.example names unknown settings: {sorted(listed - known)}"
    assert not set(active) & set(commented), "a key is both active and commented"


def _settings_from(monkeypatch, values: dict[str, str]):
    settings_mod = pytest.importorskip("damagelens.settings", reason="damagelens not installed (pip install -e shared)")
    for key in list(__import__("os").environ):
        if key.startswith(SETTINGS_PREFIX):
            monkeypatch.delenv(key)
    for key, value in values.items():
        if key.startswith(SETTINGS_PREFIX):
            monkeypatch.setenv(key, value)
    return settings_mod.Settings()


def test_env_example_values_parse(monkeypatch):
    active, commented = env_example()
    settings = _settings_from(monkeypatch, {**commented, **active})
    assert settings.storage_backend == "s3"
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert settings.cors_origins == []
    assert settings.task_time_limit_seconds < settings.visibility_timeout_seconds


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_configmap_values_parse(monkeypatch, overlay):
    docs = kustomize(overlay)
    values = dict(next(iter(by_kind(docs, "ConfigMap").values()))["data"])
    settings = _settings_from(monkeypatch, values)
    assert settings.host == "0.0.0.0"
    assert settings.device == {"dev": "cpu", "gpu": "cuda"}[overlay]
