"""Argo Events (v1.9) and Kubernetes objects in the shape their controllers read.

Hera ships Argo Events models, generated from the Argo Server's swagger; several of them are not
the shape a Sensor or an EventSource has in Kubernetes (a ``K8SResource`` is a base64 string
there, a webhook's fields sit under ``webhookContext``, a ``Backoff``'s duration and factor are
objects, numbers are strings, and the documents have no ``apiVersion`` or ``kind``). These
models follow the pinned schema instead (components/orchestration/schemas), for the fields this
project uses; rendering validates every document against that schema.
"""

from sensors.models.base import ObjectMeta, SecretKeySelector, WireModel
from sensors.models.event_source import (
    CalendarEventSource,
    EventSource,
    EventSourceSpec,
    S3Artifact,
    S3Bucket,
    S3Filter,
    Service,
    ServicePort,
    WebhookEventSource,
)
from sensors.models.sensor import (
    DataFilter,
    EventDependency,
    EventDependencyFilter,
    Sensor,
    SensorSpec,
    SensorTemplate,
)
from sensors.models.trigger import (
    ArgoWorkflowTrigger,
    ArtifactLocation,
    Backoff,
    BasicAuth,
    HTTPTrigger,
    NATSAuth,
    NATSTrigger,
    RateLimit,
    SecureHeader,
    StatusPolicy,
    Trigger,
    TriggerParameter,
    TriggerParameterSource,
    TriggerPolicy,
    TriggerTemplate,
    ValueFromSource,
)

__all__ = [
    "ArgoWorkflowTrigger",
    "ArtifactLocation",
    "Backoff",
    "BasicAuth",
    "CalendarEventSource",
    "DataFilter",
    "EventDependency",
    "EventDependencyFilter",
    "EventSource",
    "EventSourceSpec",
    "HTTPTrigger",
    "NATSAuth",
    "NATSTrigger",
    "ObjectMeta",
    "RateLimit",
    "S3Artifact",
    "S3Bucket",
    "S3Filter",
    "SecretKeySelector",
    "SecureHeader",
    "Sensor",
    "SensorSpec",
    "SensorTemplate",
    "Service",
    "ServicePort",
    "StatusPolicy",
    "Trigger",
    "TriggerParameter",
    "TriggerParameterSource",
    "TriggerPolicy",
    "TriggerTemplate",
    "ValueFromSource",
    "WebhookEventSource",
    "WireModel",
]
