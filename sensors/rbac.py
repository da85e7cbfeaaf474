"""The sensors' ServiceAccount and what it may do: create Workflows, and read the registered
WorkflowTemplates they start from, in the WorkflowTemplates' namespace; nothing else.

The ``argoWorkflow`` trigger runs ``argo submit`` as this account (which reads the referenced
template to check the Workflow) and then lists Workflows by the labels it set to find the run.
NATS and HTTP triggers use no Kubernetes API; the Secrets they read are mounted by the
controller. Plain dicts: the pinned schemas do not cover core Kubernetes kinds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sensors.config import LABELS, SERVICE_ACCOUNT, EventsConfig


def _metadata(namespace: str) -> dict[str, Any]:
    labels = {**LABELS, "app.kubernetes.io/name": SERVICE_ACCOUNT}
    return {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": labels}


def rbac_documents(config: EventsConfig, templates: Iterable[str]) -> list[dict[str, Any]]:
    """ServiceAccount (the sensors' namespace), Role and RoleBinding (the templates' one)."""
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(config.namespace),
    }
    rules = [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "list"]},
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtemplates"],
            "resourceNames": sorted(set(templates)),
            "verbs": ["get"],
        },
    ]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(config.workflows_namespace),
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(config.workflows_namespace),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": SERVICE_ACCOUNT,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": config.namespace}
        ],
    }
    return [account, role, binding]
