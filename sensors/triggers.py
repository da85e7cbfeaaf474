"""A sensor's trigger, one of two paths, each retried, rate limited, at least once, with a
dead-letter trigger:

- through the bridge: a NATS trigger publishing the AI_PIPELINE request (JSON) on
  ``ai.pipeline.trigger.<pipeline>``, its ``request_id`` the sensor's name and the event's id,
  so a redelivered event is the same request, which the bridge runs once;
- directly: an ``argoWorkflow`` trigger submitting a Workflow from the pipeline's
  WorkflowTemplate, or an HTTP trigger creating a run over the KFP API (the token from a Secret).
"""

from __future__ import annotations

from components.registry import get_job
from sensors.catalog import SensorDef
from sensors.config import (
    DEAD_LETTER_SUBJECT,
    HTTP_TIMEOUT_S,
    LABELS,
    RATE_LIMIT,
    RETRY,
    TRIGGER_PREFIX,
    EventsConfig,
)
from sensors.mapping import payload_parameters, workflow_arguments
from sensors.models import (
    ArgoWorkflowTrigger,
    ArtifactLocation,
    BasicAuth,
    HTTPTrigger,
    NATSAuth,
    NATSTrigger,
    SecretKeySelector,
    SecureHeader,
    StatusPolicy,
    Trigger,
    TriggerParameter,
    TriggerParameterSource,
    TriggerPolicy,
    TriggerTemplate,
    ValueFromSource,
)

EVENT_ID = "{{ .Input.id }}"
KFP_RUNS_PATH = "/apis/v2beta1/runs"
KFP_AUTH_KEY = "Authorization"
DEAD_LETTER = "dead-letter"


def trigger_for(sensor: SensorDef, config: EventsConfig) -> Trigger:
    """The sensor's trigger on the path its settings choose."""
    if config.path(sensor.name) == "bridge":
        return bridge_trigger(sensor, config)
    if config.engine_for(get_job(sensor.job)) == "kfp":
        return kfp_trigger(sensor, config)
    return argo_trigger(sensor, config)


def _value(dependency: str, value: str, dest: str) -> TriggerParameter:
    return TriggerParameter(
        src=TriggerParameterSource(dependency_name=dependency, value=value), dest=dest
    )


def _context(dependency: str, dest: str, key: str = "", template: str = "") -> TriggerParameter:
    src = TriggerParameterSource(
        dependency_name=dependency, context_key=key or None, context_template=template or None
    )
    return TriggerParameter(src=src, dest=dest)


def nats_auth(config: EventsConfig) -> NATSAuth | None:
    def key(name: str) -> SecretKeySelector:
        return SecretKeySelector(name=config.nats_secret, key=name)

    if config.nats_auth == "token":
        return NATSAuth(token=key("LLMW_NATS_TOKEN"))
    if config.nats_auth == "basic":
        return NATSAuth(
            basic=BasicAuth(username=key("LLMW_NATS_USER"), password=key("LLMW_NATS_PASSWORD"))
        )
    return None


def bridge_trigger(sensor: SensorDef, config: EventsConfig) -> Trigger:
    dep = sensor.event
    payload = [
        _context(dep, "request_id", template=f"{sensor.name}-{EVENT_ID}"),
        _value(dep, sensor.job, "pipeline"),
    ]
    if config.engine:
        payload.append(_value(dep, config.engine, "engine"))
    payload += payload_parameters(dep, sensor.params, "parameters")
    nats = NATSTrigger(
        url=config.nats_url,
        subject=TRIGGER_PREFIX + sensor.job,
        payload=payload,
        auth=nats_auth(config),
    )
    return reliable(TriggerTemplate(name=f"{sensor.job}-via-bridge", nats=nats), sensor, config)


def argo_trigger(sensor: SensorDef, config: EventsConfig) -> Trigger:
    arguments, fills = workflow_arguments(sensor.event, sensor.params, get_job(sensor.job))
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{sensor.job}-",
            "namespace": config.workflows_namespace,
            "labels": {"app.kubernetes.io/part-of": LABELS["app.kubernetes.io/part-of"]},
        },
        "spec": {
            "workflowTemplateRef": {"name": sensor.job},
            "arguments": {"parameters": arguments},
        },
    }
    submit = ArgoWorkflowTrigger(
        operation="submit", source=ArtifactLocation(resource=workflow), parameters=fills or None
    )
    template = TriggerTemplate(name=f"{sensor.job}-argo", argo_workflow=submit)
    return reliable(template, sensor, config)


def kfp_trigger(sensor: SensorDef, config: EventsConfig) -> Trigger:
    pipeline_id = config.kfp_pipeline_ids.get(sensor.job)
    if not pipeline_id:
        raise ValueError(
            f"sensor {sensor.name} creates KFP runs of {sensor.job} directly: set its pipeline id "
            f'in LLMW_EVENTS_KFP_PIPELINE_IDS ({{"{sensor.job}": "<id>"}})'
        )
    dep = sensor.event
    payload = [
        _context(dep, "display_name", template=f"{sensor.name} {EVENT_ID}"),
        _value(dep, pipeline_id, "pipeline_version_reference.pipeline_id"),
    ]
    if config.kfp_experiment_id:
        payload.append(_value(dep, config.kfp_experiment_id, "experiment_id"))
    payload += payload_parameters(dep, sensor.params, "runtime_config.parameters")
    token = SecretKeySelector(name=config.kfp_auth_secret, key=KFP_AUTH_KEY)
    http = HTTPTrigger(
        url=config.kfp_host + KFP_RUNS_PATH,
        method="POST",
        payload=payload,
        headers={"Content-Type": "application/json"},
        secure_headers=[
            SecureHeader(name="Authorization", value_from=ValueFromSource(secret_key_ref=token))
        ],
        timeout=HTTP_TIMEOUT_S,
    )
    trigger = reliable(TriggerTemplate(name=f"{sensor.job}-kfp", http=http), sensor, config)
    # Only a 200 is a created run: anything else is retried, then dead-lettered.
    return trigger.model_copy(update={"policy": TriggerPolicy(status=StatusPolicy(allow=[200]))})


def dead_letter(sensor: SensorDef, config: EventsConfig) -> Trigger:
    """The event, whole, on the dead-letter subject when the trigger has failed for good."""
    dep = sensor.event
    raw = TriggerParameterSource(dependency_name=dep, data_key="@this", use_raw_data=True)
    payload = [
        _value(dep, sensor.name, "sensor"),
        _value(dep, sensor.job, "pipeline"),
        _value(dep, config.path(sensor.name), "path"),
        _context(dep, "event.id", key="id"),
        _context(dep, "event.source", key="source"),
        _context(dep, "event.name", key="subject"),
        _context(dep, "event.time", key="time"),
        TriggerParameter(src=raw, dest="event.data"),
    ]
    nats = NATSTrigger(
        url=config.nats_url, subject=DEAD_LETTER_SUBJECT, payload=payload, auth=nats_auth(config)
    )
    return Trigger(template=TriggerTemplate(name=DEAD_LETTER, nats=nats), retry_strategy=RETRY)


def reliable(template: TriggerTemplate, sensor: SensorDef, config: EventsConfig) -> Trigger:
    """Retried with backoff, rate limited, at least once, then dead-lettered."""
    return Trigger(
        template=template,
        retry_strategy=RETRY,
        rate_limit=RATE_LIMIT,
        at_least_once=True,
        dlq_trigger=dead_letter(sensor, config),
    )
