"""The bridge's Kubernetes manifests: ServiceAccount, Role, RoleBinding, Deployment, Service,
ServiceMonitor. Credentials come from Secrets by reference, never as values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.settings import Settings

NAME = "llmw-bridge"
MANIFEST = Path("bridge") / "bridge.k8s.yaml"
LABELS = {
    "app.kubernetes.io/name": NAME,
    "app.kubernetes.io/component": "bridge",
    "app.kubernetes.io/part-of": "llm-workflows",
}
SELECTOR = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "bridge"}
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
# Long enough for SIGTERM's drain: stop fetching, finish in-flight submissions, flush statuses.
TERMINATION_GRACE_S = 60
RUN_AS = 65532  # the conventional "nonroot" uid/gid
NATS_FILES_DIR = "/etc/llmw/nats"
# Secret keys follow the variable names. For the *_FILE settings the key holds the file itself,
# mounted under NATS_FILES_DIR; only the ones set in the rendering settings are projected.
NATS_SECRET_ENV = ("LLMW_NATS_USER", "LLMW_NATS_PASSWORD", "LLMW_NATS_TOKEN")
NATS_SECRET_FILES = (
    "nats_nkey_seed_file",
    "nats_creds_file",
    "nats_tls_ca_file",
    "nats_tls_cert_file",
    "nats_tls_key_file",
)
ENGINE_SECRET_ENV = ("LLMW_KFP_TOKEN", "LLMW_ARGO_TOKEN")
# Plain settings the bridge reads, passed through as they are in the rendering settings.
PLAIN_SETTINGS = (
    "bridge_stream",
    "bridge_consumer",
    "bridge_kv_bucket",
    "bridge_max_message_bytes",
    "bridge_ack_wait_s",
    "bridge_max_deliver",
    "bridge_workers",
    "bridge_poll_s",
    "bridge_fetch_batch",
    "bridge_max_in_flight",
    "bridge_retry_base_s",
    "bridge_retry_max_s",
    "bridge_http_port",
    "kfp_host",
    "kfp_namespace",
    "kfp_ui_url",
    "argo_host",
    "argo_namespace",
    "argo_ui_url",
    "argo_verify_tls",
    "component_image",
    "s3_credentials_secret",
    "milvus_credentials_secret",
    "cluster_milvus_uri",
)


def _env_name(field: str) -> str:
    return f"LLMW_{field.upper()}"


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _metadata(settings: Settings, name: str = NAME) -> dict[str, Any]:
    return {"name": name, "namespace": settings.bridge_namespace, "labels": dict(LABELS)}


def _secret_env(name: str, secret: str) -> dict[str, Any]:
    ref = {"name": secret, "key": name, "optional": True}
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _env(settings: Settings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": _env_name(f), "value": _text(getattr(settings, f))} for f in PLAIN_SETTINGS
    ]
    # The pod must answer the kubelet's probes on its own IP, whatever host the settings name.
    env.append({"name": "LLMW_NATS_URL", "value": settings.cluster_nats_url})
    env.append({"name": "LLMW_BRIDGE_HTTP_HOST", "value": "0.0.0.0"})
    # A read-only root filesystem: anything that writes under $HOME writes to the /tmp volume.
    env.append({"name": "HOME", "value": "/tmp"})
    env += [_secret_env(n, settings.bridge_nats_secret) for n in NATS_SECRET_ENV]
    env += [_secret_env(n, settings.bridge_engine_secret) for n in ENGINE_SECRET_ENV]
    env += [
        {"name": _env_name(f), "value": f"{NATS_FILES_DIR}/{_env_name(f)}"}
        for f in _files(settings)
    ]
    return env


def _files(settings: Settings) -> list[str]:
    """The NATS *_FILE settings in use, so their Secret keys are mounted."""
    return [f for f in NATS_SECRET_FILES if getattr(settings, f) is not None]


def _volumes(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    files = _files(settings)
    if files:
        items = [{"key": _env_name(f), "path": _env_name(f)} for f in files]
        secret = {
            "secretName": settings.bridge_nats_secret,
            "items": items,
            "defaultMode": 0o440,
            "optional": True,
        }
        volumes.append({"name": "nats-credentials", "secret": secret})
        mounts.append({"name": "nats-credentials", "mountPath": NATS_FILES_DIR, "readOnly": True})
    return volumes, mounts


def _probe(path: str, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": 5,
        "periodSeconds": period_s,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _deployment(settings: Settings) -> dict[str, Any]:
    if settings.bridge_http_port == 0:
        raise ValueError(
            "LLMW_BRIDGE_HTTP_PORT is 0 (any free port): a Deployment needs a fixed one"
        )
    volumes, mounts = _volumes(settings)
    container = {
        "name": "bridge",
        "image": settings.bridge_image or settings.component_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["llmw", "bridge"],
        "ports": [{"name": "http", "containerPort": settings.bridge_http_port, "protocol": "TCP"}],
        "env": _env(settings),
        "livenessProbe": _probe("/healthz", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 2),
        "resources": {k: dict(v) for k, v in RESOURCES.items()},
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    pod_spec = {
        "serviceAccountName": NAME,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(settings),
        "spec": {
            "replicas": 1,
            # Recreate, not a rolling update: the old pod drains (stops fetching, finishes its
            # in-flight submissions) before the new one starts, so one bridge consumes at a time.
            # Requests published meanwhile wait in the stream (24 h); the KV claims would keep
            # each run unique even if two bridges overlapped, but the handover stays simple.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod_spec},
        },
    }


def render_manifests(settings: Settings) -> list[dict[str, Any]]:
    """The bridge's manifests in ``settings.bridge_namespace``, in apply order; deterministic."""
    namespace = settings.bridge_namespace
    service_account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(settings),
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(settings),
        "rules": [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflows"],
                "verbs": ["create", "get", "list", "watch"],
            },
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["get"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(settings),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(settings),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(SELECTOR),
            "ports": [{"name": "http", "port": settings.bridge_http_port, "targetPort": "http"}],
        },
    }
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(settings),
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    }
    return [service_account, role, binding, _deployment(settings), service, monitor]


class _ManifestDumper(yaml.SafeDumper):
    """Our own string style: PyYAML's is process-global and hera changes it on import."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def dump_manifests(documents: list[dict[str, Any]]) -> str:
    """Multi-document YAML, keys in the order built, byte-identical for equal input."""
    text: str = yaml.dump_all(
        documents, Dumper=_ManifestDumper, sort_keys=False, default_flow_style=False, width=1 << 16
    )
    return text


def write_manifests(out_dir: Path, settings: Settings) -> list[Path]:
    """Write ``<out_dir>/bridge/bridge.k8s.yaml``; returns the files written."""
    text = dump_manifests(render_manifests(settings))
    path = out_dir / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return [path]
