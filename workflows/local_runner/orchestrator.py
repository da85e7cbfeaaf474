"""The orchestrator: a workflow's templates, steps and DAG tasks, fan-out, and the exit handler."""

from __future__ import annotations

import functools
import json
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .arguments import template_inputs, workflow_arguments
from .deadlines import STEP_PAST_DEADLINE, Deadline
from .executor import LeafExecutor
from .expressions import evaluate_when
from .feature_gate import check_supported
from .model import DONE, LocalWorkflowRun, NodeError, NodeStatus, Outcome, first_failure
from .scheduling import Siblings, dependencies, fail_fast, ready, targeted
from .step_outputs import StepRun, record_outputs, template_outputs
from .synchronization import holding, mutex_keys
from .templating import item_scope, item_text, substitute, substitute_all

Child = tuple[str, list[dict[str, Any]], str | None]  # display suffix, arguments, false `when`


class ArgoLocalRunner:
    """Runs one rendered Workflow/WorkflowTemplate document on this machine.

    ``env`` is every step's environment (default: this process's). ``work_dir`` keeps each
    node's script file, stderr log and outputs, and the artifacts (``<work_dir>/artifacts``).
    ``max_parallel`` caps every fan-out (Milvus Lite admits one process per database file, so
    ``run_local`` keeps it at 1). ``max_backoff_s`` caps each retry wait. ``lock_dir`` holds the
    mutexes' lock files (default ``<work_dir>/locks``): runs sharing it exclude each other.
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
        lock_dir: Path | None = None,
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
        self.lock_dir = Path(lock_dir or Path(work_dir) / "locks").resolve()
        self.deadline = Deadline()
        self.nodes: list[NodeStatus] = []
        self._lock = threading.Lock()
        self._globals: dict[str, str] = {}
        self._executor = self._leaf_executor()

    def _leaf_executor(self) -> LeafExecutor:
        return LeafExecutor(
            workflow_name=self.name,
            work_dir=self.work_dir,
            artifacts_dir=self.artifacts_dir,
            env=self.env,
            python=self.python,
            cwd=self.cwd,
            max_backoff_s=self.max_backoff_s,
            deadline=self.deadline,
            exit_handler_prefix=f"{self.name}.onExit",
        )

    # --- the run --------------------------------------------------------------------------

    def run(self, arguments: Mapping[str, str] | None = None) -> LocalWorkflowRun:
        """Once the workflow's mutexes are held, run the entrypoint within the workflow's
        deadline, then the exit handler; never raises for a failing step."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            workflow_args = workflow_arguments(self.spec, dict(arguments or {}))
        except NodeError as exc:
            return self._finish("Error", str(exc), {})
        self._globals = {
            "workflow.name": self.name,
            "workflow.namespace": self.namespace,
            "workflow.uid": str(uuid.uuid4()),
            "workflow.status": "Running",
            **{f"workflow.parameters.{k}": v for k, v in workflow_args.items()},
        }
        try:
            keys = mutex_keys(
                self.spec.get("synchronization"), self._globals, self.namespace, "spec"
            )
        except NodeError as exc:
            return self._finish("Error", str(exc), {})
        with holding(keys, self.lock_dir):
            self.deadline = Deadline.of(self.spec.get("activeDeadlineSeconds"))
            self._executor = self._leaf_executor()
            return self._run_held(workflow_args)

    def _run_held(self, workflow_args: dict[str, str]) -> LocalWorkflowRun:
        entry = self.spec.get("entrypoint")
        arg_list = [{"name": k, "value": v} for k, v in workflow_args.items()]
        if entry not in self.templates:
            return self._finish("Error", f"spec.entrypoint {entry!r} is not a template", {})
        root = self._invoke(entry, arg_list, self.name, self.name)
        phase = root.phase if root.phase in ("Succeeded", "Error") else "Failed"
        message = None if phase == "Succeeded" else self._failure_message()
        if phase != "Succeeded" and self.deadline.expired():
            seconds = self.spec["activeDeadlineSeconds"]
            message = f"the workflow exceeded its activeDeadlineSeconds ({seconds}): {message}"
        on_exit = self.spec.get("onExit")
        if on_exit:
            handler = self._exit_handler(on_exit, arg_list, phase)
            if handler.phase != "Succeeded" and phase == "Succeeded":
                phase, message = "Failed", f"exit handler {on_exit!r}: {handler.message}"
        return self._finish(phase, message, dict(root.parameters))

    def _exit_handler(self, on_exit: str, arg_list: list[dict[str, Any]], phase: str) -> NodeStatus:
        """Run ``spec.onExit`` with ``{{workflow.status}}`` and ``{{workflow.failures}}`` set."""
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
        return self._invoke(on_exit, arg_list, f"{self.name}.onExit", f"{self.name}.onExit")

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
        """The first failed node (a pod's first) and its message: ``plan: <its error line>``."""
        first = first_failure(self.nodes)
        if first is None:
            return "failed"
        label = first.display_name
        if not label.startswith(first.template):
            label += f" ({first.template})"
        return f"{label}: {first.message}"

    # --- templates ------------------------------------------------------------------------

    def _new_node(self, name: str, display: str, template: str, kind: str) -> NodeStatus:
        node = NodeStatus(name, display, template, kind, started_at=time.time())
        with self._lock:
            self.nodes.append(node)
        return node

    def _invoke(
        self, template_name: str, arguments: list[dict[str, Any]], node_name: str, display: str
    ) -> NodeStatus:
        """Run a template with arguments as node ``node_name``; returns its finished node."""
        tmpl = self.templates.get(template_name)
        kind = "Pod"
        if tmpl is not None:
            kind = "Steps" if "steps" in tmpl else "DAG" if "dag" in tmpl else "Pod"
        node = self._new_node(node_name, display, template_name, kind)
        try:
            if tmpl is None:
                raise NodeError(f"template {template_name!r} not found")
            inputs = template_inputs(tmpl, arguments)
            scope = dict(self._globals)
            scope.update({f"inputs.parameters.{p['name']}": p["value"] for p in inputs})
            scope["inputs.parameters"] = json.dumps(inputs, separators=(",", ":"))
            where = f"template {template_name!r}"
            keys = mutex_keys(tmpl.get("synchronization"), scope, self.namespace, where)
            with holding(keys, self.lock_dir):
                outcome = self._run_template(tmpl, kind, scope, node)
        except NodeError as exc:
            outcome = Outcome("Error", str(exc))
        node.phase = outcome.phase
        node.message = outcome.message if node.message is None else node.message
        node.result = outcome.result
        node.parameters = outcome.parameters
        node.artifacts = outcome.artifacts
        node.finished_at = time.time()
        return node

    def _run_template(
        self, tmpl: dict[str, Any], kind: str, scope: dict[str, str], node: NodeStatus
    ) -> Outcome:
        if kind == "Steps":
            return self._run_steps(tmpl, scope, node.name)
        if kind == "DAG":
            return self._run_dag(tmpl, scope, node.name)
        # Past the workflow's deadline no pod starts, but the exit handler's (as in Argo).
        if self.deadline.expired() and not node.name.startswith(f"{self.name}.onExit"):
            return Outcome("Failed", STEP_PAST_DEADLINE)
        return self._executor.run(tmpl, scope, node)

    def _siblings(self, tmpl: dict[str, Any]) -> Siblings:
        """How the template's children run: at most the smallest of this runner's
        ``max_parallel``, the template's and the workflow's ``parallelism`` at a time, and
        stopping after a failure when the template is fail-fast."""
        limits = [self.max_parallel]
        for value in (tmpl.get("parallelism"), self.spec.get("parallelism")):
            if value is not None:
                limits.append(max(1, int(value)))
        return Siblings(min(limits), fail_fast(tmpl))

    # --- steps and DAGs -------------------------------------------------------------------

    def _run_steps(self, tmpl: dict[str, Any], scope: dict[str, str], node_name: str) -> Outcome:
        local = dict(scope)
        siblings = self._siblings(tmpl)
        for index, group in enumerate(tmpl["steps"] or []):
            where = f"template {tmpl['name']!r} steps[{index}]"
            base = f"{node_name}[{index}]"
            # The steps of a group run side by side; each fan-out is limited on its own.
            jobs = [
                functools.partial(self._run_step, step, local, base, where, siblings)
                for step in group
            ]
            runs = siblings.run(jobs, _succeeded)
            for run in runs:
                record_outputs(local, f"steps.{run.name}", run)
            if len(runs) < len(group) or not all(_succeeded(run) for run in runs):
                return Outcome("Failed", f"child of step group {index} failed")
        return template_outputs(tmpl, local)

    def _run_dag(self, tmpl: dict[str, Any], scope: dict[str, str], node_name: str) -> Outcome:
        where = f"template {tmpl['name']!r}"
        tasks = {t["name"]: t for t in tmpl["dag"]["tasks"]}
        deps = {name: dependencies(task, set(tasks)) for name, task in tasks.items()}
        target = substitute(str(tmpl["dag"].get("target") or ""), scope, f"{where}.dag.target")
        selected = targeted(list(tasks), deps, target)
        local = dict(scope)
        phase: dict[str, str] = {}
        siblings = self._siblings(tmpl)
        while len(phase) < len(selected) and not siblings.stopped:
            wave = ready(selected, deps, phase)
            if not wave:
                if len(phase) < len(selected):
                    raise NodeError(f"{where}: dependency cycle")
                break
            jobs = [
                functools.partial(
                    self._run_step, tasks[n], local, node_name, f"{where} task {n!r}", siblings
                )
                for n in wave
            ]
            runs = siblings.run(jobs, _succeeded)
            for run in runs:
                record_outputs(local, f"tasks.{run.name}", run)
                phase[run.name] = run.phase
            if len(runs) < len(jobs):  # failFast stopped the wave
                break
        if any(p not in DONE for p in phase.values()):
            failed = sorted(n for n, p in phase.items() if p == "Failed")
            return Outcome("Failed", f"task(s) failed: {', '.join(failed)}")
        return template_outputs(tmpl, local)

    def _run_step(
        self, step: dict[str, Any], scope: dict[str, str], base: str, where: str, siblings: Siblings
    ) -> StepRun:
        """One step or DAG task (fanned out when it has items) and its finished nodes. A problem
        evaluating it becomes one node in phase Error."""
        name = step["name"]
        try:
            children = self._expand(step, scope, where)
            if children is None:
                arguments = substitute_all(
                    step.get("arguments", {}).get("parameters", []), scope, f"{where}.arguments"
                )
                skip = _when(step, scope, where)
        except NodeError as exc:
            node = self._new_node(f"{base}.{name}", name, step["template"], "Pod")
            node.phase, node.message, node.finished_at = "Error", str(exc), time.time()
            return StepRun(name, [node])
        if children is None:
            if skip is not None:
                return StepRun(name, [self._skip(step, f"{base}.{name}", name, skip)])
            return StepRun(
                name, [self._invoke(step["template"], arguments, f"{base}.{name}", name)]
            )
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
        nodes = siblings.run(jobs, lambda node: node.phase in DONE)
        return StepRun(name, nodes, expanded=True, complete=len(nodes) == len(jobs))

    def _expand(
        self, step: dict[str, Any], scope: dict[str, str], where: str
    ) -> list[Child] | None:
        """Each child of a fan-out (None without one): ``(display suffix, arguments, the false
        condition that skips it or None)``."""
        items: list[Any]
        if "withParam" in step:
            raw = substitute(str(step["withParam"]), scope, f"{where}.withParam")
            try:
                items = json.loads(raw)
            except ValueError as exc:
                raise NodeError(f"{where}.withParam is not a JSON list: {raw[:200]!r}") from exc
            if not isinstance(items, list):
                raise NodeError(f"{where}.withParam is not a JSON list: {raw[:200]!r}")
        elif "withItems" in step:
            items = list(step["withItems"])
        else:
            return None
        children: list[Child] = []
        for index, item in enumerate(items):
            scoped = item_scope(scope, item)
            arguments = substitute_all(
                step.get("arguments", {}).get("parameters", []), scoped, f"{where}.arguments"
            )
            children.append((f"({index}:{item_text(item)})", arguments, _when(step, scoped, where)))
        return children

    def _skip(self, step: dict[str, Any], node_name: str, display: str, when: str) -> NodeStatus:
        """A step whose ``when`` is false: a Skipped node, without outputs."""
        node = self._new_node(node_name, display, step["template"], "Skipped")
        node.phase, node.finished_at = "Skipped", time.time()
        node.message = f"when '{when}' evaluated false"
        return node


def _succeeded(run: StepRun) -> bool:
    return run.phase in DONE


def _when(step: dict[str, Any], scope: dict[str, str], where: str) -> str | None:
    """The substituted ``when`` condition when it is false (the step is skipped), else None."""
    if "when" not in step:
        return None
    text = substitute(str(step["when"]), scope, f"{where}.when")
    try:
        return None if evaluate_when(text) else text
    except ValueError as exc:
        raise NodeError(f"{where}.when: {exc}") from None
