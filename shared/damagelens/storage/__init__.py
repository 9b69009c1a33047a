"""One object-store interface with a local-directory and an S3 implementation."""

from damagelens.storage.base import ObjectNotFound, ObjectStore, StorageError, job_key
from damagelens.storage.factory import create_store

__all__ = ["ObjectNotFound", "ObjectStore", "StorageError", "create_store", "job_key"]
