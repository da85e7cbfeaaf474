"""Job name -> KFP pipeline. The names and parameter models are ``components.registry.JOBS``'s."""

from __future__ import annotations

from typing import Any, Protocol

from kfp.dsl.base_component import BaseComponent
from pydantic import BaseModel

from components import tracing
from components.inference.models import BatchReport
from components.ingest.models import IngestReport, RemovalReport
from components.registry import get_job
from components.settings import Settings
from pipelines import batch_inference, ingestion, model_rollout, removal

# Every pipeline's parameter for the run's W3C trace context (default "": untraced).
TRACEPARENT_PARAMETER = "traceparent"


class PipelineBuilder(Protocol):
    """Builds a job's pipeline for the given settings (image, secrets, placement)."""

    def __call__(
        self, settings: Settings | None = None, *, for_cluster: bool = True
    ) -> BaseComponent: ...


PIPELINES: dict[str, PipelineBuilder] = {
    ingestion.PIPELINE_NAME: ingestion.build_pipeline,
    batch_inference.PIPELINE_NAME: batch_inference.build_pipeline,
    removal.PIPELINE_NAME: removal.build_pipeline,
    model_rollout.PIPELINE_NAME: model_rollout.build_pipeline,
}

# What each pipeline's output is (KFP hands numbers back as floats; the model restores them).
RESULT_MODELS: dict[str, type[BaseModel]] = {
    ingestion.PIPELINE_NAME: IngestReport,
    batch_inference.PIPELINE_NAME: BatchReport,
    removal.PIPELINE_NAME: RemovalReport,
}


def get_pipeline(
    name: str, settings: Settings | None = None, *, for_cluster: bool = True
) -> BaseComponent:
    """The pipeline of a registered job; UnknownPipelineError (listing the known ones) if none."""
    get_job(name)
    return PIPELINES[name](settings, for_cluster=for_cluster)


def pipeline_arguments(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Parameters checked against the job's model, as pipeline arguments.

    Unset optional values (None) are left out, so the pipeline's defaults apply: KFP parameters
    cannot be null (``milvus_uri`` defaults to "", which the steps read as "from settings").
    Raises ParameterError naming each problem and the valid parameters.
    """
    model = get_job(name).validate(params)
    return {key: value for key, value in model.model_dump(mode="json").items() if value is not None}


def with_trace(arguments: dict[str, Any], traceparent: str | None = None) -> dict[str, Any]:
    """``arguments`` plus the run's ``traceparent`` (the given one, else the current span's)
    when there is one; added after the job's parameters are checked, so a request cannot set it.
    Every component joins that trace (``components.tracing.join_trace``)."""
    traceparent = traceparent or tracing.current_traceparent()
    return {**arguments, TRACEPARENT_PARAMETER: traceparent} if traceparent else arguments


def normalize_result(name: str, result: Any) -> Any:
    """A pipeline's output as its model dumps it (ints back from KFP's floats)."""
    model = RESULT_MODELS.get(name)
    if model is None or not isinstance(result, dict):
        return result
    return model.model_validate(result).model_dump(mode="json")
