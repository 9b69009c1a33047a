"""Both object stores against the same contract; S3 over real HTTP (MinIO or moto)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from damagelens.settings import Settings
from damagelens.storage import ObjectNotFound, ObjectStore, StorageError, create_store
from damagelens.storage.local import LocalStore


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return create_store(request.getfixturevalue("s3_settings"))


def test_put_get_exists_delete(store: ObjectStore) -> None:
    store.put("jobs/j1/input.jpg", b"abc", "image/jpeg")
    store.put("jobs/j1/overlay.jpg", b"def")
    store.put("jobs/j2/input.jpg", b"ghi")
    assert store.get("jobs/j1/input.jpg") == b"abc"
    assert store.exists("jobs/j1/overlay.jpg")
    store.put("jobs/j1/overlay.jpg", b"new")  # redelivery overwrites
    assert store.get("jobs/j1/overlay.jpg") == b"new"
    assert store.delete_prefix("jobs/j1/") == 2
    assert not store.exists("jobs/j1/input.jpg")
    assert store.get("jobs/j2/input.jpg") == b"ghi"
    with pytest.raises(ObjectNotFound):
        store.get("jobs/j1/input.jpg")
    store.ping()


def test_local_store_refuses_keys_outside_its_root(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        LocalStore(tmp_path).put("../escape", b"x")


def test_local_store_purges_expired_jobs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("jobs/old/input.jpg", b"x")
    store.put("jobs/new/input.jpg", b"x")
    past = time.time() - 7200
    os.utime(tmp_path / "jobs" / "old", (past, past))
    assert store.purge_expired(3600) == 1
    assert not store.exists("jobs/old/input.jpg") and store.exists("jobs/new/input.jpg")


@pytest.mark.integration
def test_s3_bucket_is_created_with_an_expiry_rule(s3_settings: Settings) -> None:
    store = create_store(s3_settings)
    store.ping()
    rules = store.client.get_bucket_lifecycle_configuration(Bucket=s3_settings.s3_bucket)["Rules"]
    assert rules[0]["Expiration"]["Days"] == 1


@pytest.mark.integration
def test_s3_unreachable_is_a_storage_error(tmp_path: Path) -> None:
    settings = Settings(storage_backend="s3", s3_endpoint_url="http://127.0.0.1:9", s3_access_key="x", s3_secret_key="y")
    with pytest.raises(StorageError):
        create_store(settings).ping()
