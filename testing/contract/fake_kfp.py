"""Just enough of the KFP v2beta1 API server, in memory, for contract tests: health, experiments,
pipelines and their versions (uploads, as KFP names and refuses them), runs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import yaml

from testing.contract.openapi_server import ContractRequest, grpc_error

CREATED_AT = "2026-01-01T00:00:00Z"


def _display_name_filter(request: ContractRequest) -> str | None:
    """The value of a ``display_name EQUALS`` filter, if the request has one."""
    value = None
    for predicate in json.loads(request.query.get("filter", ["{}"])[0]).get("predicates", []):
        # kfp.Client sends the enum's number (1 = EQUALS); protojson accepts either.
        assert predicate["operation"] in (1, "EQUALS") and predicate["key"] == "display_name"
        value = predicate.get("stringValue", predicate.get("string_value"))
    return value


class FakeKFP:
    """Just enough of the KFP API server, in memory."""

    def __init__(self) -> None:
        self.experiments: dict[str, dict[str, Any]] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}  # version id -> version
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
            "PipelineService_ListPipelines": self.list_pipelines,
            "PipelineService_ListPipelineVersions": self.list_versions,
            "UploadPipeline": self.upload_pipeline,
            "UploadPipelineVersion": self.upload_version,
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

    def list_pipelines(self, request: ContractRequest) -> tuple[int, Any]:
        found = list(self.pipelines.values())
        namespace = request.query.get("namespace", [""])[0]
        found = [p for p in found if p.get("namespace", "") == namespace]
        name = _display_name_filter(request)
        if name is not None:
            found = [p for p in found if p["display_name"] == name]
        return 200, {"pipelines": found, "total_size": len(found)} if found else {}

    def list_versions(self, request: ContractRequest) -> tuple[int, Any]:
        pipeline_id = request.path_params["pipeline_id"]
        if pipeline_id not in self.pipelines:
            return 404, grpc_error(404, f"Pipeline {pipeline_id} not found")
        found = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        name = _display_name_filter(request)
        if name is not None:
            found = [v for v in found if v["display_name"] == name]
        return 200, {"pipeline_versions": found, "total_size": len(found)} if found else {}

    def upload_pipeline(self, request: ContractRequest) -> tuple[int, Any]:
        """Like KFP: the pipeline and a first version named like it; names are unique."""
        name = request.query["name"][0]
        namespace = request.query.get("namespace", [""])[0]
        if any(p["display_name"] == name for p in self.pipelines.values()):
            return 409, grpc_error(409, f"pipeline {name!r} already exists")
        pipeline_id = f"pipeline-{next(self.ids)}"
        pipeline = {"pipeline_id": pipeline_id, "display_name": name, "created_at": CREATED_AT}
        if namespace:
            pipeline["namespace"] = namespace
        if "description" in request.query:
            pipeline["description"] = request.query["description"][0]
        self.pipelines[pipeline_id] = pipeline
        self.add_version(pipeline_id, name, request.body["uploadfile"])
        return 200, pipeline

    def upload_version(self, request: ContractRequest) -> tuple[int, Any]:
        pipeline_id = request.query["pipelineid"][0]
        name = request.query["name"][0]
        if pipeline_id not in self.pipelines:
            return 404, grpc_error(404, f"Pipeline {pipeline_id} not found")
        taken = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        if any(v["display_name"] == name for v in taken):
            return 409, grpc_error(409, f"pipeline version {name!r} already exists")
        version = self.add_version(pipeline_id, name, request.body["uploadfile"])
        if "description" in request.query:
            version["description"] = request.query["description"][0]
        return 200, version

    def add_version(self, pipeline_id: str, name: str, package: bytes) -> dict[str, Any]:
        spec, *platform = yaml.safe_load_all(package)
        version_id = f"version-{next(self.ids)}"
        self.versions[version_id] = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": version_id,
            "display_name": name,
            "created_at": CREATED_AT,
            "pipeline_spec": {"pipeline_spec": spec, "platform_spec": platform[0]}
            if platform
            else spec,
        }
        return self.versions[version_id]

    def add_pipeline(self, pipeline_id: str, name: str, package: bytes = b"{}") -> None:
        """A pipeline uploaded beforehand (by an operator), with one version."""
        self.pipelines[pipeline_id] = {
            "pipeline_id": pipeline_id,
            "display_name": name,
            "created_at": CREATED_AT,
        }
        self.add_version(pipeline_id, name, package)

    def latest_version(self, pipeline_id: str) -> str | None:
        found = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        return found[-1]["pipeline_version_id"] if found else None

    def create_run(self, request: ContractRequest) -> tuple[int, Any]:
        reference = request.body.get("pipeline_version_reference")
        body = request.body
        if reference is not None:
            if "pipeline_version_id" not in reference:  # KFP runs the pipeline's latest version
                latest = self.latest_version(reference.get("pipeline_id", ""))
                if latest is None:
                    return 404, grpc_error(
                        404, f"Pipeline {reference.get('pipeline_id')} not found"
                    )
                reference = {**reference, "pipeline_version_id": latest}
                body = {**body, "pipeline_version_reference": reference}
            version = self.versions.get(reference["pipeline_version_id"])
            if version is None or version["pipeline_id"] != reference.get("pipeline_id"):
                return 404, grpc_error(404, f"pipeline version {reference} not found")
        run_id = f"run-{next(self.ids)}"
        run = {**body, "run_id": run_id, "state": "PENDING", "created_at": CREATED_AT}
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
        name = _display_name_filter(request)
        if name is not None:
            found = [r for r in found if r["display_name"] == name]
        found.sort(key=lambda r: r["created_at"], reverse=True)
        return 200, {"runs": found, "total_size": len(found)} if found else {}
