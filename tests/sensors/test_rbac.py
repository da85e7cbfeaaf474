"""The sensors' ServiceAccount: create Workflows from the registered templates, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.registry import JOBS
from components.settings import Settings
from sensors.config import SERVICE_ACCOUNT
from sensors.render import documents


def by_kind(found: Any) -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in found.rbac}


def test_least_privilege(docs: Any) -> None:
    rbac = by_kind(docs)
    assert set(rbac) == {"ServiceAccount", "Role", "RoleBinding"}
    rules = rbac["Role"]["rules"]
    assert rules == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "list"]},
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtemplates"],
            "resourceNames": sorted(JOBS),
            "verbs": ["get"],
        },
    ]
    for rule in rules:  # no wildcard anywhere, no other group, no Secrets, pods or deletes
        assert "*" not in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]]
        assert not {"delete", "patch", "update", "deletecollection"} & set(rule["verbs"])


def test_every_sensor_runs_as_the_account(docs: Any) -> None:
    for sensor in docs.sensors.values():
        assert sensor["spec"]["template"] == {"serviceAccountName": SERVICE_ACCOUNT}


def test_the_role_lives_with_the_templates_and_binds_the_sensors_account(
    clean_env: None, schemas_dir: Path
) -> None:
    found = documents(Settings(argo_namespace="workflows", events_namespace="events"), schemas_dir)
    rbac = by_kind(found)
    assert rbac["ServiceAccount"]["metadata"]["namespace"] == "events"
    assert rbac["Role"]["metadata"]["namespace"] == "workflows"
    binding = rbac["RoleBinding"]
    assert binding["metadata"]["namespace"] == "workflows"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": SERVICE_ACCOUNT,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": "events"}
    ]
    for name, document in [*found.sensors.items(), *found.event_sources.items()]:
        assert document["metadata"]["namespace"] == "events", name
