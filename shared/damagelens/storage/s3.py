"""S3-protocol store (MinIO, AWS S3, any compatible endpoint) through boto3."""

from __future__ import annotations

import math

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from damagelens.settings import Settings
from damagelens.storage.base import ObjectNotFound, ObjectStore, StorageError, guess_content_type


def s3_client(settings: Settings, endpoint_url: str | None = None):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        config=Config(
            connect_timeout=3,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            signature_version="s3v4",
            s3={"addressing_style": "path"},
        ),
    )


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class S3Store(ObjectStore):
    def __init__(self, settings: Settings):
        self.bucket = settings.s3_bucket
        self.client = s3_client(settings)
        self._public = s3_client(settings, settings.s3_public_url) if settings.s3_public_url else None
        self._expire_days = max(1, math.ceil(settings.job_ttl_seconds / 86_400))
        self._ready = False

    def _ensure_bucket(self) -> None:
        """Create the bucket (and its expiry rule) on first use, so a fresh MinIO just works."""
        if self._ready:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if not _not_found(exc) and exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise StorageError(f"cannot access bucket {self.bucket}: {exc}") from exc
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as create_exc:
                if create_exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise StorageError(f"cannot create bucket {self.bucket}: {create_exc}") from create_exc
            except BotoCoreError as create_exc:  # raised inside the handler above, so the outer clause would not see it
                raise StorageError(f"storage unreachable: {create_exc}") from create_exc
            try:
                self._set_lifecycle()
            except BotoCoreError as rule_exc:
                raise StorageError(f"storage unreachable: {rule_exc}") from rule_exc
        except BotoCoreError as exc:
            raise StorageError(f"storage unreachable: {exc}") from exc
        self._ready = True

    def _set_lifecycle(self) -> None:
        rule = {"ID": "expire-jobs", "Filter": {"Prefix": "jobs/"}, "Status": "Enabled", "Expiration": {"Days": self._expire_days}}
        try:
            self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket, LifecycleConfiguration={"Rules": [rule]})
        except ClientError:
            pass  # some S3-compatible stores lack lifecycle support; the TTL then relies on ops

    def _call(self, fn, **kwargs):
        self._ensure_bucket()
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _not_found(exc):
                raise ObjectNotFound(kwargs.get("Key", "")) from None
            raise StorageError(str(exc)) from exc
        except BotoCoreError as exc:
            raise StorageError(f"storage unreachable: {exc}") from exc

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._call(self.client.put_object, Key=key, Body=data, ContentType=content_type or guess_content_type(key))

    def get(self, key: str) -> bytes:
        body = self._call(self.client.get_object, Key=key)["Body"]
        try:
            return body.read()
        except BotoCoreError as exc:  # the connection can drop mid-body
            raise StorageError(f"reading {key} failed: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self._call(self.client.head_object, Key=key)
            return True
        except ObjectNotFound:
            return False

    def delete_prefix(self, prefix: str) -> int:
        self._ensure_bucket()
        removed = 0
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
                    removed += len(keys)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(str(exc)) from exc
        return removed

    def ping(self) -> None:
        self._ready = False
        self._ensure_bucket()

    def presign(self, key: str, expires_seconds: int = 3600) -> str | None:
        if self._public is None:
            return None
        return self._public.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_seconds)
