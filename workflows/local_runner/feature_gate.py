"""The feature gate: what argo-local cannot run is refused, naming the field, before it runs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .expressions import evaluate_when
from .model import UnsupportedFeatureError
from .resource import check_outputs, check_resource
from .retrying import RETRY_POLICIES, parse_retry_expression
from .synchronization import check_synchronization
from .templating import VARIABLE

# Template fields: what argo-local does with each. Anything else is refused.
_HONOURED = {"name", "inputs", "outputs", "steps", "dag", "script", "container", "parallelism"}
_HONOURED |= {"retryStrategy", "failFast", "timeout", "activeDeadlineSeconds", "synchronization"}
_HONOURED |= {"resource"}
_CLUSTER_ONLY = {"metadata", "nodeSelector", "tolerations", "affinity", "serviceAccountName"}
_CLUSTER_ONLY |= {"podSpecPatch", "priorityClassName", "securityContext", "volumes"}
_CLUSTER_ONLY |= {"automountServiceAccountToken", "archiveLocation", "hostAliases"}
_CLUSTER_ONLY |= {"schedulerName", "executor", "priority"}
_STEP_FIELDS = {"name", "template", "arguments", "withParam", "withItems", "when"}
_TASK_FIELDS = _STEP_FIELDS | {"dependencies", "depends"}
_DAG_FIELDS = {"tasks", "target", "failFast"}
_SPEC_HONOURED = {"entrypoint", "arguments", "templates", "onExit", "parallelism"}
_SPEC_HONOURED |= {"synchronization", "activeDeadlineSeconds"}
_SPEC_CLUSTER_ONLY = {"serviceAccountName", "podGC", "ttlStrategy", "nodeSelector"}
_SPEC_CLUSTER_ONLY |= {"tolerations", "affinity", "volumes", "volumeClaimTemplates"}
_SPEC_CLUSTER_ONLY |= {"artifactRepositoryRef", "workflowMetadata", "podMetadata", "priority"}
_SPEC_CLUSTER_ONLY |= {"imagePullSecrets", "securityContext"}
_SPEC_CLUSTER_ONLY |= {"archiveLogs", "podPriorityClassName", "schedulerName"}


def check_supported(workflow: Mapping[str, Any]) -> None:
    """Refuse, naming the field, a document that uses what argo-local cannot run."""
    spec = workflow.get("spec")
    if not isinstance(spec, dict):
        raise UnsupportedFeatureError("the document has no spec")
    expression = re.search(r"\{\{\s*=[^}]*\}\}", json.dumps(spec))
    if expression:
        raise UnsupportedFeatureError(f"expressions ({expression.group(0)}) are not supported")
    _check_keys("spec", spec, _SPEC_HONOURED | _SPEC_CLUSTER_ONLY)
    check_synchronization("spec", spec.get("synchronization"))
    _check_seconds("spec.activeDeadlineSeconds", spec.get("activeDeadlineSeconds"))
    for i, tmpl in enumerate(spec.get("templates", [])):
        _check_template(f"spec.templates[{i}] ({tmpl.get('name')})", tmpl)


def _check_keys(where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UnsupportedFeatureError(f"{where}: argo-local does not support {', '.join(unknown)}")


def _check_template(where: str, tmpl: Mapping[str, Any]) -> None:
    _check_keys(where, tmpl, _HONOURED | _CLUSTER_ONLY)
    kinds = [k for k in ("steps", "dag", "script", "container", "resource") if k in tmpl]
    if len(kinds) != 1:
        raise UnsupportedFeatureError(
            f"{where}: needs exactly one of steps, dag, script, container, resource (has {kinds})"
        )
    if "resource" in tmpl:
        check_resource(where, tmpl["resource"])
        check_outputs(where, tmpl)
    if tmpl.get("inputs", {}).get("artifacts"):
        raise UnsupportedFeatureError(f"{where}: input artifacts are not supported")
    _check_retry(where, tmpl.get("retryStrategy"))
    check_synchronization(where, tmpl.get("synchronization"))
    _check_seconds(f"{where}.activeDeadlineSeconds", tmpl.get("activeDeadlineSeconds"))
    _check_boolean(f"{where}.failFast", tmpl.get("failFast"))
    for group_index, group in enumerate(tmpl.get("steps") or []):
        for j, step in enumerate(group):
            _check_keys(f"{where}.steps[{group_index}][{j}]", step, _STEP_FIELDS)
            _check_when(f"{where}.steps[{group_index}][{j}]", step)
    if "dag" in tmpl:
        _check_dag(f"{where}.dag", tmpl["dag"])
    for step_kind in ("script", "container"):
        if step_kind in tmpl and "command" not in tmpl[step_kind]:
            raise UnsupportedFeatureError(
                f"{where}: {step_kind} without a command (the image's entrypoint is unknown)"
            )


def _check_retry(where: str, retry: Mapping[str, Any] | None) -> None:
    if retry is None:
        return
    if "expression" in retry:
        try:
            parse_retry_expression(str(retry["expression"]))
        except ValueError as exc:
            raise UnsupportedFeatureError(f"{where}: retryStrategy.expression: {exc}") from None
    if "limit" not in retry:
        raise UnsupportedFeatureError(f"{where}: a retryStrategy without a limit")
    if retry.get("retryPolicy", "OnFailure") not in RETRY_POLICIES:
        raise UnsupportedFeatureError(
            f"{where}: retryPolicy {retry['retryPolicy']!r} (known: {RETRY_POLICIES})"
        )


def _check_dag(where: str, dag: Mapping[str, Any]) -> None:
    _check_keys(where, dag, _DAG_FIELDS)
    _check_boolean(f"{where}.failFast", dag.get("failFast"))
    tasks = dag.get("tasks", [])
    for j, task in enumerate(tasks):
        _check_keys(f"{where}.tasks[{j}]", task, _TASK_FIELDS)
        _check_when(f"{where}.tasks[{j}]", task)
    names = {task.get("name") for task in tasks}
    for target in str(dag.get("target") or "").split():
        if not VARIABLE.search(target) and target not in names:  # a variable is checked on use
            raise UnsupportedFeatureError(f"{where}.target: target {target!r} is not defined")


def _check_seconds(where: str, value: Any) -> None:
    """Refuse a deadline argo-local cannot read (a variable, a word): whole seconds only."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return
    if not (isinstance(value, str) and value.strip().isdigit()):
        raise UnsupportedFeatureError(f"{where}: {value!r} is not a number of seconds")


def _check_boolean(where: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise UnsupportedFeatureError(f"{where}: {value!r} is not a boolean")


def _check_when(where: str, step: Mapping[str, Any]) -> None:
    """Refuse a ``when`` that argo-local cannot evaluate (variables read as a bare word)."""
    if "when" not in step:
        return
    try:
        evaluate_when(VARIABLE.sub("x", str(step["when"])))
    except ValueError as exc:
        raise UnsupportedFeatureError(f"{where}.when: {exc}") from None
