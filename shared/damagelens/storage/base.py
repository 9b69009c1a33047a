"""The object-store contract: the only storage calls services may make."""

from __future__ import annotations

import mimetypes
from abc import ABC, abstractmethod


class StorageError(RuntimeError):
    """The store could not be reached or refused a request (transient: callers may retry)."""


class ObjectNotFound(KeyError):
    """The key does not exist (not transient)."""


def job_key(job_id: str, name: str) -> str:
    """Deterministic per-job keys, so a redelivered stage overwrites instead of duplicating."""
    return f"jobs/{job_id}/{name}"


def guess_content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class ObjectStore(ABC):
    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int: ...

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageError when the store cannot serve requests."""

    def presign(self, key: str, expires_seconds: int = 3600) -> str | None:
        """A direct URL for clients, or None where the store has none (local directory)."""
        return None

    def purge_expired(self, max_age_seconds: int) -> int:
        """Delete job objects older than the job TTL; S3 does this with a lifecycle rule instead."""
        return 0
