"""Resolve a weight URI (local path, s3://, hf://) to a verified local file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from damagelens.registry.entries import ModelEntry
from damagelens.settings import get_settings


class WeightsError(RuntimeError):
    """Weights are missing or do not match their recorded sha256."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_s3(uri: str, cache_dir: Path) -> Path:
    from damagelens.storage.s3 import s3_client

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    target = cache_dir / "s3" / bucket / key
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")  # concurrent downloaders never share a file
        os.close(fd)
        try:
            s3_client(get_settings()).download_file(bucket, key, tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return target


def _download_hf(uri: str) -> Path:
    """`hf://org/repo/path/in/repo.safetensors@rev`; HF_HUB_OFFLINE is honoured by huggingface_hub."""
    from huggingface_hub import hf_hub_download, is_offline_mode
    from huggingface_hub.errors import LocalEntryNotFoundError

    spec, _, revision = uri.removeprefix("hf://").partition("@")
    parts = spec.split("/")
    if len(parts) < 3:
        raise WeightsError(f"hf URI needs org/repo/file: {uri}")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision or None))
    except LocalEntryNotFoundError as exc:
        hint = "HF_HUB_OFFLINE is set and it is not in the local cache" if is_offline_mode() else "the hub is unreachable"
        raise WeightsError(f"cannot fetch {uri}: {hint}") from exc


def resolve_weights(entry: ModelEntry) -> Path | None:
    """Local path of the entry's weights, downloaded and sha256-checked; None means "no checkpoint"."""
    if entry.weights is None:
        return None
    if entry.weights.startswith("s3://"):
        path = _download_s3(entry.weights, get_settings().model_cache_dir)
    elif entry.weights.startswith("hf://"):
        path = _download_hf(entry.weights)
    else:
        path = Path(entry.weights)
        if not path.is_absolute() and entry.base_dir is not None:
            path = entry.base_dir / path
    if not path.exists():
        raise WeightsError(f"weights of {entry.name!r} not found at {path}")
    if entry.sha256 is not None:
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise WeightsError(f"sha256 mismatch for {entry.name!r}: expected {entry.sha256}, got {actual}")
    return path
