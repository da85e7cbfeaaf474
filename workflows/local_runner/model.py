"""argo-local's records and errors: nodes, the run, a template's outcome, and what goes wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DONE = ("Succeeded", "Skipped")  # phases that let the run go on


class LocalRunError(RuntimeError):
    """A local workflow run that failed; ``run`` holds its node statuses; ``bad_input``: its
    first failed step refused its input (``components.exit_codes.EXIT_BAD_INPUT``)."""

    def __init__(
        self, message: str, run: LocalWorkflowRun | None = None, bad_input: bool = False
    ) -> None:
        super().__init__(message)
        self.run = run
        self.bad_input = bad_input


class UnsupportedFeatureError(ValueError):
    """The document uses an Argo feature that argo-local does not run; the message names it."""


class NodeError(Exception):
    """A problem evaluating the document for a node (Argo marks such nodes Error)."""


@dataclass
class NodeStatus:
    """One node of the run, named as Argo names it (``wf[1].ingest-shard(0:0/3)``)."""

    name: str
    display_name: str
    template: str
    type: str  # Steps, DAG, Pod, Skipped
    phase: str = "Pending"  # Succeeded, Failed, Error, Skipped
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

    def first_failure(self) -> NodeStatus | None:
        return first_failure(self.nodes)

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
class Outcome:
    """What running a template gave: its phase, message and outputs."""

    phase: str
    message: str | None = None
    result: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)


def first_failure(nodes: list[NodeStatus]) -> NodeStatus | None:
    """The first node that failed or errored, a pod's (a step's own) before a template's."""
    failed = [n for n in nodes if n.phase in ("Failed", "Error")]
    pods = [n for n in failed if n.type == "Pod"]
    return next(iter(pods or failed), None)


def group_phase(nodes: list[NodeStatus]) -> str:
    """A step's phase from its nodes: Skipped when every one was, Succeeded when each is done."""
    phases = {n.phase for n in nodes}
    if phases == {"Skipped"}:
        return "Skipped"
    return "Succeeded" if phases <= set(DONE) else "Failed"


def safe_name(name: str) -> str:
    """A node name as a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:180]
