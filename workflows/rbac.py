"""The ServiceAccounts the WorkflowTemplates run as, and what each may do: least privilege.

Each job runs as its own ServiceAccount (``workflows.common.service_account``). All of them get
what Argo's executor needs and nothing else (Argo 3.4 and later: create and patch
``workflowtaskresults``, through which the wait container reports a step's outputs; the emissary
executor reads no pods). A job whose template has ``resource`` templates (the model rollout
patching a RayService or an InferenceService) gets a Role of its own in each namespace those
resources live in, derived from the rendered templates themselves: per manifest kind, the verbs
its action needs (plus ``get`` for its success and failure conditions and outputs), restricted
to the resource's name when the manifest names it literally. So a template that stops patching
something loses the right with it.

Plain dicts, validated against the Kubernetes definitions the pinned Argo Events schema embeds
(``ServiceAccount``, ``Role``, ``RoleBinding``: ``K8S_SCHEMA_FILE``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

K8S_SCHEMA_FILE = "argo-events-v1.9.11.schema.json"
EXECUTOR_ROLE = "llmw-workflow-executor"
RBAC_GROUP = "rbac.authorization.k8s.io"
LABELS = {"app.kubernetes.io/part-of": "llm-workflows", "app.kubernetes.io/managed-by": "llmw"}
# The rights the Argo executor (v3.4 and later) needs in the workflow's namespace.
EXECUTOR_RULES = [
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflowtaskresults"],
        "verbs": ["create", "patch"],
    }
]
# What each resource-template action runs (kubectl) needs; create cannot be limited by name.
ACTION_VERBS = {
    "get": ["get"],
    "create": ["create"],
    "apply": ["create", "get", "patch"],
    "patch": ["get", "patch"],
    "replace": ["get", "update"],
    "delete": ["delete"],
}
# The kinds a resource template may manage, by (API group, kind): their resource (plural) name.
RESOURCE_PLURALS = {
    ("ray.io", "RayService"): "rayservices",
    ("serving.kserve.io", "InferenceService"): "inferenceservices",
}
_VARIABLE = re.compile(r"\{\{[^}]*\}\}")
_TEMPLATED = "llmw-templated-value"


def _metadata(name: str, namespace: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {**LABELS, "app.kubernetes.io/name": name},
    }


def _role(name: str, namespace: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "Role",
        "metadata": _metadata(name, namespace),
        "rules": rules,
    }


def _binding(
    name: str, namespace: str, accounts: Iterable[str], accounts_namespace: str
) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(name, namespace),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": name},
        "subjects": [
            {"kind": "ServiceAccount", "name": account, "namespace": accounts_namespace}
            for account in accounts
        ],
    }


def _manifest(template: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A resource template's manifest, its ``{{…}}`` variables read as a placeholder."""
    resource = template["resource"]
    if "manifest" not in resource:
        raise ValueError(f"{where}: a resource template without an inline manifest")
    manifest = yaml.safe_load(_VARIABLE.sub(_TEMPLATED, str(resource["manifest"])))
    if not isinstance(manifest, dict) or "kind" not in manifest:
        raise ValueError(f"{where}: the resource manifest has no kind")
    return manifest


def resource_rules(document: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Namespace -> the rules the document's resource templates need there (none: empty)."""
    namespace = str(document["metadata"]["namespace"])
    wanted: dict[tuple[str, str, str, str | None], set[str]] = {}
    for template in document["spec"].get("templates", []):
        if "resource" not in template:
            continue
        where = f"{document['metadata']['name']} template {template['name']!r}"
        manifest = _manifest(template, where)
        group = str(manifest.get("apiVersion", "")).rpartition("/")[0]
        plural = RESOURCE_PLURALS.get((group, str(manifest["kind"])))
        if plural is None:
            known = ", ".join(f"{k} ({g})" for g, k in sorted(RESOURCE_PLURALS))
            raise ValueError(f"{where}: no RBAC known for {manifest['kind']} (known: {known})")
        meta = manifest.get("metadata") or {}
        target = str(meta.get("namespace") or namespace)
        if _TEMPLATED in target:
            raise ValueError(f"{where}: the manifest's namespace must be literal for its RBAC")
        name = meta.get("name")
        name = None if name is None or _TEMPLATED in str(name) else str(name)
        resource = template["resource"]
        action = str(resource.get("action", ""))
        if action not in ACTION_VERBS:
            raise ValueError(f"{where}: resource action {action!r} (known: {sorted(ACTION_VERBS)})")
        verbs = set(ACTION_VERBS[action])
        if resource.get("successCondition") or resource.get("failureCondition"):
            verbs.add("get")
        if template.get("outputs", {}).get("parameters"):
            verbs.add("get")
        for verb in verbs:
            key = (target, group, plural, None if verb == "create" else name)
            wanted.setdefault(key, set()).add(verb)
    return _rules_by_namespace(wanted)


def _rules_by_namespace(
    wanted: Mapping[tuple[str, str, str, str | None], set[str]],
) -> dict[str, list[dict[str, Any]]]:
    """Merge the verbs by (namespace, group, resource, name) into rules, sorted."""
    rules: dict[str, list[dict[str, Any]]] = {}
    for (target, group, plural, name), verbs in sorted(
        wanted.items(), key=lambda item: tuple(str(part) for part in item[0])
    ):
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [plural]}
        if name is not None:
            rule["resourceNames"] = [name]
        rule["verbs"] = sorted(verbs)
        rules.setdefault(target, []).append(rule)
    return rules


def rbac_documents(documents: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """ServiceAccounts, the executor's Role and RoleBinding, then each job's own Role and
    RoleBinding where its resource templates need them; ``documents``: name -> template."""
    by_namespace: dict[str, list[str]] = {}
    extra: list[dict[str, Any]] = []
    for name in sorted(documents):
        document = documents[name]
        namespace = str(document["metadata"]["namespace"])
        account = str(document["spec"]["serviceAccountName"])
        by_namespace.setdefault(namespace, []).append(account)
        for target, rules in resource_rules(document).items():
            extra += [
                _role(account, target, rules),
                _binding(account, target, [account], namespace),
            ]
    accounts = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(account, namespace)}
        for namespace, names in sorted(by_namespace.items())
        for account in sorted(set(names))
    ]
    executor = [
        doc
        for namespace, names in sorted(by_namespace.items())
        for doc in (
            _role(EXECUTOR_ROLE, namespace, EXECUTOR_RULES),
            _binding(EXECUTOR_ROLE, namespace, sorted(set(names)), namespace),
        )
    ]
    return accounts + executor + extra
