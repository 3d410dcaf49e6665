"""The Kubernetes manifests render, are valid objects, and agree with the server's code.

Every overlay is rendered by kustomize (kubectl's) and each object validated against the
Kubernetes schemas (strict) of the oldest and newest versions we claim; the checks below
then tie the manifests to the settings, ports, metrics and drain the code really has.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # the package has no type hints
import pytest

from service.config import Settings, build_settings
from service.metrics import Metrics
from service.session import CLOSE_S
from service.storage.lease import RELEASE_S
from tests.deploy.manifests import (
    BRIDGE,
    OVERLAYS,
    SERVER,
    Obj,
    RecordingEnv,
    container,
    container_env,
    find,
    matches,
    port_number,
    render,
    workloads,
)
from web_bridge.app import LEAVE_S, SHUTDOWN_S
from web_bridge.config import build_bridge_settings

# Native gRPC probes are GA since 1.27; 1.30 is the oldest release still maintained by
# the main managed offerings when this was written.
K8S_VERSIONS = ("1.30.0", "1.37.0")
# Variables that are not ours but that the libraries in the image read.
FOREIGN_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
# Peak RSS at the 10-stream limit (docs/benchmarks.md, capacity) and the cores it was
# measured on.
RSS_AT_CAPACITY = 525 * 2**20
CAPACITY_STREAMS, CAPACITY_CORES = 10, 2

overlays = pytest.mark.parametrize("overlay", OVERLAYS)


def server_settings(objs: tuple[Obj, ...]) -> tuple[Settings, RecordingEnv]:
    env = RecordingEnv(container_env(objs, container(objs, SERVER)))
    return build_settings([], environ=env), env


def quantity(value: str) -> float:
    """A Kubernetes quantity (the few suffixes used here) as a number."""
    for suffix, factor in (("Gi", 2**30), ("Mi", 2**20), ("m", 1e-3)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


@overlays
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schema(overlay: str, version: str) -> None:
    objs = render(overlay)
    assert {o["kind"] for o in objs} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    for obj in objs:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_rejects_a_misspelt_nested_field() -> None:
    """The check above is worth something only if a typo deep in a pod spec fails it."""
    deployment = copy.deepcopy(find(render("base"), "Deployment", SERVER))
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["grpc"]["prot"] = probe["grpc"].pop("port")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


@overlays
def test_probes_are_grpc_health_checks_on_the_serving_port(overlay: str) -> None:
    objs = render(overlay)
    c = container(objs, SERVER)
    settings, _ = server_settings(objs)
    assert port_number(c, "grpc") == settings.port
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c[kind]
        # The server's health service answers service "" (service/server.py).
        assert probe["grpc"] == {"port": settings.port}, kind


@overlays
def test_termination_grace_outlasts_the_bridges_handover(overlay: str) -> None:
    """On SIGTERM the bridge hands its streams over (LEAVE_S), then aiohttp waits for the
    requests still running and for those it cancelled (SHUTDOWN_S each): all before the
    pod's SIGKILL, so that the handover's last words and the shutdown are not cut."""
    pod = find(render(overlay), "Deployment", BRIDGE)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > LEAVE_S + 2 * SHUTDOWN_S


@overlays
def test_termination_grace_outlasts_the_servers_drain(overlay: str) -> None:
    objs = render(overlay)
    pod = find(objs, "Deployment", SERVER)["spec"]["template"]["spec"]
    settings, _ = server_settings(objs)
    # After the grace, stop() waits at most each stream's close bound and its lease release.
    drain = settings.grace_s + CLOSE_S + RELEASE_S
    assert pod["terminationGracePeriodSeconds"] > drain
    # A draining server reports NOT_SERVING: liveness must not kill it before it is done.
    live = container(objs, SERVER)["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > settings.grace_s


@overlays
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    objs = render(overlay)
    for deployment in workloads(objs):
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), (c["name"], part)


@overlays
def test_server_resources_follow_the_measured_cost(overlay: str) -> None:
    objs = render(overlay)
    res = container(objs, SERVER)["resources"]
    settings, _ = server_settings(objs)
    assert res["requests"]["cpu"] == res["limits"]["cpu"]  # Guaranteed QoS
    assert res["requests"]["memory"] == res["limits"]["memory"]
    cores = quantity(res["limits"]["cpu"])
    assert settings.limits.max_streams <= CAPACITY_STREAMS * cores / CAPACITY_CORES
    assert quantity(res["limits"]["memory"]) >= 1.5 * RSS_AT_CAPACITY
    assert settings.model.workers * settings.model.cpu_threads <= cores


@overlays
def test_every_server_variable_is_a_server_setting(overlay: str) -> None:
    objs = render(overlay)
    settings, env = server_settings(objs)
    ours = {k for k in env if k.startswith("TRANSCRIBE_")}
    assert ours - env.read == set(), "set in the manifests but never read by the server"
    assert set(env) - ours <= FOREIGN_ENV
    assert settings.storage.backend == "dynamodb"
    assert settings.auth == "api-key" and settings.api_keys_file
    assert settings.metrics_port and settings.host == "0.0.0.0"


@overlays
def test_every_bridge_variable_is_a_bridge_setting(overlay: str) -> None:
    objs = render(overlay)
    env = RecordingEnv(container_env(objs, container(objs, BRIDGE)))
    bridge = build_bridge_settings([], environ=env)
    assert set(env) - env.read == set(), "set in the manifests but never read by the bridge"
    assert set(env) <= {k for k in env if k.startswith("TRANSCRIBE_BRIDGE_")}
    service = find(objs, "Service", SERVER)
    port = service["spec"]["ports"][0]["port"]
    assert bridge.grpc_target == f"dns:///{SERVER}:{port}"
    assert port_number(container(objs, BRIDGE), "http") == bridge.port


def test_table_creation_is_off_in_production_and_on_in_dev() -> None:
    prod, _ = server_settings(render("overlays/production"))
    dev, _ = server_settings(render("overlays/dev"))
    assert not prod.storage.dynamodb_create_tables
    assert not prod.storage.dynamodb_endpoint  # AWS itself
    assert dev.storage.dynamodb_create_tables
    assert find(render("overlays/dev"), "Service", "dynamodb-local")
    assert dev.storage.dynamodb_endpoint == "http://dynamodb-local:8000"


@overlays
def test_api_keys_come_from_a_secret(overlay: str) -> None:
    objs = render(overlay)
    settings, _ = server_settings(objs)
    pod = find(objs, "Deployment", SERVER)["spec"]["template"]["spec"]
    mount = next(
        m
        for m in container(objs, SERVER)["volumeMounts"]
        if settings.api_keys_file.startswith(m["mountPath"] + "/")
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert settings.api_keys_file == mount["mountPath"] + "/keys"
    name = volume["secret"]["secretName"]
    if overlay == "overlays/dev":  # generated; production's is created out of band
        assert "keys" in find(objs, "Secret", "transcribe-api-keys")["data"]
        assert name.startswith("transcribe-api-keys-")
    else:
        assert name == "transcribe-api-keys"
        assert not [o for o in objs if o["kind"] == "Secret"]
    assert "TRANSCRIBE_API_KEYS" not in container_env(objs, container(objs, SERVER))


@overlays
def test_hpa_scales_the_server_on_its_active_streams_gauge(overlay: str) -> None:
    objs = render(overlay)
    hpa = find(objs, "HorizontalPodAutoscaler", SERVER)["spec"]
    settings, _ = server_settings(objs)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVER}
    streams = next(m for m in hpa["metrics"] if m["type"] == "Pods")["pods"]
    exported = {m.name for m in Metrics().registry.collect() if m.type == "gauge"}
    assert streams["metric"]["name"] in exported
    # New replicas start before the old ones are full.
    assert 0 < float(streams["target"]["averageValue"]) < settings.limits.max_streams
    cpu = next(m for m in hpa["metrics"] if m["type"] == "Resource")["resource"]
    assert cpu["name"] == "cpu"
    assert "replicas" not in find(objs, "Deployment", SERVER)["spec"]  # the HPA owns it


@overlays
def test_server_service_is_headless_on_the_grpc_port(overlay: str) -> None:
    objs = render(overlay)
    spec = find(objs, "Service", SERVER)["spec"]
    pod_labels = find(objs, "Deployment", SERVER)["spec"]["template"]["metadata"]["labels"]
    assert spec["clusterIP"] == "None"
    assert matches(spec["selector"], pod_labels)
    assert [p["targetPort"] for p in spec["ports"]] == ["grpc"]


@overlays
def test_only_the_bridge_and_labelled_clients_reach_the_server(overlay: str) -> None:
    objs = render(overlay)
    policy = find(objs, "NetworkPolicy", SERVER)["spec"]
    server_pod = find(objs, "Deployment", SERVER)["spec"]["template"]["metadata"]
    bridge_labels = find(objs, "Deployment", BRIDGE)["spec"]["template"]["metadata"]["labels"]
    assert matches(policy["podSelector"]["matchLabels"], server_pod["labels"])
    assert policy["policyTypes"] == ["Ingress"]
    grpc_rule, metrics_rule = policy["ingress"]
    assert grpc_rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    sources: list[dict[str, Any]] = grpc_rule["from"]
    assert all("ipBlock" not in s for s in sources)
    assert matches(sources[0]["podSelector"]["matchLabels"], bridge_labels)
    assert sources[1]["podSelector"]["matchLabels"] == {"transcribe.example.com/client": "true"}
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    settings, _ = server_settings(objs)
    assert port_number(container(objs, SERVER), "metrics") == settings.metrics_port
    assert server_pod["annotations"]["prometheus.io/port"] == str(settings.metrics_port)


@overlays
def test_disruption_budget_covers_the_server(overlay: str) -> None:
    objs = render(overlay)
    pdb = find(objs, "PodDisruptionBudget", SERVER)["spec"]
    labels = find(objs, "Deployment", SERVER)["spec"]["template"]["metadata"]["labels"]
    assert matches(pdb["selector"]["matchLabels"], labels)
    assert pdb["maxUnavailable"] == 1


@overlays
def test_pods_run_as_the_images_non_root_user(overlay: str) -> None:
    objs = render(overlay)
    for name in (SERVER, BRIDGE):
        pod = find(objs, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # deploy/Containerfile's USER
        assert pod["automountServiceAccountToken"] is False
