"""docker-compose.yml: validated by a real Compose parser, then checked for the services, health
checks, commands (from the Procfile) and settings (from .env.example) the stack needs."""

from __future__ import annotations

import json

import pytest
import yaml
from infra_helpers import (
    QUEUES,
    REPO,
    SETTINGS_PREFIX,
    compose_command,
    compose_raw,
    env_example,
    env_without_tools,
    interpolation,
    procfile,
    procfile_worker_queues,
    run,
    settings_env_names,
)

pytestmark = pytest.mark.infra

APP_SERVICES = ("gateway", *(f"worker-{q}" for q in QUEUES))
GPU_SERVICES = tuple(f"worker-{q}-gpu" for q in QUEUES)


def _compose_or_skip() -> list[str]:
    cmd = compose_command()
    if cmd is None:
        pytest.skip(
            "no Compose implementation: `docker compose` plugin absent and docker-compose not installed (apt-get install -y docker-compose)"
        )
    return cmd


@pytest.mark.parametrize("profile", [None, "gpu"])
@pytest.mark.parametrize("env_file", ["empty", ".env.example"])
def test_compose_config_is_valid(tmp_path, profile, env_file):
    """`config` runs Compose's own schema validation and interpolation, offline (no daemon)."""
    cmd = _compose_or_skip()
    if env_file == "empty":
        path = tmp_path / "empty.env"
        path.write_text("")
    else:
        path = REPO / env_file
    args = [*cmd, "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml"), "--env-file", str(path)]
    if profile:
        args += ["--profile", profile]
    result = run([*args, "config"], env=env_without_tools())
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    services = rendered["services"]
    for name in ("redis", "minio", "minio-init", "frontend", *APP_SERVICES):
        assert name in services, name
    # Every ${VAR:-default} resolved to the documented default (no empty values slipped in).
    active, _ = env_example()
    for name in APP_SERVICES:
        env = services[name]["environment"]
        for key, value in active.items():
            if key.startswith(SETTINGS_PREFIX):
                assert str(env[key]) == value, (name, key)


def test_compose_parser_rejects_a_broken_file(tmp_path):
    """The validator is real: an unknown service option makes `config` fail."""
    cmd = _compose_or_skip()
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        (REPO / "docker-compose.yml").read_text().replace("    restart: unless-stopped\n", "    restrat: unless-stopped\n", 1)
    )
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = run(
        [*cmd, "--project-directory", str(tmp_path), "-f", str(broken), "--env-file", str(empty), "config", "-q"], env=env_without_tools()
    )
    assert result.returncode != 0


def test_services_and_health_checks():
    services = compose_raw()["services"]
    expected = {"redis", "minio", "minio-init", "gateway", "frontend", *APP_SERVICES[1:], *GPU_SERVICES}
    assert expected <= set(services), expected - set(services)
    for name, svc in services.items():
        if name == "minio-init":
            assert "healthcheck" not in svc
            assert svc.get("restart") == "no"
            continue
        assert "healthcheck" in svc, f"{name} has no healthcheck"
        assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name

    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert any(v.endswith(":/data") for v in services["minio"]["volumes"])
    assert {"redis-data", "minio-data"} <= set(compose_raw()["volumes"])
    assert "/healthz" in " ".join(services["gateway"]["healthcheck"]["test"])

    init_script = " ".join(services["minio-init"]["command"])
    assert "mc mb --ignore-existing" in init_script
    assert "--expire-days 1" in init_script


def test_depends_on_conditions():
    services = compose_raw()["services"]
    for name in (*APP_SERVICES, *GPU_SERVICES):
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["minio-init"]["condition"] == "service_completed_successfully", name
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["frontend"]["depends_on"]["gateway"]["condition"] == "service_healthy"


