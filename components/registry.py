"""The jobs this project runs: name -> parameter model. Engine rooms map the same names.

Adding a pipeline is one entry here, plus one in ``pipelines/`` and one in ``workflows/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from components.inference.models import BatchJobParams
from components.ingest.models import IngestParams


class UnknownPipelineError(KeyError):
    """A pipeline name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class ParameterError(ValueError):
    """Parameters that the pipeline's model refuses; the message names each problem."""


@dataclass(frozen=True)
class JobSpec:
    name: str
    params_model: type[BaseModel]
    description: str
    default_engine: str = "argo"

    def parameter_names(self) -> list[str]:
        return list(self.params_model.model_fields)

    def validate(self, values: dict[str, Any]) -> BaseModel:
        """The parameters as the model, or ParameterError listing what is wrong and what's valid."""
        try:
            return self.params_model.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"]) or "(parameters)"
                if error["type"] == "extra_forbidden":
                    problems.append(f"unknown parameter {field!r}")
                else:
                    problems.append(f"{field}: {error['msg']}")
            valid = ", ".join(self.parameter_names())
            raise ParameterError(
                f"{self.name}: {'; '.join(problems)} (parameters: {valid})"
            ) from None


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in [
        JobSpec(
            name="document-ingestion",
            params_model=IngestParams,
            description="Documents from a folder or s3:// prefix, chunked, embedded, into Milvus.",
        ),
        JobSpec(
            name="batch-inference",
            params_model=BatchJobParams,
            description="Prompts (OpenAI batch JSONL or a dataset) through an engine into JSONL.",
        ),
    ]
}


def get_job(name: str) -> JobSpec:
    try:
        return JOBS[name]
    except KeyError:
        known = ", ".join(sorted(JOBS))
        raise UnknownPipelineError(f"unknown pipeline {name!r} (registered: {known})") from None


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> a dict; JSON values (lists, objects, numbers) are decoded."""
    values: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"parameter {item!r} is not KEY=VALUE")
        value: Any = raw
        if raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise ParameterError(f"parameter {key}: {raw!r} is not valid JSON") from exc
        values[key.strip()] = value
    return values
