"""The registry file: lookups, aliases and hard errors on bad entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from damagelens.registry import ModelEntry, Registry, RegistryError, UnknownModelError, load_registry
from damagelens.registry.entries import parse_registry
from damagelens.registry.weights import WeightsError, resolve_weights, sha256_file
from damagelens.schemas import SEED_LABELS
from damagelens.settings import Settings


def _entry(name: str, **kw) -> ModelEntry:
    return ModelEntry(name=name, task="classify", architecture="lite_single", version="1", labels=SEED_LABELS, **kw)


def test_shipped_registry_serves_fast_accurate_and_a_detector() -> None:
    registry = load_registry(Settings().registry_path)
    assert registry.get("fast").name == "fast"
    assert registry.get("accurate").name == "accurate"
    assert registry.get("resnet").name == "fast"  # seed aliases
    assert registry.get("fusion").name == "accurate"
    assert registry.list("detect"), "a detector entry is required"
    for entry in registry.list("classify"):
        assert list(entry.labels) == list(SEED_LABELS)
        assert entry.cam_target_layer


@pytest.mark.parametrize(("name", "current_major"), [("fast", "7."), ("accurate", "12.")])
def test_shipped_registry_serves_the_current_version_and_keeps_older_ones_by_name(name: str, current_major: str) -> None:
    registry = load_registry(Settings().registry_path)
    current, v2, v1 = registry.get(name), registry.get(f"{name}-v2"), registry.get(f"{name}-v1")
    assert current.version.startswith(current_major) and v2.version.startswith("2.") and v1.version.startswith("1.")
    assert registry.get(f"{name}-v3").version.startswith("3.")
    if name == "accurate":
        assert registry.get("accurate-v4").version.startswith("4.") and registry.get("accurate-v5").version.startswith("5.")
        assert registry.get("accurate-v6").version.startswith("6.") and registry.get("accurate-v7").version.startswith("7.")
        assert registry.get("accurate-v8").version.startswith("8.") and registry.get("accurate-v9").version.startswith("9.")
        assert registry.get("accurate-v10").version.startswith("10.") and registry.get("accurate-v11").version.startswith("11.")
    else:
        assert registry.get("fast-v4").version.startswith("4.")  # a member of accurate v7 and v8, by that name
        assert registry.get("fast-v5").version.startswith("5.")
        assert registry.get("fast-v6").version.startswith("6.")  # accurate v9's and v10's member, its own entry since v7
        assert registry.get("fast-v7").name == "fast"  # accurate v11's and v12's member: an alias now, its own entry once fast moves on
    assert v2.aliases == () and v1.aliases == ()  # the seed aliases (`resnet`, `fusion`) follow the current version
    for calibrated in (current, v2):
        assert calibrated.review_threshold is not None and 0 < calibrated.review_threshold < 1 and calibrated.temperature > 0
    assert v1.review_threshold is None and v1.temperature == 1.0  # v1 was never calibrated
    with_files = [e for e in (current, v2, v1) if not e.members] + list(current.member_entries)  # an ensemble's files are its members'
    files = {resolve_weights(e) for e in with_files}  # all present and sha256-verified
    assert len(files) == len(with_files) and all(f.stat().st_size <= 25 * 1024 * 1024 for f in files)


def test_lite1_v3_is_lite1_with_two_stages_fine_tuned_calibrated_and_verified() -> None:
    """Installed 2026-12-05 (grouped CV 0.812), not served alone: `accurate` v10's and v11's second member."""
    registry = load_registry(Settings().registry_path)
    v3, v2 = registry.get("lite1-v3"), registry.get("lite1-v2")
    assert v3.version == "3.0.0" and v3.architecture == v2.architecture == "lite_single"
    assert v3.options["variant"] == 1 and v3.options["split"] == 5 and v2.options.get("split", 6) == 6
    assert v3.input_size == v2.input_size == 288 and v3.metrics["cv_accuracy"] > v2.metrics["cv_accuracy"]
    assert v3.temperature > 0 and 0 < v3.review_threshold < 1 and v3.aliases == ()
    assert resolve_weights(v3).stat().st_size <= 25 * 1024 * 1024  # present and sha256-verified


def test_lite1_v4_is_lite1_with_three_stages_fine_tuned_calibrated_and_verified() -> None:
    """Installed 2026-12-05 (grouped CV 0.825, `lite1-v3` 0.812): `accurate` v12's second member, servable alone."""
    registry = load_registry(Settings().registry_path)
    v4, v3 = registry.get("lite1-v4"), registry.get("lite1-v3")
    assert v4.version == "4.0.0" and v4.architecture == v3.architecture == "lite_single"
    assert v4.options["variant"] == 1 and v4.options["split"] == 4 and v4.input_size == 288
    assert v4.metrics["cv_accuracy"] > v3.metrics["cv_accuracy"] and v4.aliases == ()
    assert v4.temperature > 0 and 0 < v4.review_threshold < 1
    assert resolve_weights(v4).stat().st_size <= 25 * 1024 * 1024  # present and sha256-verified


