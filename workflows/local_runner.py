"""argo-local: run a rendered Argo WorkflowTemplate on this machine, faithfully but small.

No Argo tool runs a workflow without a cluster (hera#1492), so this module executes the rendered
document itself, the way the Argo controller and executor would, for the features this project
uses:

- ``steps`` templates (groups in order, the steps of a group side by side) and ``dag`` templates
  (tasks in dependency order, by ``dependencies`` or a ``depends`` of task names joined by
  ``&&``, run in waves of ready tasks);
- ``script`` templates, run like the executor does: the substituted ``source`` is written to a
  file that is appended to ``command + args``. For a Hera runner step that is
  ``python -m hera.workflows.runner -e module:function <file>``, the file holding
  ``{{inputs.parameters}}`` as JSON. ``container`` templates run ``command + args``. ``python``
  (or ``python3``) means this interpreter; every command runs in a subprocess;
- variables: ``{{inputs.parameters.x}}``, ``{{inputs.parameters}}`` (the JSON list),
  ``{{workflow.parameters.x}}``, ``{{workflow.name}}``, ``{{workflow.namespace}}``,
  ``{{workflow.uid}}``, ``{{workflow.status}}``, ``{{workflow.failures}}`` (exit handler),
  ``{{item}}``/``{{item.key}}``, ``{{steps.X.outputs.result}}``,
  ``{{steps.X.outputs.parameters.y}}``, ``{{steps.X.outputs.parameters}}``, ``{{steps.X.status}}``
  and the same for ``tasks.X``. Unresolvable variables are errors, as in Argo;
- outputs: ``outputs.result`` is the script's stdout (one trailing newline trimmed, the last
  256 kB kept); ``outputs.parameters`` from ``valueFrom.path`` (with ``default``) in leaf
  templates and ``valueFrom.parameter`` in steps/DAG templates; ``outputs.artifacts`` are copied
  into a local artifact folder, at their S3 ``key`` when they have one. A fanned-out step's
  outputs are aggregated as Argo does: ``outputs.result`` is a JSON list in which each result
  that parses as a JSON object is that object and any other result is a string;
  ``outputs.parameters`` is a JSON list of ``{name: value}`` maps;
- ``when``: the substituted condition, in the subset of Argo's (govaluate) syntax that
  ``evaluate_when`` reads: ``==`` and ``!=`` between quoted strings, numbers, ``true``/``false``
  and bare words (a bare word is its own text, as in Argo), joined by ``&&`` and ``||``, with
  parentheses. A step or task whose condition is false is Skipped (each item of a fan-out on its
  own, with ``{{item}}`` in scope); it has no outputs, and a Skipped dependency counts as done;
- ``withParam`` (a JSON list) and ``withItems`` fan-out, limited by the template's (and the
  workflow's) ``parallelism`` and by ``max_parallel`` of this runner: threads, one subprocess
  each; with a limit of 1 the children run one after another. Once a child fails, no new child
  starts (Argo's default ``failFast``);
- ``retryStrategy``: ``limit`` retries under ``retryPolicy`` (Always, OnFailure, OnError;
  OnTransientError retries errors only), waiting Argo's backoff (``duration * factor^n``,
  at most ``cap``; no retry once ``maxDuration`` has passed), each wait cut to
  ``max_backoff_s`` here;
- ``spec.onExit``: the exit handler always runs, after the entrypoint, with the workflow's
  arguments and ``{{workflow.status}}`` Succeeded or Failed (Error when the document itself was
  wrong); a failing exit handler fails the run, as in Argo.

Environment: each step runs with this runner's environment (``run_local`` puts the given
settings there as ``LLMW_*`` variables). The template's own ``env`` is cluster configuration and
is dropped: values from ``secretKeyRef`` (no cluster Secrets here), the in-cluster Milvus URI and
the GPU placement's variables (``HSA_OVERRIDE_GFX_VERSION``); only Hera's runner variables
(``hera__*``) are kept, with ``hera__outputs_directory`` moved to a folder of the node, and output
paths under it remapped there. Node selectors, tolerations, resources and images are ignored.

Not supported (refused before anything runs, naming the field): expressions (``{{=...}}``),
other ``when`` syntax, ``continueOn``, ``templateRef``, inline templates, ``withSequence``, input
artifacts, resource/suspend/http/plugin/data/containerSet templates, daemons, sidecars, init
containers, memoization, lifecycle hooks, ``retryStrategy.expression`` or a retry without a
``limit``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.registry import get_job
from components.settings import Settings, get_settings, settings_env

ENV_PREFIX = "LLMW_"
MAX_RESULT_BYTES = 256 * 1024  # Argo keeps the last 256 kB of a script's stdout
DEFAULT_WORK_DIR = Path(".llmw/argo-local")
_VARIABLE = re.compile(r"\{\{(.*?)\}\}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PYTHON = re.compile(r"python(3(\.\d+)?)?")
_RETRY_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
_DONE = ("Succeeded", "Skipped")  # phases that let the run go on
_WHEN_TOKEN = re.compile(
    r"\s*(?:(?P<op>\|\||&&|==|!=|\(|\))"  # operators and parentheses
    r"|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\""  # quoted strings
    r"|(?P<num>-?\d+(?:\.\d+)?)(?![\w.])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)

# Template fields: what argo-local does with each. Anything else is refused.
_HONOURED = {"name", "inputs", "outputs", "steps", "dag", "script", "container", "parallelism"}
_HONOURED |= {"retryStrategy", "failFast", "timeout", "activeDeadlineSeconds"}
_CLUSTER_ONLY = {"metadata", "nodeSelector", "tolerations", "affinity", "serviceAccountName"}
_CLUSTER_ONLY |= {"podSpecPatch", "priorityClassName", "securityContext", "volumes"}
_CLUSTER_ONLY |= {"automountServiceAccountToken", "archiveLocation", "hostAliases"}
_CLUSTER_ONLY |= {"schedulerName", "executor", "priority"}
_STEP_FIELDS = {"name", "template", "arguments", "withParam", "withItems", "when"}
_TASK_FIELDS = _STEP_FIELDS | {"dependencies", "depends"}
_SPEC_HONOURED = {"entrypoint", "arguments", "templates", "onExit", "parallelism"}
_SPEC_CLUSTER_ONLY = {"serviceAccountName", "podGC", "ttlStrategy", "nodeSelector"}
_SPEC_CLUSTER_ONLY |= {"tolerations", "affinity", "volumes", "volumeClaimTemplates"}
_SPEC_CLUSTER_ONLY |= {"artifactRepositoryRef", "workflowMetadata", "podMetadata", "priority"}
_SPEC_CLUSTER_ONLY |= {"imagePullSecrets", "securityContext", "activeDeadlineSeconds"}
_SPEC_CLUSTER_ONLY |= {"archiveLogs", "podPriorityClassName", "schedulerName"}


class LocalRunError(RuntimeError):
    """A local workflow run that failed; ``run`` holds its node statuses."""

    def __init__(self, message: str, run: LocalWorkflowRun | None = None) -> None:
        super().__init__(message)
        self.run = run


class UnsupportedFeatureError(ValueError):
    """The document uses an Argo feature that argo-local does not run; the message names it."""


class _NodeError(Exception):
    """A problem evaluating the document for a node (Argo marks such nodes Error)."""


@dataclass
class NodeStatus:
    """One node of the run, named as Argo names it (``wf[1].ingest-shard(0:0/3)``)."""

    name: str
    display_name: str
    template: str
    type: str  # Steps, DAG, Pod
    phase: str = "Pending"  # Succeeded, Failed, Error, Omitted
    attempts: int = 0
    message: str | None = None
    result: str | None = None
    exit_code: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def seconds(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "template": self.template,
            "type": self.type,
            "phase": self.phase,
            "attempts": self.attempts,
            "message": self.message,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "outputs": {
                "result": self.result,
                "parameters": dict(self.parameters),
                "artifacts": dict(self.artifacts),
            },
        }


@dataclass
class LocalWorkflowRun:
    """The outcome of a local run: phase, the entrypoint's outputs, every node."""

    name: str
    template: str
    phase: str
    message: str | None
    outputs: dict[str, str]
    nodes: list[NodeStatus]
    work_dir: Path

    def node(self, display_name: str) -> list[NodeStatus]:
        """The nodes shown under ``display_name`` (a fanned-out step: ``name(`` prefixed)."""
        return [
            n
            for n in self.nodes
            if n.display_name == display_name or n.display_name.startswith(display_name + "(")
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.name,
            "template": self.template,
            "status": self.phase,
            "message": self.message,
            "outputs": dict(self.outputs),
            "nodes": [n.to_dict() for n in self.nodes],
            "work_dir": str(self.work_dir),
        }


