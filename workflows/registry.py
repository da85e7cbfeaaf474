"""Job name -> Hera WorkflowTemplate builder. Names and parameter models are
``components.registry.JOBS``'s; adding a job is one entry here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hera.workflows import WorkflowTemplate

from components.orchestration.parameter_text import argument_text
from components.registry import get_job
from components.settings import Settings
from workflows import batch_inference, ingestion, model_rollout_template, removal

TemplateBuilder = Callable[[Settings], WorkflowTemplate]

TEMPLATES: dict[str, TemplateBuilder] = {
    ingestion.TEMPLATE_NAME: ingestion.build_template,
    batch_inference.TEMPLATE_NAME: batch_inference.build_template,
    removal.TEMPLATE_NAME: removal.build_template,
    model_rollout_template.TEMPLATE_NAME: model_rollout_template.build_template,
}


def get_template(name: str, settings: Settings) -> WorkflowTemplate:
    """The WorkflowTemplate of a registered job; UnknownPipelineError (listing the known ones)."""
    get_job(name)
    return TEMPLATES[name](settings)


def template_arguments(name: str, params: dict[str, Any]) -> dict[str, str]:
    """Parameters checked against the job's model, as the template's (string) arguments.

    Unset optional values (None) become "" (``milvus_uri``: "use the settings' Milvus").
    Raises ParameterError naming each problem and the valid parameters.
    """
    model = get_job(name).validate(params)
    return {key: argument_text(value) for key, value in model.model_dump(mode="json").items()}
