"""The executor: one leaf node (script or container template) in a subprocess, with retries."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.exit_codes import step_error
from components.tracing import TRACEPARENT_ENV

from .deadlines import Deadline, Limit, run_group
from .expressions import parse_duration
from .model import NodeError, NodeStatus, Outcome, UnsupportedFeatureError, safe_name
from .resource import run_resource
from .retrying import LastRetry, RetryRule, backoff_delay
from .templating import substitute, substitute_all

MAX_RESULT_BYTES = 256 * 1024  # Argo keeps the last 256 kB of a script's stdout
_PYTHON = re.compile(r"python(3(\.\d+)?)?")


@dataclass
class _Launch:
    """One attempt's command line and where its files go."""

    argv: list[str]
    env: dict[str, str]
    folder: Path
    outputs_dir: str | None  # the template's hera__outputs_directory
    local_outputs: Path  # where that directory is here


@dataclass
class LeafExecutor:
    """Runs leaf nodes as the Argo executor would, each attempt in a subprocess.

    ``env`` is every step's environment; ``work_dir`` (the run's folder) keeps each attempt's
    script, logs and outputs under ``nodes/<node>/attempt-<n>``; output artifacts are copied
    under ``artifacts_dir``. ``python`` replaces a ``python``/``python3`` command; ``cwd`` is where
    commands run (and what relative output paths are relative to). ``max_backoff_s`` caps each
    retry wait. ``deadline`` is the workflow's (``activeDeadlineSeconds``), which the nodes
    under ``exit_handler_prefix`` ignore, as in Argo.
    """

    workflow_name: str
    work_dir: Path
    artifacts_dir: Path
    env: Mapping[str, str]
    python: str
    cwd: Path
    max_backoff_s: float
    deadline: Deadline = field(default_factory=Deadline)
    exit_handler_prefix: str | None = None

    def run(self, tmpl: dict[str, Any], scope: dict[str, str], node: NodeStatus) -> Outcome:
        """Attempt the template, retried under its ``retryStrategy``: the last attempt's outcome,
        its message the step's own error line, with its exit code and the attempts made."""
        rule = RetryRule.of(tmpl)
        first_start = time.monotonic()
        # The template's timeout covers the node, every attempt and wait together.
        node_timeout = Deadline.of(tmpl.get("timeout"))
        attempt = 0
        while True:
            node.attempts = attempt + 1
            started = time.monotonic()
            outcome, exit_code = self.attempt(tmpl, scope, node, attempt, node_timeout)
            node.exit_code = exit_code
            if outcome.phase == "Succeeded":
                return outcome
            last = LastRetry(exit_code, outcome.phase, time.monotonic() - started)
            delay = backoff_delay(rule.backoff, attempt)
            waited = time.monotonic() - first_start + delay
            # No retry once the node's timeout or the workflow's deadline has passed.
            out_of_time = self._deadline(node).expired() or node_timeout.expired()
            stop = attempt >= rule.limit or not rule.retries(last) or rule.past_max(waited)
            if stop or out_of_time:
                return _with_details(outcome, exit_code, attempt + 1)
            time.sleep(min(delay, self.max_backoff_s))
            attempt += 1

    def _deadline(self, node: NodeStatus) -> Deadline:
        """The workflow's deadline for ``node``; none for the exit handler's nodes."""
        prefix = self.exit_handler_prefix
        return Deadline() if prefix and node.name.startswith(prefix) else self.deadline

    def _limit(self, tmpl: dict[str, Any], node: NodeStatus, node_timeout: Deadline) -> Limit:
        """The nearest limit of one attempt: the pod's deadline, the node's timeout, the
        workflow's deadline; with what to say when it passes."""
        pod = tmpl.get("activeDeadlineSeconds")
        return Limit.nearest(
            (None if pod is None else parse_duration(pod), f"activeDeadlineSeconds ({pod}s)"),
            (node_timeout.remaining(), f"timeout ({tmpl.get('timeout')})"),
            (self._deadline(node).remaining(), "the workflow's activeDeadlineSeconds"),
        )

    def attempt(
        self,
        tmpl: dict[str, Any],
        scope: dict[str, str],
        node: NodeStatus,
        attempt: int,
        node_timeout: Deadline | None = None,
    ) -> tuple[Outcome, int | None]:
        """One attempt: its outcome and the process's exit code (None when it never exited)."""
        where = f"template {tmpl['name']!r}"
        scope = {**scope, "retries": str(attempt), "pod.name": node.name}
        if "resource" in tmpl:  # API calls made here, no process (resource.py)
            limit = self._limit(tmpl, node, node_timeout or Deadline())
            folder = self.work_dir / "nodes" / safe_name(node.name) / f"attempt-{attempt}"
            return run_resource(tmpl, scope, folder, self.env, (limit.seconds, limit.reason)), None
        launch = self._prepare(tmpl, scope, node, attempt, where)
        limit = self._limit(tmpl, node, node_timeout or Deadline())
        stderr_path = launch.folder / "stderr.log"
        stdout_path = launch.folder / "stdout.log"
        try:
            with stderr_path.open("wb") as stderr, stdout_path.open("wb") as stdout:
                returncode = run_group(
                    launch.argv,
                    cwd=self.cwd,
                    env=launch.env,
                    stdout=stdout,
                    stderr=stderr,
                    timeout=limit.seconds,
                )
        except OSError as exc:
            return Outcome("Error", f"cannot start {launch.argv[0]!r}: {exc}"), None
        result = self._result(stdout_path.read_bytes())
        if returncode is None:
            message = f"exceeded {limit.reason}: its processes were killed (log: {stderr_path})"
            return Outcome("Failed", message, result=result), None
        if returncode != 0:
            # The step's own line saying what was wrong; Argo's words when it said nothing.
            message = step_error(_read(stderr_path)) or "Error"
            return Outcome("Failed", message, result=result), returncode
        try:
            parameters, artifacts = self._leaf_outputs(tmpl, scope, launch, node, where)
        except NodeError as exc:
            return Outcome("Error", str(exc), result=result), returncode
        return Outcome("Succeeded", None, result, parameters, artifacts), returncode

    def _prepare(
        self,
        tmpl: dict[str, Any],
        scope: dict[str, str],
        node: NodeStatus,
        attempt: int,
        where: str,
    ) -> _Launch:
        """The attempt's folder and command: ``command + args``, then a script's source file."""
        folder = self.work_dir / "nodes" / safe_name(node.name) / f"attempt-{attempt}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = "script" if "script" in tmpl else "container"
        body = tmpl[kind]
        command = [str(c) for c in substitute_all(body.get("command", []), scope, where)]
        args = [str(a) for a in substitute_all(body.get("args", []), scope, where)]
        if command and _PYTHON.fullmatch(Path(command[0]).name):
            command[0] = self.python
        env, outputs_dir, local_outputs = self._step_env(body, scope, folder, where)
        argv = command + args
        if kind == "script":
            source = substitute(str(body.get("source", "")), scope, f"{where}.script.source")
            script = folder / "script"
            script.write_text(source, encoding="utf-8")
            argv.append(str(script))
        return _Launch(argv, env, folder, outputs_dir, local_outputs)

    @staticmethod
    def _result(stdout_bytes: bytes) -> str:
        """``outputs.result``: stdout less one trailing newline, its last 256 kB."""
        stdout = stdout_bytes.decode("utf-8", "replace")
        result = stdout[:-1] if stdout.endswith("\n") else stdout
        if len(result.encode()) > MAX_RESULT_BYTES:
            result = result.encode()[-MAX_RESULT_BYTES:].decode("utf-8", "ignore")
        return result

    def _step_env(
        self, body: dict[str, Any], scope: dict[str, str], folder: Path, where: str
    ) -> tuple[dict[str, str], str | None, Path]:
        """The subprocess environment: this runner's, plus only Hera's runner variables and the
        run's trace context from the template (cluster env — secrets, in-cluster endpoints, GPU
        variables — is dropped). An empty ``TRACEPARENT`` (untraced run) keeps this runner's."""
        env = dict(self.env)
        local_outputs = folder / "hera-outputs"
        outputs_dir: str | None = None
        for var in body.get("env", []):
            name = var.get("name", "")
            if not (name.startswith("hera__") or name == TRACEPARENT_ENV) or "value" not in var:
                continue
            value = substitute(str(var["value"]), scope, f"{where}.env.{name}")
            if name == TRACEPARENT_ENV and not value:
                continue
            if name == "hera__outputs_directory":
                outputs_dir = value
                value = str(local_outputs)
            env[name] = value
        return env, outputs_dir, local_outputs

    def _local_path(self, path: str, launch: _Launch) -> Path:
        """Where an output path of the template is here (Hera's outputs directory remapped)."""
        outputs_dir = launch.outputs_dir
        if outputs_dir and (path == outputs_dir or path.startswith(outputs_dir.rstrip("/") + "/")):
            return launch.local_outputs / path[len(outputs_dir.rstrip("/")) :].lstrip("/")
        return self.cwd / path  # an absolute path stays as it is

    def _leaf_outputs(
        self,
        tmpl: dict[str, Any],
        scope: dict[str, str],
        launch: _Launch,
        node: NodeStatus,
        where: str,
    ) -> tuple[dict[str, str], dict[str, str]]:
        outputs = substitute_all(tmpl.get("outputs", {}), scope, f"{where}.outputs")
        parameters: dict[str, str] = {}
        for param in outputs.get("parameters", []):
            value_from = param.get("valueFrom", {})
            if "path" in value_from:
                path = self._local_path(value_from["path"], launch)
                if path.is_file():
                    parameters[param["name"]] = path.read_text(encoding="utf-8")
                elif "default" in value_from:
                    parameters[param["name"]] = str(value_from["default"])
                else:
                    raise NodeError(
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
            copied = self._copy_artifact(artifact, launch, node)
            if copied is not None:
                artifacts[artifact["name"]] = copied
        return parameters, artifacts

    def _copy_artifact(
        self, artifact: dict[str, Any], launch: _Launch, node: NodeStatus
    ) -> str | None:
        """Copy an output artifact to the artifact folder (at its S3 ``key`` when it has one)."""
        source = self._local_path(str(artifact.get("path", "")), launch)
        if not source.exists():
            if artifact.get("optional"):
                return None
            raise NodeError(
                f"output artifact {artifact['name']!r}: {artifact.get('path')} not written"
            )
        key = (artifact.get("s3") or {}).get("key")
        target = self.artifacts_dir / (
            key or f"{self.workflow_name}/{safe_name(node.name)}/{artifact['name']}"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
        return str(target)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _with_details(outcome: Outcome, exit_code: int | None, attempts: int) -> Outcome:
    """A failed outcome's message with the exit code and the attempts made, when they tell."""
    details = [f"exit code {exit_code}"] if outcome.phase == "Failed" and exit_code else []
    if attempts > 1:
        details.append(f"{attempts} attempts")
    if details:
        outcome.message = f"{outcome.message} ({', '.join(details)})"
    return outcome