@dataclass
class _Outcome:
    phase: str
    message: str | None = None
    result: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)


def parse_duration(value: Any) -> float:
    """Seconds from an Argo/Go duration (``"30s"``, ``"1m30s"``, ``"2h"``) or a number."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise _NodeError(f"{value!r} is not a duration")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def evaluate_when(text: str) -> bool:
    """A substituted ``when`` condition's value; ValueError for what argo-local cannot read."""
    tokens: list[tuple[str, Any]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _WHEN_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot read {text[position:]!r} in {text!r}")
        position = match.end()
        if match["op"]:
            tokens.append(("op", match["op"]))
        elif match["sq"] is not None or match["dq"] is not None:
            tokens.append(("value", match["sq"] if match["sq"] is not None else match["dq"]))
        elif match["num"]:
            tokens.append(("value", float(match["num"])))
        else:
            word = match["word"]
            tokens.append(("value", {"true": True, "false": False}.get(word, word)))
    index = 0

    def peek() -> Any:
        return tokens[index][1] if index < len(tokens) and tokens[index][0] == "op" else None

    def atom() -> Any:
        nonlocal index
        if index >= len(tokens):
            raise ValueError(f"{text!r} ends too early")
        kind, value = tokens[index]
        index += 1
        if kind == "value":
            return value
        if value == "(":
            inner = either()
            if peek() != ")":
                raise ValueError(f"unbalanced parentheses in {text!r}")
            index += 1
            return inner
        raise ValueError(f"unexpected {value!r} in {text!r}")

    def comparison() -> Any:
        nonlocal index
        left = atom()
        if peek() in ("==", "!="):
            operator = tokens[index][1]
            index += 1
            right = atom()
            return (left == right) == (operator == "==")
        return left

    def truth(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not a condition in {text!r}")
        return value

    def both() -> Any:
        nonlocal index
        value = comparison()
        while peek() == "&&":
            index += 1
            right = comparison()  # govaluate evaluates both sides
            value = truth(value) and truth(right)
        return value

    def either() -> Any:
        nonlocal index
        value = both()
        while peek() == "||":
            index += 1
            right = both()
            value = truth(value) or truth(right)
        return value

    result = truth(either())
    if index != len(tokens):
        raise ValueError(f"unexpected {tokens[index][1]!r} in {text!r}")
    return result


def _item_text(value: Any) -> str:
    """How Argo prints a fan-out item (or a map value) into a template."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def substitute(text: str, scope: Mapping[str, str], where: str) -> str:
    """Replace every ``{{name}}`` in ``text``; an unknown name is an error naming ``where``."""

    def replace(match: re.Match[str]) -> str:
        key = match.group(1).strip()
        if key.startswith("="):
            raise UnsupportedFeatureError(f"{where}: expressions ({match.group(0)}) not supported")
        if key not in scope:
            raise _NodeError(f"{where}: unresolved variable {match.group(0)}")
        return scope[key]

    return _VARIABLE.sub(replace, text)


def _substitute_all(value: Any, scope: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):
        return substitute(value, scope, where)
    if isinstance(value, list):
        return [_substitute_all(v, scope, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _substitute_all(v, scope, f"{where}.{k}") for k, v in value.items()}
    return value


def _check_keys(where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UnsupportedFeatureError(f"{where}: argo-local does not support {', '.join(unknown)}")


def check_supported(workflow: Mapping[str, Any]) -> None:
    """Refuse, naming the field, a document that uses what argo-local cannot run."""
    spec = workflow.get("spec")
    if not isinstance(spec, dict):
        raise UnsupportedFeatureError("the document has no spec")
    expression = re.search(r"\{\{\s*=[^}]*\}\}", json.dumps(spec))
    if expression:
        raise UnsupportedFeatureError(f"expressions ({expression.group(0)}) are not supported")
    _check_keys("spec", spec, _SPEC_HONOURED | _SPEC_CLUSTER_ONLY)
    for i, tmpl in enumerate(spec.get("templates", [])):
        where = f"spec.templates[{i}] ({tmpl.get('name')})"
        _check_keys(where, tmpl, _HONOURED | _CLUSTER_ONLY)
        kinds = [k for k in ("steps", "dag", "script", "container") if k in tmpl]
        if len(kinds) != 1:
            raise UnsupportedFeatureError(
                f"{where}: needs exactly one of steps, dag, script, container (has {kinds})"
            )
        if tmpl.get("inputs", {}).get("artifacts"):
            raise UnsupportedFeatureError(f"{where}: input artifacts are not supported")
        retry = tmpl.get("retryStrategy")
        if retry is not None:
            if "expression" in retry:
                raise UnsupportedFeatureError(f"{where}: retryStrategy.expression")
            if "limit" not in retry:
                raise UnsupportedFeatureError(f"{where}: a retryStrategy without a limit")
            if retry.get("retryPolicy", "OnFailure") not in _RETRY_POLICIES:
                raise UnsupportedFeatureError(
                    f"{where}: retryPolicy {retry['retryPolicy']!r} (known: {_RETRY_POLICIES})"
                )
        for group_index, group in enumerate(tmpl.get("steps") or []):
            for j, step in enumerate(group):
                _check_keys(f"{where}.steps[{group_index}][{j}]", step, _STEP_FIELDS)
                _check_when(f"{where}.steps[{group_index}][{j}]", step)
        for j, task in enumerate((tmpl.get("dag") or {}).get("tasks", [])):
            _check_keys(f"{where}.dag.tasks[{j}]", task, _TASK_FIELDS)
            _check_when(f"{where}.dag.tasks[{j}]", task)
        if "dag" in tmpl:
            _check_keys(f"{where}.dag", tmpl["dag"], {"tasks", "target", "failFast"})
        for step_kind in ("script", "container"):
            if step_kind in tmpl and "command" not in tmpl[step_kind]:
                raise UnsupportedFeatureError(
                    f"{where}: {step_kind} without a command (the image's entrypoint is unknown)"
                )


def _check_when(where: str, step: Mapping[str, Any]) -> None:
    """Refuse a ``when`` that argo-local cannot evaluate (variables read as a bare word)."""
    if "when" not in step:
        return
    try:
        evaluate_when(_VARIABLE.sub("x", str(step["when"])))
    except ValueError as exc:
        raise UnsupportedFeatureError(f"{where}.when: {exc}") from None


class ArgoLocalRunner:
    """Runs one rendered Workflow/WorkflowTemplate document on this machine.

    ``env`` is every step's environment (default: this process's). ``work_dir`` keeps each
    node's script file, stderr log and outputs, and the artifacts (``<work_dir>/artifacts``).
    ``max_parallel`` caps every fan-out (Milvus Lite admits one process per database file, so
    ``run_local`` keeps it at 1). ``max_backoff_s`` caps each retry wait.
    """

    def __init__(
        self,
        workflow: Mapping[str, Any],
        *,
        work_dir: Path,
        env: Mapping[str, str] | None = None,
        max_parallel: int = 1,
        max_backoff_s: float = 1.0,
        python: str = sys.executable,
        cwd: Path | None = None,
        workflow_name: str | None = None,
    ) -> None:
        check_supported(workflow)
        self.doc = workflow
        self.spec: dict[str, Any] = dict(workflow["spec"])
        self.templates: dict[str, dict[str, Any]] = {t["name"]: t for t in self.spec["templates"]}
        template_name = str(workflow.get("metadata", {}).get("name") or "workflow")
        self.template_name = template_name
        self.name = workflow_name or f"{template_name}-{secrets.token_hex(3)[:5]}"
        self.namespace = str(workflow.get("metadata", {}).get("namespace") or "default")
        self.env = dict(os.environ if env is None else env)
        self.max_parallel = max(1, max_parallel)
        self.max_backoff_s = max(0.0, max_backoff_s)
        self.python = python
        self.cwd = cwd or Path.cwd()
        self.work_dir = Path(work_dir).resolve() / self.name
        self.artifacts_dir = Path(work_dir).resolve() / "artifacts"
        self.nodes: list[NodeStatus] = []
        self._lock = threading.Lock()
        self._globals: dict[str, str] = {}

    # --- the run --------------------------------------------------------------------------

    def run(self, arguments: Mapping[str, str] | None = None) -> LocalWorkflowRun:
        """Run the entrypoint, then the exit handler; never raises for a failing step."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        outputs: dict[str, str] = {}
        try:
            workflow_args = self._workflow_arguments(dict(arguments or {}))
        except _NodeError as exc:
            return self._finish("Error", str(exc), outputs)
        self._globals = {
            "workflow.name": self.name,
            "workflow.namespace": self.namespace,
            "workflow.uid": str(uuid.uuid4()),
            "workflow.status": "Running",
            **{f"workflow.parameters.{k}": v for k, v in workflow_args.items()},
        }
        entry = self.spec.get("entrypoint")
        arg_list = [{"name": k, "value": v} for k, v in workflow_args.items()]
        if entry not in self.templates:
            return self._finish("Error", f"spec.entrypoint {entry!r} is not a template", outputs)
        root = self._invoke(entry, arg_list, self.name, self.name)
        phase = "Succeeded" if root.phase == "Succeeded" else root.phase
        if phase not in ("Succeeded", "Error"):
            phase = "Failed"
        message = None if phase == "Succeeded" else self._failure_message()
        outputs = dict(root.parameters)
        on_exit = self.spec.get("onExit")
        if on_exit:
            failures = [
                {
                    "displayName": n.display_name,
                    "message": n.message or "",
                    "templateName": n.template,
                    "phase": n.phase,
                    "podName": n.name,
                }
                for n in self.nodes
                if n.type == "Pod" and n.phase in ("Failed", "Error")
            ]
            self._globals["workflow.status"] = phase
            self._globals["workflow.failures"] = json.dumps(failures, separators=(",", ":"))
            handler = self._invoke(on_exit, arg_list, f"{self.name}.onExit", f"{self.name}.onExit")
            if handler.phase != "Succeeded" and phase == "Succeeded":
                phase, message = "Failed", f"exit handler {on_exit!r}: {handler.message}"
        return self._finish(phase, message, outputs)

    def _finish(self, phase: str, message: str | None, outputs: dict[str, str]) -> LocalWorkflowRun:
        return LocalWorkflowRun(
            name=self.name,
            template=self.template_name,
            phase=phase,
            message=message,
            outputs=outputs,
            nodes=list(self.nodes),
            work_dir=self.work_dir,
        )

    def _failure_message(self) -> str:
        failed = [n for n in self.nodes if n.type == "Pod" and n.phase in ("Failed", "Error")]
        failed = failed or [n for n in self.nodes if n.phase in ("Failed", "Error")]
        if not failed:
            return "failed"
        first = failed[0]
        return f"{first.display_name} ({first.template}) {first.phase.lower()}: {first.message}"

    def _workflow_arguments(self, given: dict[str, str]) -> dict[str, str]:
        declared = self.spec.get("arguments", {}).get("parameters", [])
        names = {p["name"] for p in declared}
        unknown = sorted(set(given) - names)
        if unknown:
            raise _NodeError(f"unknown workflow parameters {unknown} (declared: {sorted(names)})")
        values: dict[str, str] = {}
        for param in declared:
            name = param["name"]
            if name in given:
                value = str(given[name])
            elif "value" in param:
                value = str(param["value"])
            else:
                raise _NodeError(f"spec.arguments.parameters.{name} was not supplied")
            enum = param.get("enum")
            if enum is not None and value not in [str(e) for e in enum]:
                raise _NodeError(f"workflow parameter {name}: {value!r} is not one of {enum}")
            values[name] = value
        return values

    # --- templates ------------------------------------------------------------------------

    def _new_node(self, name: str, display: str, template: str, kind: str) -> NodeStatus:
        node = NodeStatus(name, display, template, kind, started_at=time.time())
        with self._lock:
            self.nodes.append(node)
        return node

    def _invoke(
        self,
        template_name: str,
        arguments: list[dict[str, Any]],
        node_name: str,
        display: str,
    ) -> NodeStatus:
        """Run a template with arguments as node ``node_name``; returns its finished node."""
        tmpl = self.templates.get(template_name)
        kind = "Pod"
        if tmpl is not None:
            kind = "Steps" if "steps" in tmpl else "DAG" if "dag" in tmpl else "Pod"
        node = self._new_node(node_name, display, template_name, kind)
        try:
            if tmpl is None:
                raise _NodeError(f"template {template_name!r} not found")
            inputs = self._inputs(tmpl, arguments)
            scope = dict(self._globals)
            scope.update({f"inputs.parameters.{p['name']}": p["value"] for p in inputs})
            scope["inputs.parameters"] = json.dumps(inputs, separators=(",", ":"))
            if kind == "Steps":
                outcome = self._run_steps(tmpl, scope, node_name)
            elif kind == "DAG":
                outcome = self._run_dag(tmpl, scope, node_name)
            else:
                outcome = self._run_leaf(tmpl, scope, node)
        except _NodeError as exc:
            outcome = _Outcome("Error", str(exc))
        node.phase = outcome.phase
        node.message = outcome.message if node.message is None else node.message
        node.result = outcome.result
        node.parameters = outcome.parameters
        node.artifacts = outcome.artifacts
        node.finished_at = time.time()
        return node

    def _inputs(
        self, tmpl: dict[str, Any], arguments: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The template's input parameters with their values, in Argo's JSON shape."""
        given = {a["name"]: a.get("value") for a in arguments}
        resolved: list[dict[str, Any]] = []
        for param in tmpl.get("inputs", {}).get("parameters", []):
            name = param["name"]
            value = given.get(name)
            if value is None:
                value = param.get("value", param.get("default"))
            if value is None:
                raise _NodeError(
                    f"inputs.parameters.{name} was not supplied to template {tmpl['name']!r}"
                )
            entry: dict[str, Any] = {"name": name}
            if "default" in param:
                entry["default"] = str(param["default"])
            entry["value"] = str(value)
            if "enum" in param:
                entry["enum"] = [str(e) for e in param["enum"]]
                if entry["value"] not in entry["enum"]:
                    raise _NodeError(f"inputs.parameters.{name}: {value!r} not in {param['enum']}")
            if "description" in param:
                entry["description"] = param["description"]
            resolved.append(entry)
        return resolved

    def _limit(self, tmpl: dict[str, Any]) -> int:
        limits = [self.max_parallel]
        for value in (tmpl.get("parallelism"), self.spec.get("parallelism")):
            if value is not None:
                limits.append(max(1, int(value)))
        return min(limits)

    # --- steps and DAGs -------------------------------------------------------------------

    def _expand(
        self, step: dict[str, Any], scope: dict[str, str], where: str
    ) -> list[tuple[str, list[dict[str, Any]], str | None]] | None:
        """``(display suffix, arguments, the false condition that skips it or None)`` per child of
        a fan-out; None without fan-out."""
        items: list[Any]
        if "withParam" in step:
            raw = substitute(str(step["withParam"]), scope, f"{where}.withParam")
            try:
                items = json.loads(raw)
            except ValueError as exc:
                raise _NodeError(f"{where}.withParam is not a JSON list: {raw[:200]!r}") from exc
            if not isinstance(items, list):
                raise _NodeError(f"{where}.withParam is not a JSON list: {raw[:200]!r}")
        elif "withItems" in step:
            items = list(step["withItems"])
        else:
            return None
        children = []
        for index, item in enumerate(items):
            item_scope = dict(scope)
            item_scope["item"] = _item_text(item)
            if isinstance(item, dict):
                item_scope.update({f"item.{k}": _item_text(v) for k, v in item.items()})
            arguments = _substitute_all(
                step.get("arguments", {}).get("parameters", []), item_scope, f"{where}.arguments"
            )
            skip = self._when(step, item_scope, where)
            children.append((f"({index}:{_item_text(item)})", arguments, skip))
        return children

    @staticmethod
    def _when(step: dict[str, Any], scope: dict[str, str], where: str) -> str | None:
        """The substituted ``when`` condition when it is false (the step is skipped), else None."""
        if "when" not in step:
            return None
        text = substitute(str(step["when"]), scope, f"{where}.when")
        try:
            return None if evaluate_when(text) else text
        except ValueError as exc:
            raise _NodeError(f"{where}.when: {exc}") from None

    def _skip(self, step: dict[str, Any], node_name: str, display: str, when: str) -> NodeStatus:
        """A step whose ``when`` is false: a Skipped node, without outputs."""
        node = self._new_node(node_name, display, step["template"], "Skipped")
        node.phase, node.finished_at = "Skipped", time.time()
        node.message = f"when '{when}' evaluated false"
        return node

    def _run_children(
        self, jobs: Sequence[Callable[[], NodeStatus]], limit: int
    ) -> list[NodeStatus]:
        """Run jobs at most ``limit`` at a time; after a failure, start no new job. Returns the
        finished jobs' nodes in job order (Argo orders a fan-out's outputs by loop index)."""
        done: dict[int, NodeStatus] = {}
        if limit <= 1 or len(jobs) <= 1:
            for index, job in enumerate(jobs):
                done[index] = job()
                if done[index].phase not in _DONE:
                    break
            return list(done.values())
        pending: dict[Future[NodeStatus], int] = {}
        queue = iter(enumerate(jobs))
        failed = False
        with ThreadPoolExecutor(max_workers=limit) as pool:

            def fill() -> None:
                for index, job in queue:
                    pending[pool.submit(job)] = index
                    if len(pending) >= limit:
                        return

            fill()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    node = done[pending.pop(future)] = future.result()
                    failed = failed or node.phase not in _DONE
                if not failed:
                    fill()
        return [done[index] for index in sorted(done)]

    def _record(
        self,
        local: dict[str, str],
        prefix: str,
        nodes: list[NodeStatus],
        expanded: bool,
    ) -> None:
        """Put a step's (or task's) outputs into the scope, aggregated for a fan-out."""
        if not expanded:
            node = nodes[0]
            if node.result is not None:
                local[f"{prefix}.outputs.result"] = node.result
            for name, value in node.parameters.items():
                local[f"{prefix}.outputs.parameters.{name}"] = value
            local[f"{prefix}.status"] = node.phase
            if node.exit_code is not None:
                local[f"{prefix}.exitCode"] = str(node.exit_code)
            return
        results: list[Any] = []
        params: list[dict[str, str]] = []
        for node in nodes:
            if node.result is not None:
                try:
                    parsed = json.loads(node.result)
                except ValueError:
                    parsed = None
                results.append(parsed if isinstance(parsed, dict) else node.result)
            if node.parameters:
                params.append(dict(node.parameters))
        local[f"{prefix}.outputs.result"] = json.dumps(results, separators=(",", ":"))
        local[f"{prefix}.outputs.parameters"] = json.dumps(params, separators=(",", ":"))
        for name in sorted({name for p in params for name in p}):
            values = [p[name] for p in params if name in p]
            local[f"{prefix}.outputs.parameters.{name}"] = json.dumps(values)
        local[f"{prefix}.status"] = _group_phase(nodes)

    def _run_step(
        self,
        parent: dict[str, Any],
        step: dict[str, Any],
        scope: dict[str, str],
        base: str,
        where: str,
    ) -> tuple[list[NodeStatus], bool]:
        """One step or DAG task (fanned out when it has items): its finished nodes, and whether
        it was fanned out. A problem evaluating it becomes one node in phase Error."""
        name = step["name"]
        try:
            children = self._expand(step, scope, where)
            if children is None:
                arguments = _substitute_all(
                    step.get("arguments", {}).get("parameters", []), scope, f"{where}.arguments"
                )
                skip = self._when(step, scope, where)
        except _NodeError as exc:
            node = self._new_node(f"{base}.{name}", name, step["template"], "Pod")
            node.phase, node.message, node.finished_at = "Error", str(exc), time.time()
            return [node], False
        if children is None:
            if skip is not None:
                return [self._skip(step, f"{base}.{name}", name, skip)], False
            return [self._invoke(step["template"], arguments, f"{base}.{name}", name)], False
        jobs = [
            functools.partial(
                self._invoke, step["template"], args, f"{base}.{name}{suffix}", f"{name}{suffix}"
            )
            if skip is None
            else functools.partial(
                self._skip, step, f"{base}.{name}{suffix}", f"{name}{suffix}", skip
            )
            for suffix, args, skip in children
        ]
        return self._run_children(jobs, self._limit(parent)), True

    def _run_steps(self, tmpl: dict[str, Any], scope: dict[str, str], node_name: str) -> _Outcome:
        local = dict(scope)
        limit = self._limit(tmpl)
        for index, group in enumerate(tmpl["steps"] or []):
            where = f"template {tmpl['name']!r} steps[{index}]"
            base = f"{node_name}[{index}]"
            # The steps of a group run side by side; each fan-out is limited on its own.
            outcomes: dict[str, tuple[list[NodeStatus], bool]] = {}

            def run_one(
                step: dict[str, Any],
                where: str = where,
                base: str = base,
                outcomes: dict[str, tuple[list[NodeStatus], bool]] = outcomes,
            ) -> NodeStatus:
                nodes, expanded = self._run_step(tmpl, step, local, base, where)
                outcomes[step["name"]] = (nodes, expanded)
                return _summary_node(step, nodes)

            nodes = self._run_children([functools.partial(run_one, s) for s in group], limit)
            for step_name, (step_nodes, expanded) in outcomes.items():
                self._record(local, f"steps.{step_name}", step_nodes, expanded)
            if any(n.phase not in _DONE for n in nodes) or len(nodes) < len(group):
                return _Outcome("Failed", f"child of step group {index} failed")
        return self._template_outputs(tmpl, local)

    def _run_dag(self, tmpl: dict[str, Any], scope: dict[str, str], node_name: str) -> _Outcome:
        tasks = {t["name"]: t for t in tmpl["dag"]["tasks"]}
        deps = {name: _dependencies(task, set(tasks)) for name, task in tasks.items()}
        local = dict(scope)
        phase: dict[str, str] = {}
        limit = self._limit(tmpl)
        while len(phase) < len(tasks):
            for name in tasks:
                if name not in phase and any(
                    phase.get(d) not in (None, *_DONE) for d in deps[name]
                ):
                    phase[name] = "Omitted"
            ready = [
                n for n in tasks if n not in phase and all(phase.get(d) in _DONE for d in deps[n])
            ]
            if not ready:
                if len(phase) < len(tasks):
                    raise _NodeError(f"template {tmpl['name']!r}: dependency cycle")
                break
            results: dict[str, tuple[list[NodeStatus], bool]] = {}

            def run_task(
                name: str, results: dict[str, tuple[list[NodeStatus], bool]] = results
            ) -> NodeStatus:
                where = f"template {tmpl['name']!r} task {name!r}"
                nodes, expanded = self._run_step(tmpl, tasks[name], local, node_name, where)
                results[name] = (nodes, expanded)
                return _summary_node(tasks[name], nodes)

            self._run_children_all([functools.partial(run_task, n) for n in ready], limit)
            for name in ready:
                nodes, expanded = results[name]
                self._record(local, f"tasks.{name}", nodes, expanded)
                phase[name] = _group_phase(nodes)
        if any(p not in _DONE for p in phase.values()):
            failed = sorted(n for n, p in phase.items() if p == "Failed")
            return _Outcome("Failed", f"task(s) failed: {', '.join(failed)}")
        return self._template_outputs(tmpl, local)

    def _run_children_all(self, jobs: Sequence[Callable[[], NodeStatus]], limit: int) -> None:
        """Run every job (a DAG wave): a failed task does not stop its independent siblings."""
        if limit <= 1:
            for job in jobs:
                job()
            return
        with ThreadPoolExecutor(max_workers=limit) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()

    def _template_outputs(self, tmpl: dict[str, Any], local: dict[str, str]) -> _Outcome:
        parameters: dict[str, str] = {}
        for param in tmpl.get("outputs", {}).get("parameters", []):
            value_from = param.get("valueFrom", {})
            where = f"template {tmpl['name']!r} outputs.parameters.{param['name']}"
            if "parameter" in value_from:
                parameters[param["name"]] = substitute(value_from["parameter"], local, where)
            elif "value" in param:
                parameters[param["name"]] = substitute(str(param["value"]), local, where)
            else:
                raise UnsupportedFeatureError(f"{where}: only valueFrom.parameter or value")
        if tmpl.get("outputs", {}).get("artifacts"):
            raise UnsupportedFeatureError(
                f"template {tmpl['name']!r}: outputs.artifacts of a steps/DAG template"
            )
        return _Outcome("Succeeded", parameters=parameters)

    # --- leaf templates (script, container) -----------------------------------------------

    def _run_leaf(self, tmpl: dict[str, Any], scope: dict[str, str], node: NodeStatus) -> _Outcome:
        retry = tmpl.get("retryStrategy")
        limit = int(retry["limit"]) if retry else 0
        policy = (retry or {}).get("retryPolicy") or "OnFailure"
        backoff = (retry or {}).get("backoff") or {}
        first_start = time.monotonic()
        attempt = 0
        while True:
            node.attempts = attempt + 1
            outcome, exit_code = self._attempt(tmpl, scope, node, attempt)
            node.exit_code = exit_code
            if outcome.phase == "Succeeded" or attempt >= limit:
                if outcome.phase != "Succeeded" and attempt > 0:
                    outcome.message = f"{outcome.message} (after {attempt + 1} attempts)"
                return outcome
            retry_it = {
                "Always": True,
                "OnFailure": outcome.phase == "Failed",
                "OnError": outcome.phase == "Error",
                "OnTransientError": outcome.phase == "Error",
            }[policy]
            if not retry_it:
                return outcome
            delay = self._backoff(backoff, attempt)
            max_duration = backoff.get("maxDuration")
            elapsed = time.monotonic() - first_start
            if max_duration is not None and elapsed + delay > parse_duration(max_duration):
                return outcome
            time.sleep(min(delay, self.max_backoff_s))
            attempt += 1

    @staticmethod
    def _backoff(backoff: dict[str, Any], attempt: int) -> float:
        if "duration" not in backoff:
            return 0.0
        delay = parse_duration(backoff["duration"])
        factor = float(backoff.get("factor") or 1)
        delay *= factor**attempt
        if backoff.get("cap") is not None:
            delay = min(delay, parse_duration(backoff["cap"]))
        return delay

    def _attempt(
        self, tmpl: dict[str, Any], scope: dict[str, str], node: NodeStatus, attempt: int
    ) -> tuple[_Outcome, int | None]:
        folder = self.work_dir / "nodes" / _safe(node.name) / f"attempt-{attempt}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = "script" if "script" in tmpl else "container"
        where = f"template {tmpl['name']!r}"
        body = tmpl[kind]
        scope = {**scope, "retries": str(attempt), "pod.name": node.name}
        command = [str(c) for c in _substitute_all(body.get("command", []), scope, where)]
        args = [str(a) for a in _substitute_all(body.get("args", []), scope, where)]
        if command and _PYTHON.fullmatch(Path(command[0]).name):
            command[0] = self.python
        env, outputs_dir, local_outputs = self._step_env(body, scope, folder, where)
        argv = command + args
        if kind == "script":
            source = substitute(str(body.get("source", "")), scope, f"{where}.script.source")
            script = folder / "script"
            script.write_text(source, encoding="utf-8")
            argv.append(str(script))
        timeout = tmpl.get("timeout") or tmpl.get("activeDeadlineSeconds")
        stderr_path = folder / "stderr.log"
        try:
            with stderr_path.open("wb") as stderr:
                done = subprocess.run(
                    argv,
                    cwd=self.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    timeout=parse_duration(timeout) if timeout is not None else None,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            return _Outcome("Failed", f"timed out after {timeout} (log: {stderr_path})"), None
        except OSError as exc:
            return _Outcome("Error", f"cannot start {argv[0]!r}: {exc}"), None
        stdout = done.stdout.decode("utf-8", "replace")
        (folder / "stdout.log").write_text(stdout, encoding="utf-8")
        result = stdout[:-1] if stdout.endswith("\n") else stdout
        if len(result.encode()) > MAX_RESULT_BYTES:
            result = result.encode()[-MAX_RESULT_BYTES:].decode("utf-8", "ignore")
        if done.returncode != 0:
            tail = _tail(stderr_path)
            message = f"Error (exit code {done.returncode})" + (f": {tail}" if tail else "")
            return _Outcome("Failed", message, result=result), done.returncode
        try:
            parameters, artifacts = self._leaf_outputs(
                tmpl, scope, outputs_dir, local_outputs, node, where
            )
        except _NodeError as exc:
            return _Outcome("Error", str(exc), result=result), done.returncode
        return _Outcome("Succeeded", None, result, parameters, artifacts), done.returncode

    def _step_env(
        self, body: dict[str, Any], scope: dict[str, str], folder: Path, where: str
    ) -> tuple[dict[str, str], str | None, Path]:
        """The subprocess environment: this runner's, plus only Hera's runner variables from the
        template (cluster env — secrets, in-cluster endpoints, GPU variables — is dropped)."""
        env = dict(self.env)
        local_outputs = folder / "hera-outputs"
        outputs_dir: str | None = None
        for var in body.get("env", []):
            name = var.get("name", "")
            if not name.startswith("hera__") or "value" not in var:
                continue
            value = substitute(str(var["value"]), scope, f"{where}.env.{name}")
            if name == "hera__outputs_directory":
                outputs_dir = value
                value = str(local_outputs)
            env[name] = value
        return env, outputs_dir, local_outputs

    def _leaf_outputs(
        self,
        tmpl: dict[str, Any],
        scope: dict[str, str],
        outputs_dir: str | None,
        local_outputs: Path,
        node: NodeStatus,
        where: str,
    ) -> tuple[dict[str, str], dict[str, str]]:
        def local(path: str) -> Path:
            if outputs_dir and (
                path == outputs_dir or path.startswith(outputs_dir.rstrip("/") + "/")
            ):
                return local_outputs / path[len(outputs_dir.rstrip("/")) :].lstrip("/")
            return self.cwd / path  # an absolute path stays as it is

        outputs = _substitute_all(tmpl.get("outputs", {}), scope, f"{where}.outputs")
        parameters: dict[str, str] = {}
        for param in outputs.get("parameters", []):
            value_from = param.get("valueFrom", {})
            if "path" in value_from:
                path = local(value_from["path"])
                if path.is_file():
                    parameters[param["name"]] = path.read_text(encoding="utf-8")
                elif "default" in value_from:
                    parameters[param["name"]] = str(value_from["default"])
                else:
                    raise _NodeError(
                        f"output parameter {param['name']!r}: {value_from['path']} not written"
                    )
            elif "value" in param:
                parameters[param["name"]] = str(param["value"])
            else:
                raise UnsupportedFeatureError(
                    f"{where}: output parameter {param['name']!r} needs valueFrom.path or value"
                )
        artifacts: dict[str, str] = {}
        for artifact in outputs.get("artifacts", []):
            source = local(str(artifact.get("path", "")))
            if not source.exists():
                if artifact.get("optional"):
                    continue
                raise _NodeError(
                    f"output artifact {artifact['name']!r}: {artifact.get('path')} not written"
                )
            key = (artifact.get("s3") or {}).get("key")
            target = self.artifacts_dir / (
                key or f"{self.name}/{_safe(node.name)}/{artifact['name']}"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, target)
            artifacts[artifact["name"]] = str(target)
        return parameters, artifacts


def _group_phase(nodes: list[NodeStatus]) -> str:
    """A step's phase from its nodes: Skipped when every one was, Succeeded when each is done."""
    phases = {n.phase for n in nodes}
    if phases == {"Skipped"}:
        return "Skipped"
    return "Succeeded" if phases <= set(_DONE) else "Failed"


