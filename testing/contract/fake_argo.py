"""Just enough of the Argo Server, in memory, for contract tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from testing.contract.openapi_server import ContractRequest

NAME = "document-ingestion"


class FakeArgo:
    """Just enough of the Argo Server: submit from a WorkflowTemplate, get a workflow."""

    def __init__(self) -> None:
        self.templates = {NAME}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.phases: dict[str, Iterator[str]] = {}
        self.ids = itertools.count(1)

    def handlers(self) -> dict[str, Any]:
        return {
            "WorkflowService_SubmitWorkflow": self.submit,
            "WorkflowService_GetWorkflow": self.get,
        }

    def submit(self, request: ContractRequest) -> tuple[int, Any]:
        body = request.body
        namespace = request.path_params["namespace"]
        if body["resourceKind"] != "WorkflowTemplate" or body["resourceName"] not in self.templates:
            message = f'workflowtemplates.argoproj.io "{body["resourceName"]}" not found'
            return 404, {"code": 5, "message": message, "error": message}
        options = body.get("submitOptions", {})
        name = options.get("name") or f"{options['generateName']}{next(self.ids):05d}"
        if name in self.workflows:
            message = f'workflows.argoproj.io "{name}" already exists'
            return 409, {"code": 6, "message": message, "error": message}
        labels = dict(pair.split("=", 1) for pair in options.get("labels", "").split(",") if pair)
        parameters = [
            {"name": key, "value": value}
            for key, value in (p.split("=", 1) for p in options.get("parameters", []))
        ]
        workflow = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    "workflows.argoproj.io/workflow-template": body["resourceName"],
                    **labels,
                },
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {
                "workflowTemplateRef": {"name": body["resourceName"]},
                "arguments": {"parameters": parameters},
            },
            "status": {},
        }
        self.workflows[name] = workflow
        return 200, workflow

    def get(self, request: ContractRequest) -> tuple[int, Any]:
        name = request.path_params["name"]
        if name not in self.workflows:
            message = f'workflows.argoproj.io "{name}" not found'
            return 404, {"code": 5, "message": message, "error": message}
        workflow = self.workflows[name]
        if name in self.phases:
            workflow["status"]["phase"] = next(self.phases[name])
        return 200, workflow
