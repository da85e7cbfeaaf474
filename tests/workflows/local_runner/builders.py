"""Small synthetic WorkflowTemplates for the argo-local tests, and a way to run them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from workflows.local_runner import ArgoLocalRunner, LocalWorkflowRun

FLAKY = """
    import pathlib, sys
    counter = pathlib.Path("{{inputs.parameters.counter}}")
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt < {{inputs.parameters.succeed_on}}:
        print(f"attempt {attempt} fails", file=sys.stderr)
        sys.exit(3)
    print(f"succeeded on attempt {attempt}")
"""


def script(name: str, source: str, *params: str, **extra: Any) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": name,
        "script": {
            "image": "python:3.12",
            "command": ["python"],
            "source": textwrap.dedent(source),
        },
        **extra,
    }
    if params:
        template["inputs"] = {"parameters": [{"name": p} for p in params]}
    return template


def step(name: str, template: str, **arguments: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "template": template}
    if arguments:
        out["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in arguments.items()]}
    return out


def document(templates: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "synthetic", "namespace": "test"},
        "spec": {"entrypoint": "main", "templates": templates, **spec},
    }


def run(
    doc: dict[str, Any], tmp_path: Path, args: dict[str, str] | None = None, **kw: Any
) -> LocalWorkflowRun:
    kw.setdefault("max_backoff_s", 0.0)
    runner = ArgoLocalRunner(doc, work_dir=tmp_path / "work", cwd=tmp_path, **kw)
    return runner.run(args or {})


def pods(result: LocalWorkflowRun) -> dict[str, str]:
    """Each leaf node's phase (skipped ones too), by display name."""
    return {n.display_name: n.phase for n in result.nodes if n.type in ("Pod", "Skipped")}
