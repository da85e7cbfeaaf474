"""The bridge's Kubernetes manifests, checked structurally (no pinned Kubernetes schema here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bridge.deploy import dump_manifests, render_manifests, write_manifests
from components.settings import Settings, get_settings

LITERALS: dict[str, Any] = {
    "nats_user": "literal-nats-user",
    "nats_password": "literal-nats-password",
    "nats_token": "literal-nats-token",
    "kfp_token": "literal-kfp-token",
    "argo_token": "literal-argo-token",
    "s3_access_key": "literal-s3-access",
    "s3_secret_key": "literal-s3-secret",
    "milvus_token": "literal-milvus-token",
}


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds))
    return {d["kind"]: d for d in docs}


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_kinds_api_versions_and_namespace() -> None:
    docs = render_manifests(Settings(bridge_namespace="pipelines"))
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ]
    for doc in docs:
        assert doc["metadata"]["namespace"] == "pipelines"
        assert doc["metadata"]["name"] == "llmw-bridge"


def test_rbac_allows_only_workflows_in_its_namespace() -> None:
    docs = _by_kind(render_manifests(Settings()))
    assert not {"ClusterRole", "ClusterRoleBinding"} & set(docs)
    assert docs["Role"]["rules"] == [
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflows"],
            "verbs": ["create", "get", "list", "watch"],
        },
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["get"]},
    ]
    binding = docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": docs["Role"]["metadata"]["name"],
    }
    account = docs["ServiceAccount"]["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"]


def test_deployment_ports_probes_service_and_monitor_agree() -> None:
    settings = Settings(bridge_http_port=9310, cluster_nats_url="nats://nats.nats.svc:4222")
    docs = render_manifests(settings)
    kinds = _by_kind(docs)
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    template = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= template["metadata"]["labels"].items()
    )
    container = _container(docs)
    assert container["command"] == ["llmw", "bridge"]
    assert container["ports"] == [{"name": "http", "containerPort": 9310, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = {e["name"]: e for e in container["env"]}
    assert env["LLMW_NATS_URL"] == {"name": "LLMW_NATS_URL", "value": "nats://nats.nats.svc:4222"}
    assert env["LLMW_BRIDGE_HTTP_PORT"]["value"] == "9310"
    assert env["LLMW_BRIDGE_HTTP_HOST"]["value"] == "0.0.0.0"
    assert all(isinstance(e.get("value", ""), str) for e in container["env"])

    service = kinds["Service"]["spec"]
    assert service["selector"].items() <= template["metadata"]["labels"].items()
    assert service["ports"] == [{"name": "http", "port": 9310, "targetPort": "http"}]
    monitor = kinds["ServiceMonitor"]["spec"]
    assert (
        monitor["selector"]["matchLabels"].items() <= kinds["Service"]["metadata"]["labels"].items()
    )
    assert monitor["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]


def test_hardening_resources_and_drain_time() -> None:
    docs = render_manifests(Settings())
    pod = _by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    container = _container(docs)
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert set(container["resources"]) == {"requests", "limits"}
    for part in ("requests", "limits"):
        assert set(container["resources"][part]) == {"cpu", "memory"}
    assert pod["terminationGracePeriodSeconds"] >= 60
    # The read-only root filesystem still leaves a writable /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]


def test_image_is_the_bridge_image_or_the_component_image() -> None:
    assert _container(render_manifests(Settings(component_image="reg/c:1")))["image"] == "reg/c:1"
    both = Settings(component_image="reg/c:1", bridge_image="reg/b:2")
    assert _container(render_manifests(both))["image"] == "reg/b:2"


def test_credentials_only_by_secret_reference(tmp_path: Path) -> None:
    files: dict[str, Any] = {}
    for field in ("nats_tls_ca_file", "nats_tls_cert_file", "nats_tls_key_file"):
        path = tmp_path / field
        path.write_text(f"literal-content-of-{field}")
        files[field] = path
    settings = Settings(
        **LITERALS,
        **files,
        bridge_nats_secret="nats-creds",
        bridge_engine_secret="engine-creds",
    )
    docs = render_manifests(settings)
    text = dump_manifests(docs)
    for literal in [*LITERALS.values(), "literal-content-of", str(tmp_path)]:
        assert literal not in text

    container = _container(docs)
    env = {e["name"]: e for e in container["env"]}
    expected = {
        "LLMW_NATS_USER": "nats-creds",
        "LLMW_NATS_PASSWORD": "nats-creds",
        "LLMW_NATS_TOKEN": "nats-creds",
        "LLMW_KFP_TOKEN": "engine-creds",
        "LLMW_ARGO_TOKEN": "engine-creds",
    }
    for name, secret in expected.items():
        assert env[name] == {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": name, "optional": True}},
        }
    # Every env entry is a plain non-secret value or a secretKeyRef, nothing else.
    for entry in container["env"]:
        assert set(entry) in ({"name", "value"}, {"name", "valueFrom"})
        if "valueFrom" in entry:
            assert set(entry["valueFrom"]) == {"secretKeyRef"}
    # The TLS files in use come from the same Secret, mounted read-only.
    pod = _by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "nats-creds"
    assert [i["key"] for i in volume["secret"]["items"]] == [
        "LLMW_NATS_TLS_CA_FILE",
        "LLMW_NATS_TLS_CERT_FILE",
        "LLMW_NATS_TLS_KEY_FILE",
    ]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    for key in ("LLMW_NATS_TLS_CA_FILE", "LLMW_NATS_TLS_CERT_FILE", "LLMW_NATS_TLS_KEY_FILE"):
        assert env[key]["value"] == f"{mount['mountPath']}/{key}"
    assert "LLMW_NATS_CREDS_FILE" not in env
    # Without file settings nothing is mounted from the Secret.
    plain = _by_kind(render_manifests(Settings()))["Deployment"]["spec"]["template"]["spec"]
    assert all("secret" not in v for v in plain["volumes"])


def test_a_port_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="LLMW_BRIDGE_HTTP_PORT"):
        render_manifests(Settings(bridge_http_port=0))


def test_written_yaml_is_byte_identical_and_parses_back(tmp_path: Path) -> None:
    settings = Settings(cluster_nats_url="nats://nats:4222", bridge_namespace="ai-ml")
    (first,) = write_manifests(tmp_path / "a", settings)
    assert first == tmp_path / "a" / "bridge" / "bridge.k8s.yaml"
    import workflows.render  # noqa: F401  (imports hera, which changes PyYAML's global style)

    (second,) = write_manifests(tmp_path / "b", settings)
    assert first.read_bytes() == second.read_bytes()
    assert list(yaml.safe_load_all(first.read_text())) == render_manifests(settings)
    assert first.read_text().count("\n---\n") == 5


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """get_settings() is cached once per process; clear it around a test that sets LLMW_*."""
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_llmw_compile_writes_the_bridge_manifests(
    tmp_path: Path, schemas_dir: Path, fresh_settings: pytest.MonkeyPatch
) -> None:
    from llmw.cli import app

    fresh_settings.setenv("LLMW_SCHEMAS_DIR", str(schemas_dir))
    fresh_settings.setenv("LLMW_BRIDGE_NAMESPACE", "bridge-ns")
    fresh_settings.setenv("LLMW_NATS_PASSWORD", "literal-from-env")
    result = CliRunner().invoke(app, ["compile", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / "bridge" / "bridge.k8s.yaml"
    assert str(path) in result.output
    text = path.read_text()
    assert "literal-from-env" not in text
    docs = list(yaml.safe_load_all(text))
    assert {d["metadata"]["namespace"] for d in docs} == {"bridge-ns"}
    assert docs == render_manifests(Settings(schemas_dir=schemas_dir, bridge_namespace="bridge-ns"))
