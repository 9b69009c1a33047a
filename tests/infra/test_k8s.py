"""Kubernetes: both overlays render with kustomize, validate offline against the Kubernetes
OpenAPI schemas (kubernetes-validate, strict) and, for KEDA's custom resources, against the
JSON Schemas in infra/k8s/schemas (jsonschema); then cross-references and the contract."""

from __future__ import annotations

import copy
import json

import pytest
from infra_helpers import (
    K8S,
    OVERLAYS,
    QUEUES,
    SETTINGS_PREFIX,
    by_kind,
    container,
    env_example,
    kustomize,
    procfile,
    procfile_worker_queues,
    settings_env_names,
    stage_names,
)

pytestmark = pytest.mark.infra

K8S_VERSION = "1.32"
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.schema.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.schema.json",
}
EXTERNAL_SECRETS = {"gpu": {"damagelens-secrets", "damagelens-redis-auth", "damagelens-tls"}, "dev": set()}


def _kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError:
        pytest.skip("kubernetes-validate not installed (pip install kubernetes-validate)")
    return kubernetes_validate


def _crd_validator(api_version: str, kind: str):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed (pip install jsonschema)")
    schema = json.loads((K8S / "schemas" / CRD_SCHEMAS[(api_version, kind)]).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_resources_validate_strictly(overlay):
    kv = _kubernetes_validate()
    errors = []
    for doc in kustomize(overlay):
        if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
            continue
        try:
            kv.validate(doc, K8S_VERSION, strict=True)
        except kv.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        except kv.SchemaNotFoundError:
            errors.append(f"no schema for {doc['apiVersion']} {doc['kind']} (unexpected custom resource?)")
    assert not errors, "\n".join(errors)


def test_queues_are_the_stages():
    """Every Stage has its own queue, so its own Procfile line, compose services and k8s pool."""
    assert set(QUEUES) == set(stage_names())
    assert set(procfile_worker_queues()) == set(stage_names())


def test_kubernetes_validate_catches_errors():
    kv = _kubernetes_validate()
    deployment = copy.deepcopy(by_kind(kustomize("dev"), "Deployment")["gateway"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = ["not", "a", "port"]
    deployment["spec"]["replicasTypo"] = 2
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_resources_validate(overlay):
    seen = 0
    for doc in kustomize(overlay):
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_SCHEMAS:
            errors = sorted(_crd_validator(*key).iter_errors(doc), key=str)
            assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: " + "; ".join(e.message for e in errors)
            seen += 1
    assert seen >= len(QUEUES)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda so: so["spec"]["triggers"][0]["metadata"].update(listLength=5),  # must be a string
        lambda so: so["spec"]["triggers"][0]["metadata"].pop("listName"),
        lambda so: so["spec"].update(minReplicas=0),  # HPA spelling, not KEDA's
        lambda so: so["spec"]["triggers"][0]["metadata"].update(address="redis://redis:6379/0"),  # URL, not host:port
    ],
)
def test_keda_schema_rejects_mistakes(mutate):
    so = copy.deepcopy(by_kind(kustomize("dev"), "ScaledObject")["worker-classify"])
    mutate(so)
    assert list(_crd_validator("keda.sh/v1alpha1", "ScaledObject").iter_errors(so))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_commands_and_probes_follow_the_procfile(overlay):
    docs = kustomize(overlay)
    deployments = by_kind(docs, "Deployment")
    gateway = container(deployments["gateway"])
    assert gateway["command"] == procfile()["gateway"]
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["ports"][0]["containerPort"] == 8000

    queues = procfile_worker_queues()
    assert set(queues) == set(QUEUES)
    scaled = by_kind(docs, "ScaledObject")
    for queue, command in queues.items():
        name = f"worker-{queue}"
        worker = container(deployments[name])
        assert worker["command"] == command, name
        ping = ["damagelens", "worker-ping", "--queue", queue]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert worker[probe]["exec"]["command"] == ping, (name, probe)
        env = {e["name"]: e.get("value") for e in worker.get("env", [])}
        assert env.get("WORKER_QUEUE") == queue
        so = scaled[name]
        assert so["spec"]["scaleTargetRef"]["name"] == name
        trigger = so["spec"]["triggers"][0]
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["listName"] == queue
        grace = deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > int(env_example()[0]["DAMAGELENS_TASK_TIME_LIMIT_SECONDS"]), "grace must exceed the task hard limit"
        assert "replicas" not in deployments[name]["spec"], "KEDA owns worker replicas"
    assert "replicas" not in deployments["gateway"]["spec"], "the HPA owns gateway replicas"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_context_and_resources(overlay):
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, obj in by_kind(kustomize(overlay), kind).items():
            pod = obj["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod["securityContext"]["runAsUser"] != 0, name
            for c in pod["containers"]:
                assert c["securityContext"]["allowPrivilegeEscalation"] is False, (name, c["name"])
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], (name, c["name"])
                assert "requests" in c["resources"] and "limits" in c["resources"], (name, c["name"])
                assert "memory" in c["resources"]["limits"], (name, c["name"])
                assert not c["image"].endswith(":latest") and ":" in c["image"], (name, c["image"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_references_resolve(overlay):
    """Selectors, Service/Ingress backends, ConfigMap/Secret refs and KEDA auth refs point at real objects."""
    docs = kustomize(overlay)
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    configmaps = set(by_kind(docs, "ConfigMap"))
    secrets = set(by_kind(docs, "Secret")) | EXTERNAL_SECRETS[overlay]
    pod_labels = [o["spec"]["template"]["metadata"]["labels"] for o in docs if o["kind"] in ("Deployment", "StatefulSet")]

    def matches(selector):
        return any(all(labels.get(k) == v for k, v in selector.items()) for labels in pod_labels)

    for name, svc in services.items():
        assert matches(svc["spec"]["selector"]), f"Service {name} selects no pod"
    for name, pdb in by_kind(docs, "PodDisruptionBudget").items():
        assert matches(pdb["spec"]["selector"]["matchLabels"]), f"PDB {name} selects no pod"
    for name, hpa in by_kind(docs, "HorizontalPodAutoscaler").items():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments, name
    for name, so in by_kind(docs, "ScaledObject").items():
        assert so["spec"]["scaleTargetRef"]["name"] in deployments, name
        for trig in so["spec"]["triggers"]:
            if "authenticationRef" in trig:
                assert trig["authenticationRef"]["name"] in by_kind(docs, "TriggerAuthentication"), name
    for ta in by_kind(docs, "TriggerAuthentication").values():
        for ref in ta["spec"].get("secretTargetRef", []):
            assert ref["name"] in secrets
    for ing in by_kind(docs, "Ingress").values():
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                svc = services[backend["name"]]
                assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}
    for obj in docs:
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    assert src["configMapRef"]["name"] in configmaps
                if "secretRef" in src:
                    assert src["secretRef"]["name"] in secrets
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["name"] in configmaps
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["name"] in secrets


def test_ingress_routes_api_to_gateway_and_ui_to_frontend():
    for overlay in OVERLAYS:
        ing = by_kind(kustomize(overlay), "Ingress")["damagelens"]
        routes = {p["path"]: p["backend"]["service"]["name"] for p in ing["spec"]["rules"][0]["http"]["paths"]}
        assert routes == {"/v1": "gateway", "/predict": "gateway", "/healthz": "gateway", "/readyz": "gateway", "/": "frontend"}
        assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
        size = ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
        assert size.endswith("m") and int(size[:-1]) > 20
        # Inspections send every photo in one body (200 MB by default): their own path, a larger limit, same host
        batch = by_kind(kustomize(overlay), "Ingress")["damagelens-inspections"]
        [path] = batch["spec"]["rules"][0]["http"]["paths"]
        assert (path["path"], path["pathType"], path["backend"]["service"]["name"]) == ("/v1/inspections", "Exact", "gateway")
        assert int(batch["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"][:-1]) > 200
        assert batch["spec"]["rules"][0].get("host") == ing["spec"]["rules"][0].get("host")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_real_and_consistent(overlay):
    docs = kustomize(overlay)
    known = settings_env_names()
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    keys = set(config)
    for secret in by_kind(docs, "Secret").values():
        keys |= set(secret.get("data", {})) | set(secret.get("stringData", {}))
    for dep in by_kind(docs, "Deployment").values():
        for c in dep["spec"]["template"]["spec"]["containers"]:
            keys |= {e["name"] for e in c.get("env", [])}
    unknown = {k for k in keys if k.startswith(SETTINGS_PREFIX)} - known
    assert not unknown, f"not fields of damagelens.settings.Settings: {sorted(unknown)}"

    active, _ = env_example()
    differs = {"DAMAGELENS_DEVICE"}  # cpu in dev, cuda on GPU nodes; `auto` for compose
    for key, value in config.items():
        if key in active and key not in differs:
            assert value == active[key], f"{overlay}: {key}={value!r} but .env.example says {active[key]!r}"
    assert config["DAMAGELENS_STORAGE_BACKEND"] == "s3"
    assert config["DAMAGELENS_HOST"] == "0.0.0.0"
    assert config["DAMAGELENS_DEVICE"] == {"dev": "cpu", "gpu": "cuda"}[overlay]
    if overlay == "gpu":  # the worker image's onnxruntime has no CUDA provider: on ORT the stages would run on the CPU
        assert config["DAMAGELENS_INFERENCE_BACKEND"] == "torch"
    for key in ("HF_HUB_OFFLINE", "YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR"):
        assert key in config
    if overlay == "dev":
        secret = next(iter(by_kind(docs, "Secret").values()))
        assert {"DAMAGELENS_REDIS_URL", "DAMAGELENS_S3_ACCESS_KEY", "DAMAGELENS_S3_SECRET_KEY"} <= set(secret["data"])


def test_dev_overlay_is_self_contained_and_cpu():
    docs = kustomize("dev")
    assert {"redis", "minio"} <= set(by_kind(docs, "StatefulSet"))
    assert {"redis", "minio", "gateway", "frontend"} <= set(by_kind(docs, "Service"))
    assert "minio-init" in by_kind(docs, "Job")
    redis = container(by_kind(docs, "StatefulSet")["redis"])
    assert "--appendonly" in redis["args"]
    for queue in QUEUES:
        worker = container(by_kind(docs, "Deployment")[f"worker-{queue}"])
        assert "nvidia.com/gpu" not in worker["resources"].get("limits", {})
        assert worker["image"].endswith("-cpu")
    for so in by_kind(docs, "ScaledObject").values():
        assert so["spec"]["triggers"][0]["metadata"]["address"].startswith("redis.damagelens.svc")


def test_gpu_overlay_uses_gpus_and_external_services():
    docs = kustomize("gpu")
    assert not by_kind(docs, "StatefulSet"), "GPU overlay must not run in-cluster Redis/MinIO"
    assert not by_kind(docs, "Secret"), "GPU overlay references operator-created Secrets, it must not ship one"
    for queue in QUEUES:
        dep = by_kind(docs, "Deployment")[f"worker-{queue}"]
        pod = dep["spec"]["template"]["spec"]
        worker = container(dep)
        assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"]
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        assert worker["image"].endswith("-cuda")
    notify = by_kind(docs, "Deployment")["worker-notify"]
    assert "nvidia.com/gpu" not in container(notify)["resources"].get("limits", {}), "webhooks need no GPU"
    assert not notify["spec"]["template"]["spec"].get("nodeSelector")
    scaled = by_kind(docs, "ScaledObject")
    assert scaled["worker-classify"]["spec"]["minReplicaCount"] >= 1
    assert scaled["worker-explain"]["spec"]["minReplicaCount"] == 0
    assert scaled["worker-detect"]["spec"]["minReplicaCount"] == 0
    assert scaled["worker-assess"]["spec"]["minReplicaCount"] == 0
    for so in scaled.values():
        trig = so["spec"]["triggers"][0]
        assert trig["authenticationRef"]["name"] == "damagelens-redis"
        assert "svc.cluster.local" not in trig["metadata"]["address"]
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    assert "minio" not in config["DAMAGELENS_S3_ENDPOINT_URL"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_notify_worker_and_auth_on(overlay):
    docs = kustomize(overlay)
    worker = container(by_kind(docs, "Deployment")["worker-notify"])
    assert worker["command"] == procfile()["notify"]
    assert worker["livenessProbe"]["exec"]["command"] == ["damagelens", "worker-ping", "--queue", "notify"]
    assert next(iter(by_kind(docs, "ConfigMap").values()))["data"]["DAMAGELENS_AUTH"] == "on"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_reaper_is_one_replica_from_the_procfile_with_a_pdb_that_allows_drains(overlay):
    docs = kustomize(overlay)
    reaper = by_kind(docs, "Deployment")["reaper"]
    assert reaper["spec"]["replicas"] == 1
    c = container(reaper)
    assert c["command"] == procfile()["reaper"]
    assert c["livenessProbe"]["exec"]["command"] == ["damagelens", "reaper-ping"]
    assert c["image"].split(":")[0].endswith("damagelens/gateway"), "the reaper runs from the gateway image"
    pdb = by_kind(docs, "PodDisruptionBudget")["reaper"]
    assert pdb["spec"]["selector"]["matchLabels"] == reaper["spec"]["selector"]["matchLabels"]
    assert pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"], "minAvailable on one replica blocks drains"
