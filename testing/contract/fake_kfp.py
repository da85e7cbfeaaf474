"""Just enough of the KFP v2beta1 API server, in memory, for contract tests."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from testing.contract.openapi_server import ContractRequest


class FakeKFP:
    """Just enough of the KFP API server: healthz, experiments and runs, in memory."""

    def __init__(self) -> None:
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.states: dict[str, Iterator[str]] = {}
        self.ids = itertools.count(1)

    def handlers(self) -> dict[str, Any]:
        return {
            "HealthzService_GetHealthz": self.healthz,
            "ExperimentService_ListExperiments": self.list_experiments,
            "ExperimentService_CreateExperiment": self.create_experiment,
            "RunService_CreateRun": self.create_run,
            "RunService_GetRun": self.get_run,
            "RunService_ListRuns": self.list_runs,
        }

    def add_experiment(self, name: str) -> str:
        experiment_id = f"exp-{next(self.ids)}"
        self.experiments[experiment_id] = {
            "experiment_id": experiment_id,
            "display_name": name,
            "storage_state": "AVAILABLE",
        }
        return experiment_id

    def healthz(self, request: ContractRequest) -> tuple[int, Any]:
        return 200, {"multi_user": False}

    def list_experiments(self, request: ContractRequest) -> tuple[int, Any]:
        found = list(self.experiments.values())
        for predicate in json.loads(request.query.get("filter", ["{}"])[0]).get("predicates", []):
            # kfp.Client sends the enum's number (1 = EQUALS); protojson accepts either.
            assert predicate["operation"] in (1, "EQUALS") and predicate["key"] == "display_name"
            found = [e for e in found if e["display_name"] == predicate["stringValue"]]
        return 200, {"experiments": found, "total_size": len(found)} if found else {}

    def create_experiment(self, request: ContractRequest) -> tuple[int, Any]:
        experiment_id = self.add_experiment(request.body["display_name"])
        return 200, self.experiments[experiment_id]

    def create_run(self, request: ContractRequest) -> tuple[int, Any]:
        run_id = f"run-{next(self.ids)}"
        run = {
            **request.body,
            "run_id": run_id,
            "state": "PENDING",
            "created_at": "2026-01-01T00:00:00Z",
        }
        self.runs[run_id] = run
        return 200, run

    def get_run(self, request: ContractRequest) -> tuple[int, Any]:
        run_id = request.path_params["run_id"]
        if run_id not in self.runs:
            return 404, {"code": 5, "message": f"Run {run_id} not found", "error": "not found"}
        run = self.runs[run_id]
        if run_id in self.states:
            run["state"] = next(self.states[run_id])
        return 200, run

    def list_runs(self, request: ContractRequest) -> tuple[int, Any]:
        found = list(self.runs.values())
        experiment_id = request.query.get("experiment_id", [None])[0]
        if experiment_id:
            found = [r for r in found if r.get("experiment_id") == experiment_id]
        for predicate in json.loads(request.query.get("filter", ["{}"])[0]).get("predicates", []):
            assert predicate["operation"] in (1, "EQUALS") and predicate["key"] == "display_name"
            value = predicate.get("stringValue", predicate.get("string_value"))
            found = [r for r in found if r["display_name"] == value]
        found.sort(key=lambda r: r["created_at"], reverse=True)
        return 200, {"runs": found, "total_size": len(found)} if found else {}
