"""Shared fixtures: offline environment, real Redis, a real S3-protocol endpoint, settings, photos."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

from damagelens.settings import Settings, get_settings
from tests.support.servers import RedisProcess, S3Endpoint, start_s3

REPO = Path(__file__).resolve().parents[1]
CLASS_FOLDERS = ("F_Breakage", "F_Crushed", "F_Normal", "R_Breakage", "R_Crushed", "R_Normal")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(os.environ.get("DAMAGELENS_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def real_photos(data_dir: Path) -> list[Path]:
    """One real photo per class from ../shared/data; skips (with the reason) when the data is absent."""
    root = data_dir / "car-damage-6class"
    if not root.is_dir():
        pytest.skip(f"real photos not available: {root} is absent (set DAMAGELENS_DATA_DIR)")
    photos = [sorted((root / folder).glob("*.jpg"))[0] for folder in CLASS_FOLDERS if (root / folder).is_dir()]
    if not photos:
        pytest.skip(f"no photos under {root}")
    return photos


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    endpoint = start_s3()
    yield endpoint
    if callable(endpoint.stop):
        endpoint.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> Iterator[str]:
    import redis

    url = f"redis://127.0.0.1:{redis_server.port}/1"
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def s3_settings(s3_endpoint: S3Endpoint, redis_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings against the real Redis and S3 endpoint, with a uniquely named bucket deleted after."""
    settings = Settings(
        redis_url=redis_url,
        storage_backend="s3",
        s3_endpoint_url=s3_endpoint.url,
        s3_access_key=s3_endpoint.access_key,
        s3_secret_key=s3_endpoint.secret_key,
        s3_bucket=f"dl-test-{uuid.uuid4().hex[:12]}",
        frontend_dir=tmp_path / "no-frontend",
        model_cache_dir=tmp_path / "cache",
    )
    yield settings
    from damagelens.storage.s3 import s3_client

    client = s3_client(settings)
    try:
        for obj in client.list_objects_v2(Bucket=settings.s3_bucket).get("Contents", []):
            client.delete_object(Bucket=settings.s3_bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=settings.s3_bucket)
    except Exception:  # noqa: BLE001  (bucket never created)
        pass


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