def test_unknown_model_lists_valid_names() -> None:
    registry = Registry([_entry("a", aliases=("alpha",))])
    with pytest.raises(UnknownModelError) as err:
        registry.get("nope")
    assert "a" in err.value.valid and "alpha" in err.value.valid
    assert "valid names" in str(err.value)


def test_task_mismatch_is_unknown() -> None:
    with pytest.raises(UnknownModelError):
        Registry([_entry("a")]).get("a", task="detect")


def test_duplicate_names_are_hard_errors() -> None:
    with pytest.raises(RegistryError):
        Registry([_entry("a"), _entry("b", aliases=("a",))])


def test_local_weights_need_a_checksum(tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        parse_registry({"models": [{**_entry("a").model_dump(exclude={"base_dir"}), "weights": "w.safetensors"}]}, tmp_path)


def test_sha256_is_checked_on_resolve(tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    good = _entry("a", weights="w.bin", sha256=sha256_file(weights), base_dir=tmp_path)
    assert resolve_weights(good) == weights
    bad = _entry("b", weights="w.bin", sha256="0" * 64, base_dir=tmp_path)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        resolve_weights(bad)


@pytest.mark.integration
def test_s3_weights_are_downloaded_cached_and_verified(s3_settings: Settings, monkeypatch, tmp_path: Path) -> None:
    from damagelens.settings import get_settings
    from damagelens.storage import create_store

    blob = b"\x00weights\x01" * 100
    create_store(s3_settings).put("models/w.safetensors", blob)
    for key, value in {
        "DAMAGELENS_S3_ENDPOINT_URL": s3_settings.s3_endpoint_url,
        "DAMAGELENS_S3_ACCESS_KEY": s3_settings.s3_access_key,
        "DAMAGELENS_S3_SECRET_KEY": s3_settings.s3_secret_key,
        "DAMAGELENS_MODEL_CACHE_DIR": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    local = tmp_path / "w.safetensors"
    local.write_bytes(blob)
    entry = _entry("remote", weights=f"s3://{s3_settings.s3_bucket}/models/w.safetensors", sha256=sha256_file(local))
    path = resolve_weights(entry)
    assert path.read_bytes() == blob and path.is_relative_to(tmp_path / "cache")
    with pytest.raises(WeightsError):
        resolve_weights(entry.model_copy(update={"sha256": "f" * 64}))


def test_hf_weights_honour_offline_mode(monkeypatch, tmp_path: Path) -> None:
    """No hub is reachable: with HF_HUB_OFFLINE=1 and an empty cache the error says so, no network call."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    entry = _entry("hub", weights="hf://damagelens/models/fast.safetensors@v1", sha256="0" * 64)
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE is set and it is not in the local cache"):
        resolve_weights(entry)
