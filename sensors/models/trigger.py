"""Triggers: a NATS publish, an Argo Workflow submission, an HTTP request; how they take values
from the event, retry, are rate limited and dead-lettered (Argo Events v1.9)."""

from __future__ import annotations

from typing import Any, Literal

from sensors.models.base import SecretKeySelector, WireModel


class TriggerParameterSource(WireModel):
    """Where a value comes from: the event's context (``context_key``/``context_template``),
    its data (``data_key``, a gjson path, or ``data_template``), else ``value`` (the default)."""

    dependency_name: str
    context_key: str | None = None
    context_template: str | None = None
    data_key: str | None = None
    data_template: str | None = None
    value: str | None = None
    use_raw_data: bool | None = None


class TriggerParameter(WireModel):
    """A value set at ``dest`` (an sjson path) of the payload or the resource."""

    src: TriggerParameterSource
    dest: str


class BasicAuth(WireModel):
    username: SecretKeySelector
    password: SecretKeySelector


class NATSAuth(WireModel):
    basic: BasicAuth | None = None
    token: SecretKeySelector | None = None


class NATSTrigger(WireModel):
    """Publishes the payload (JSON) on ``subject``: core NATS, no headers."""

    url: str
    subject: str
    payload: list[TriggerParameter]
    auth: NATSAuth | None = None


class ValueFromSource(WireModel):
    secret_key_ref: SecretKeySelector


class SecureHeader(WireModel):
    name: str
    value_from: ValueFromSource


class HTTPTrigger(WireModel):
    url: str
    method: str
    payload: list[TriggerParameter]
    headers: dict[str, str] | None = None
    secure_headers: list[SecureHeader] | None = None
    timeout: int | None = None


class ArtifactLocation(WireModel):
    resource: dict[str, Any]


class ArgoWorkflowTrigger(WireModel):
    """``submit``: creates ``source.resource`` (a Workflow) after applying ``parameters``."""

    operation: Literal["submit"]
    source: ArtifactLocation
    parameters: list[TriggerParameter] | None = None


class TriggerTemplate(WireModel):
    name: str
    nats: NATSTrigger | None = None
    http: HTTPTrigger | None = None
    argo_workflow: ArgoWorkflowTrigger | None = None


class StatusPolicy(WireModel):
    allow: list[int]


class TriggerPolicy(WireModel):
    """For HTTP triggers: the response codes that count as success."""

    status: StatusPolicy


class Backoff(WireModel):
    steps: int
    duration: str
    factor: float
    jitter: float


class RateLimit(WireModel):
    unit: Literal["Second", "Minute", "Hour"]
    requests_per_unit: int


class Trigger(WireModel):
    template: TriggerTemplate
    retry_strategy: Backoff | None = None
    rate_limit: RateLimit | None = None
    policy: TriggerPolicy | None = None
    at_least_once: bool | None = None
    dlq_trigger: Trigger | None = None
