"""Where each of a pipeline's parameters lands in a trigger, by Argo Events' parameter rules.

- A JSON payload (the bridge's request, a KFP run): ``parameters.<name>`` or
  ``runtime_config.parameters.<name>``, typed: event fields as the event has them
  (``useRawData``), constants as JSON (a gjson literal, ``!true``, for anything but a string).
- An Argo Workflow: ``spec.arguments.parameters[i].value``, text as Argo passes parameters
  (``true``/``false``, JSON for lists); constants are written into the Workflow itself.
- Only the parameters a sensor sets are sent: the others keep the pipeline's own defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from components.orchestration.parameter_text import argument_text
from components.registry import JobSpec
from sensors.catalog import Const, FromEvent, ParamSource, WholeBody
from sensors.models import TriggerParameter, TriggerParameterSource

ARGUMENTS_DEST = "spec.arguments.parameters"


def source(dependency: str, param: ParamSource, *, typed: bool) -> TriggerParameterSource:
    """Where one parameter's value comes from, typed (JSON payloads) or as text (Argo)."""
    if isinstance(param, Const):
        if isinstance(param.value, str) or not typed:
            return TriggerParameterSource(
                dependency_name=dependency, value=argument_text(param.value)
            )
        literal = "!" + json.dumps(param.value, separators=(",", ":"))
        return TriggerParameterSource(
            dependency_name=dependency, data_key=literal, use_raw_data=True
        )
    default = argument_text(param.default) if param.has_default else None
    if param.template is not None:
        template = f'["{param.template}"]' if param.as_list and not typed else param.template
        return TriggerParameterSource(
            dependency_name=dependency, data_template=template, value=default
        )
    return TriggerParameterSource(
        dependency_name=dependency,
        data_key=param.key,
        value=default,
        use_raw_data=True if typed else None,
    )


def payload_parameters(
    dependency: str, params: Mapping[str, ParamSource] | WholeBody, base: str
) -> list[TriggerParameter]:
    """The parameters of a JSON payload, under ``base`` (``parameters``)."""
    if isinstance(params, WholeBody):
        whole = TriggerParameterSource(
            dependency_name=dependency, data_key=params.key, use_raw_data=True
        )
        return [TriggerParameter(src=whole, dest=base)]
    found = []
    for name, param in params.items():
        as_list = isinstance(param, FromEvent) and param.as_list
        dest = f"{base}.{name}.0" if as_list else f"{base}.{name}"
        found.append(TriggerParameter(src=source(dependency, param, typed=True), dest=dest))
    return found


def by_name(job: JobSpec, body: WholeBody) -> dict[str, ParamSource]:
    """Each of the job's parameters from the body's key of its name, with the job's default
    when the body has none (a required parameter has no default: a filter demands it)."""
    mapped: dict[str, ParamSource] = {}
    for name, field in job.params_model.model_fields.items():
        required = field.is_required()
        mapped[name] = FromEvent(
            key=f"{body.key}.{name}",
            default=None if required else field.default,
            has_default=not required,
        )
    return mapped


def workflow_arguments(
    dependency: str, params: Mapping[str, ParamSource] | WholeBody, job: JobSpec
) -> tuple[list[dict[str, str]], list[TriggerParameter]]:
    """A Workflow's arguments (constants and defaults in place) and the trigger parameters that
    fill in the values from the event."""
    if isinstance(params, WholeBody):
        params = by_name(job, params)
    arguments: list[dict[str, str]] = []
    fills: list[TriggerParameter] = []
    for index, (name, param) in enumerate(params.items()):
        if isinstance(param, Const):
            arguments.append({"name": name, "value": argument_text(param.value)})
            continue
        default = argument_text(param.default) if param.has_default else ""
        arguments.append({"name": name, "value": default})
        dest = f"{ARGUMENTS_DEST}.{index}.value"
        fills.append(TriggerParameter(src=source(dependency, param, typed=False), dest=dest))
    return arguments, fills