def test_commands_come_from_the_procfile():
    services = compose_raw()["services"]
    proc = procfile()
    assert services["gateway"]["command"] == proc["gateway"]
    queues = procfile_worker_queues()
    assert set(queues) == set(QUEUES), "Procfile worker queues changed: update compose, k8s and these tests"
    for queue, command in queues.items():
        for name in (f"worker-{queue}", f"worker-{queue}-gpu"):
            svc = services[name]
            assert svc["command"] == command, name
            assert svc["healthcheck"]["test"] == ["CMD", "damagelens", "worker-ping", "--queue", queue], name
            assert svc["environment"]["WORKER_QUEUE"] == queue, name


def test_gpu_profile_reserves_nvidia_devices():
    services = compose_raw()["services"]
    for name in GPU_SERVICES:
        svc = services[name]
        assert svc["profiles"] == ["gpu"], name
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert devices and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"], name
        assert svc["environment"]["DAMAGELENS_DEVICE"] == "cuda", name
        assert svc["environment"]["DAMAGELENS_INFERENCE_BACKEND"] == "torch", name  # the image's onnxruntime is CPU-only
        assert svc["build"]["args"]["TORCH_VARIANT"] == "cuda", name
        assert svc["image"].endswith("-cuda"), name
    for queue in QUEUES:
        svc = services[f"worker-{queue}"]
        assert "profiles" not in svc
        assert svc["build"]["args"]["TORCH_VARIANT"] == "cpu"
        assert svc["image"].endswith("-cpu")


def test_settings_match_env_example():
    """Every active DAMAGELENS_ line of .env.example reaches the gateway and every worker, with the
    same default; no service sets a DAMAGELENS_ variable that is not a real setting."""
    active, _ = env_example()
    known = settings_env_names()
    services = compose_raw()["services"]
    for name in (*APP_SERVICES, *GPU_SERVICES):
        env = services[name]["environment"]
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key in env:
            if key.startswith(SETTINGS_PREFIX):
                assert key in known, f"{name}: {key} is not a field of damagelens.settings.Settings"
        for key, value in active.items():
            if not key.startswith(SETTINGS_PREFIX):
                continue
            if name in GPU_SERVICES and key == "DAMAGELENS_DEVICE":
                continue
            assert key in env, f"{name} does not pass {key}"
            interp = interpolation(env[key])
            assert interp == (key, value), f"{name}: {key} should be ${{{key}:-{value}}}, is {env[key]!r}"
        for key in ("HF_HUB_OFFLINE", "YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR"):
            assert key in env, f"{name} lacks {key}"
        assert env["DAMAGELENS_STORAGE_BACKEND"].endswith(":-s3}")
        assert env["DAMAGELENS_REDIS_URL"].endswith(":-redis://redis:6379/0}")
        assert env["DAMAGELENS_S3_ENDPOINT_URL"].endswith(":-http://minio:9000}")
    gateway_env = services["gateway"]["environment"]
    assert gateway_env["DAMAGELENS_HOST"] == "0.0.0.0"
    assert str(gateway_env["DAMAGELENS_PORT"]) == "8000"


def test_minio_credentials_are_the_app_credentials():
    services = compose_raw()["services"]
    active, _ = env_example()
    minio_env = services["minio"]["environment"]
    assert interpolation(minio_env["MINIO_ROOT_USER"]) == ("DAMAGELENS_S3_ACCESS_KEY", active["DAMAGELENS_S3_ACCESS_KEY"])
    assert interpolation(minio_env["MINIO_ROOT_PASSWORD"]) == ("DAMAGELENS_S3_SECRET_KEY", active["DAMAGELENS_S3_SECRET_KEY"])
    assert len(active["DAMAGELENS_S3_SECRET_KEY"]) >= 8, "MinIO needs a password of 8+ characters"


def test_compose_only_variables_are_used():
    """Non-setting names in .env.example (ports, image tags) are really read by docker-compose.yml."""
    active, _ = env_example()
    text = (REPO / "docker-compose.yml").read_text()
    for key in active:
        if not key.startswith(SETTINGS_PREFIX):
            assert "${" + key in text, f".env.example defines {key}, docker-compose.yml never uses it"