def _summary_node(step: dict[str, Any], nodes: list[NodeStatus]) -> NodeStatus:
    """The node that stands for a step: its first failed child, else its first child; a fan-out
    over an empty list succeeds (Argo records it as Skipped)."""
    failed = [n for n in nodes if n.phase not in _DONE]
    if failed:
        return failed[0]
    if nodes:
        return nodes[0]
    return NodeStatus(step["name"], step["name"], step["template"], "Skipped", phase="Succeeded")


def _dependencies(task: dict[str, Any], names: set[str]) -> list[str]:
    if "dependencies" in task:
        deps = [str(d) for d in task["dependencies"]]
    elif "depends" in task:
        deps = []
        for part in str(task["depends"]).split("&&"):
            term = part.strip().removesuffix(".Succeeded")
            if not re.fullmatch(r"[A-Za-z0-9_-]+", term):
                raise UnsupportedFeatureError(
                    f"task {task['name']!r}: depends {task['depends']!r} (only names joined by &&)"
                )
            deps.append(term)
    else:
        deps = []
    unknown = sorted(set(deps) - names)
    if unknown:
        raise UnsupportedFeatureError(f"task {task['name']!r} depends on unknown tasks {unknown}")
    return deps


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:180]


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)


# --- the registered jobs ------------------------------------------------------------------------


