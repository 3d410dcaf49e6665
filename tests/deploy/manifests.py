"""Render the kustomize overlays and look things up in the result, for the deploy tests.

Rendering uses kustomize itself, as built into kubectl (`kubectl kustomize`, offline):
the machine image has kubectl. Validation uses the Kubernetes JSON schemas shipped in
the kubernetes-validate package (offline, strict: unknown fields are errors).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML has no type hints (nor types-PyYAML here)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("base", "overlays/dev", "overlays/production")
SERVER = "transcribe-server"
BRIDGE = "transcribe-bridge"

Obj = dict[str, Any]


@functools.cache
def render(overlay: str) -> tuple[Obj, ...]:
    """Every object `kubectl kustomize deploy/k8s/<overlay>` produces."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl (with its built-in kustomize) is needed to render deploy/k8s")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def find(objs: tuple[Obj, ...], kind: str, name: str) -> Obj:
    """The object of `kind` whose name is `name` (a generated ConfigMap or Secret has a
    hash suffix after it)."""
    hits = [
        o
        for o in objs
        if o["kind"] == kind
        and (o["metadata"]["name"] == name or o["metadata"]["name"].startswith(name + "-"))
    ]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} objects"
    return hits[0]


def container(objs: tuple[Obj, ...], deployment: str) -> Obj:
    containers = find(objs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Obj = containers[0]
    return result


def container_env(objs: tuple[Obj, ...], c: Obj) -> dict[str, str]:
    """The environment a container gets: its envFrom ConfigMaps, then its env entries."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"unexpected envFrom {source}"
        env.update(find(objs, "ConfigMap", source["configMapRef"]["name"]).get("data", {}))
    for entry in c.get("env", []):
        assert "value" in entry, f"{entry['name']}: only literal values are used"
        env[entry["name"]] = entry["value"]
    return env


def port_number(c: Obj, name: str) -> int:
    ports = [p["containerPort"] for p in c["ports"] if p["name"] == name]
    assert len(ports) == 1, f"no port named {name}"
    return int(ports[0])


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def workloads(objs: tuple[Obj, ...]) -> Iterator[Obj]:
    for o in objs:
        if o["kind"] == "Deployment":
            yield o


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers which variables were looked up, to prove that a
    settings builder reads every variable a manifest sets."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self._values.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)
