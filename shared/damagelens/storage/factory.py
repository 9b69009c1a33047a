"""Pick the store from settings."""

from __future__ import annotations

from damagelens.settings import Settings
from damagelens.storage.base import ObjectStore


def create_store(settings: Settings) -> ObjectStore:
    if settings.storage_backend == "s3":
        from damagelens.storage.s3 import S3Store

        return S3Store(settings)
    from damagelens.storage.local import LocalStore

    return LocalStore(settings.storage_dir)