def run_local(
    name: str,
    params: dict[str, Any],
    settings: Settings | None = None,
    *,
    work_dir: Path | None = None,
    max_parallel: int = 1,
    max_backoff_s: float = 1.0,
    run_name: str | None = None,
) -> dict[str, Any]:
    """Render WorkflowTemplate ``name`` and run it here with ``params``.

    ``params`` are checked against the job's model first (ParameterError, UnknownPipelineError).
    Every step sees this process's environment with its ``LLMW_*`` variables replaced by
    ``settings`` (when given; else inherited as they are). Returns ``{"report": <the
    entrypoint's report output, parsed>, "status", "workflow", "outputs", "nodes", "work_dir"}``;
    raises LocalRunError (with ``.run``) when the workflow does not succeed — after the exit
    handler has run. Node folders and artifacts are kept under ``work_dir``
    (default ``.llmw/argo-local``).
    """
    from workflows.registry import template_arguments
    from workflows.render import render_template

    get_job(name)
    arguments = template_arguments(name, params)
    document = render_template(name, settings or get_settings())
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    if settings is not None:
        env.update(settings_env(settings))
    else:
        env.update({k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)})
    runner = ArgoLocalRunner(
        document,
        work_dir=work_dir or DEFAULT_WORK_DIR,
        env=env,
        max_parallel=max_parallel,
        max_backoff_s=max_backoff_s,
        workflow_name=run_name,
    )
    run = runner.run(arguments)
    if run.phase != "Succeeded":
        raise LocalRunError(f"{name} ({run.name}) {run.phase.lower()}: {run.message}", run)
    summary = run.to_dict()
    raw = run.outputs.get("report")
    summary["report"] = json.loads(raw) if raw else None
    return summary