def test_images_are_pinned():
    for name, svc in compose_raw()["services"].items():
        image = svc.get("image", "")
        if "build" in svc:
            continue
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image!r}"


def test_compose_cors_default_is_valid_json():
    active, _ = env_example()
    assert isinstance(json.loads(active["DAMAGELENS_CORS_ORIGINS"]), list)


def test_notify_worker_runs_the_procfile_command():
    """Webhook deliveries have their own worker (queue `notify`), with the stack's settings."""
    svc = compose_raw()["services"]["worker-notify"]
    assert svc["command"] == procfile()["notify"] == ["damagelens", "worker", "--queue", "notify"]
    assert svc["healthcheck"]["test"] == ["CMD", "damagelens", "worker-ping", "--queue", "notify"]
    assert svc["environment"]["DAMAGELENS_AUTH"].endswith(":-on}")
    assert compose_raw()["services"]["gateway"]["environment"]["DAMAGELENS_AUTH"].endswith(":-on}")


def _health_args(services: dict) -> dict[str, list[str]]:
    return {name: svc["healthcheck"]["test"] for name, svc in services.items() if "healthcheck" in svc}


@pytest.mark.parametrize("path", ["docker-compose.yml", "infra/compose.standins.yml"])
def test_health_check_arguments_have_no_spaces(path):
    """Found by the real container run: podman's Docker API splits `CMD` health-check arguments at
    spaces, so `python -c "import a; b"` became `python -c import` and never turned healthy."""
    services = yaml.safe_load((REPO / path).read_text())["services"]
    for name, test in _health_args(services).items():
        if test[0] == "CMD":
            assert not [arg for arg in test[1:] if " " in arg], f"{path}: {name} health check {test}"


def test_standin_override_replaces_only_the_public_images(tmp_path):
    """infra/compose.standins.yml (scripts/container-smoke.sh) swaps Redis and MinIO for local
    builds and leaves every project service exactly as docker-compose.yml defines it."""
    override = yaml.safe_load((REPO / "infra" / "compose.standins.yml").read_text())["services"]
    assert set(override) == {"redis", "minio", "minio-init"}
    assert all(svc["image"].startswith("localhost/damagelens-standin/") for svc in override.values())
    cmd = _compose_or_skip()
    merged = run(
        [*cmd, "-f", "docker-compose.yml", "-f", "infra/compose.standins.yml", "config"],
        cwd=REPO,
        env=env_without_tools(),
    )
    assert merged.returncode == 0, merged.stderr
    services = yaml.safe_load(merged.stdout)["services"]
    base = compose_raw()["services"]
    for name in set(base) - set(override):
        assert services[name].get("command") == base[name].get("command"), name
    assert "--appendonly" in services["redis"]["command"]


def test_reaper_runs_the_procfile_command_with_the_app_settings():
    services = compose_raw()["services"]
    reaper = services["reaper"]
    assert reaper["command"] == procfile()["reaper"] == ["damagelens", "reaper"]
    assert reaper["healthcheck"]["test"] == ["CMD", "damagelens", "reaper-ping"]
    assert reaper["image"] == services["gateway"]["image"], "the reaper needs no torch: it runs from the gateway image"
    assert reaper["environment"] == {
        k: v for k, v in services["gateway"]["environment"].items() if k not in ("DAMAGELENS_HOST", "DAMAGELENS_PORT")
    }
    assert "deploy" not in reaper or reaper["deploy"].get("replicas", 1) == 1
    assert reaper["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_gateway_port_is_published_on_this_host_only():
    """Its /metrics has no auth; the public way in is the frontend's nginx, which does not proxy it."""
    services = compose_raw()["services"]
    assert all(str(p).startswith("127.0.0.1:") for p in services["gateway"]["ports"])
    assert all(str(p).startswith("127.0.0.1:") for p in services["minio"]["ports"])
