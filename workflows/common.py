"""What every llmw WorkflowTemplate shares: its metadata, service account, deadline, TTL, pod GC and
optional mutex, the ``traceparent`` parameter, the Markdown summary artifact, the entrypoint's
``report`` output, and the steps' environment (Secrets, never values, and the run's trace
context), retries, CPU/memory (``components.orchestration.step_resources``), deadline and GPU
placement.

What a job declares (``components.registry.JobSpec``: description, shard parallelism, step needs,
Secrets, retries) is translated here, never restated."""

from __future__ import annotations

import sys
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hera.workflows import (
    Env,
    NoneArchiveStrategy,
    Parameter,
    RetryStrategy,
    S3Artifact,
    SecretEnv,
    Steps,
    WorkflowTemplate,
)
from hera.workflows import models as m
from hera.workflows.script import RunnerScriptConstructor
from pydantic import BaseModel

from components.cluster.placement import Placement
from components.orchestration.parameter_text import argument_text
from components.orchestration.pod_security import (
    container_security_context,
    pod_security_context,
)
from components.orchestration.step_resources import step_resources
from components.registry import JobSpec, RetryPolicy, cluster_env
from components.settings import MILVUS_SECRET_KEYS, S3_SECRET_KEYS, Settings
from components.tracing import TRACEPARENT_ENV

ENTRYPOINT = "main"
EXIT_HANDLER = "exit-handler"
# Where Hera's runner writes annotated outputs (the summary artifact) inside the container.
OUTPUTS_DIRECTORY = RunnerScriptConstructor.DEFAULT_HERA_OUTPUTS_DIRECTORY
SUMMARY_ARTIFACT = "summary"
# model-rollout's exit handler's first step, by the name step_resources knows it (a light step).
STATUS_STEP = "record-status"
# One writer per Milvus collection: Milvus Lite and the manifest protocol assume it. Ingestion
# and removal take this mutex (Argo substitutes workflow parameters in spec.synchronization);
# no "/" can reach it, the collection being a checked identifier.
COLLECTION_MUTEX = "llmw-collection-{{workflow.parameters.collection}}"
# Succeeded pods go at once; failed ones stay for their logs until the workflow's TTL.
POD_GC_STRATEGY = "OnPodSuccess"
# The pods run as the images' non-root user; containers drop every capability.
POD_SECURITY = m.PodSecurityContext(**pod_security_context())
CONTAINER_SECURITY = m.SecurityContext(**container_security_context())
# The workflow parameter carrying the run's W3C trace context ("" when untraced): every step
# reads it as $TRACEPARENT, so its span joins the request's trace (components.tracing).
TRACEPARENT_PARAMETER = "traceparent"


def service_account(job_name: str) -> str:
    """The ServiceAccount a job's pods run as: one per job, with only what that job needs
    (``workflows.rbac``)."""
    return f"llmw-{job_name}"


def workflow_template(
    job: JobSpec,
    settings: Settings,
    arguments: list[Parameter],
    mutex: str | None = None,
    exit_handler: bool = False,
) -> WorkflowTemplate:
    """The job's template in the settings' namespace, running ``main`` (then the template
    ``exit-handler`` when ``exit_handler``), as the job's own ServiceAccount, within
    ``settings.workflow_timeout_s``, deleted after the settings' TTL, its pods as the images'
    non-root user; with ``mutex``, one run at a time per mutex name. Its arguments end with the
    ``traceparent`` parameter."""
    synchronization = m.Synchronization(mutexes=[m.Mutex(name=mutex)]) if mutex else None
    return WorkflowTemplate(
        name=job.name,
        namespace=settings.argo_namespace,
        labels={
            "app.kubernetes.io/name": job.name,
            "app.kubernetes.io/part-of": "llm-workflows",
        },
        annotations={"workflows.argoproj.io/description": job.description},
        entrypoint=ENTRYPOINT,
        on_exit=EXIT_HANDLER if exit_handler else None,
        arguments=[*arguments, trace_parameter()],
        service_account_name=service_account(job.name),
        active_deadline_seconds=settings.workflow_timeout_s,
        ttl_strategy=m.TTLStrategy(
            secondsAfterSuccess=settings.argo_ttl_after_success_s,
            secondsAfterFailure=settings.argo_ttl_after_failure_s,
        ),
        pod_gc=m.PodGC(strategy=POD_GC_STRATEGY),
        security_context=POD_SECURITY,
        synchronization=synchronization,
    )


def trace_parameter() -> Parameter:
    """The ``traceparent`` workflow parameter that ``submit_workflow`` sets when a trace is
    current (not a job parameter: requests cannot set it)."""
    return Parameter(
        name=TRACEPARENT_PARAMETER,
        value="",
        description="W3C traceparent of the request's trace (set by llmw; empty: untraced)",
    )


def trace_env() -> Env:
    """``TRACEPARENT`` from the workflow parameter, for every step's container."""
    return Env(name=TRACEPARENT_ENV, value=f"{{{{workflow.parameters.{TRACEPARENT_PARAMETER}}}}}")


def model_arguments(
    model: type[BaseModel], descriptions: Mapping[str, str] | None = None
) -> list[Parameter]:
    """The template's parameters: the job model's fields with their defaults (as Argo passes
    them) and choices (a Literal's, or false/true); each described by ``descriptions`` or the
    field's own description."""
    arguments = []
    for name, field in model.model_fields.items():
        kwargs: dict[str, Any] = {"name": name}
        if not field.is_required():
            kwargs["value"] = argument_text(field.default)
        if typing.get_origin(field.annotation) is typing.Literal:
            kwargs["enum"] = list(typing.get_args(field.annotation))
        elif field.annotation is bool:
            kwargs["enum"] = ["false", "true"]
        description = (descriptions or {}).get(name, field.description)
        if description:
            kwargs["description"] = description
        arguments.append(Parameter(**kwargs))
    return arguments


def parameter_refs(names: tuple[str, ...]) -> dict[str, str]:
    """Each workflow parameter passed on to a step under its own name."""
    return {name: f"{{{{workflow.parameters.{name}}}}}" for name in names}


def summary_artifact(template_name: str) -> S3Artifact:
    """The summary output, at ``<template_name>/<workflow name>/summary.md``."""
    # Key only: bucket, endpoint and credentials come from the cluster's default
    # artifact repository (MinIO). Plain Markdown, not a tarball.
    return S3Artifact(
        name=SUMMARY_ARTIFACT,
        path=f"{OUTPUTS_DIRECTORY}/artifacts/{SUMMARY_ARTIFACT}",
        key=template_name + "/{{workflow.name}}/summary.md",
        archive=NoneArchiveStrategy(),
    )


def write_summary(path: Path, markdown: str) -> None:
    """Write the summary artifact where the runner collects it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown, encoding="utf-8")


def record_status(template_name: str, workflow: str, status: str) -> dict[str, str]:
    """How a run ended, in the step's log and as its result."""
    print(f"{template_name} run {workflow} ended: {status}", file=sys.stderr)
    return {"workflow": workflow, "template": template_name, "status": status}


@contextmanager
def main_steps(parallelism: int, report_step: str) -> Iterator[Steps]:
    """The entrypoint's Steps, whose ``report`` output is step ``report_step``'s result."""
    with Steps(
        name=ENTRYPOINT,
        parallelism=parallelism,
        outputs=[
            Parameter(
                name="report",
                value_from=m.ValueFrom(parameter=f"{{{{steps.{report_step}.outputs.result}}}}"),
            )
        ],
    ) as main:
        yield main


def secret_env(secret: str, keys: tuple[str, ...], optional: bool = False) -> list[SecretEnv]:
    """One variable per key of ``secret``, named like the key."""
    return [
        SecretEnv(name=key, secret_name=secret, secret_key=key, optional=optional or None)
        for key in keys
    ]


def step_env(
    settings: Settings,
    milvus: bool,
    extra: dict[str, str] | None = None,
    run_data: bool = False,
) -> list[Any]:
    """Credentials from Kubernetes Secrets (never values); with ``milvus``, the in-cluster Milvus
    server (used when the milvus_uri argument is empty) and its optional token; with
    ``run_data``, where the run's steps leave data for each other (S3); ``extra`` variables;
    the run's trace context (``trace_env``)."""
    env: list[Any] = [*secret_env(settings.s3_credentials_secret, S3_SECRET_KEYS)]
    values = cluster_env(settings, milvus=milvus, run_data=run_data)
    env += [Env(name=name, value=value) for name, value in values.items()]
    if milvus:
        # Optional: a Milvus without authentication has no token to mount.
        env += secret_env(settings.milvus_credentials_secret, MILVUS_SECRET_KEYS, optional=True)
    env += [Env(name=name, value=value) for name, value in sorted((extra or {}).items())]
    return [*env, trace_env()]


def step_secrets(job: JobSpec, step: str, settings: Settings) -> list[SecretEnv]:
    """The Secrets the job declares for ``step`` (``JobSpec.step_secrets``), as its env."""
    return [
        env
        for secret in job.step_secrets.get(step, ())
        for env in secret_env(secret.secret_name(settings), secret.keys, secret.optional)
    ]


def retry_strategy(policy: RetryPolicy) -> RetryStrategy:
    """The job's retry policy as Argo's: ``OnFailure`` (the step's container failed: a service
    that blinked, a pod evicted or preempted while running, a step past its deadline, all
    Failed in Argo) but not a step that exits ``policy.final_exit_code`` (bad input; the
    ``expression`` is ANDed with the policy, and ``lastRetry.exitCode`` is -1 where the pod
    left none), with its exponential backoff. Argo's own errors (phase Error) are not retried."""
    factor = int(policy.factor) if float(policy.factor).is_integer() else str(policy.factor)
    return RetryStrategy(
        limit=policy.limit,
        retry_policy="OnFailure",
        expression=f"asInt(lastRetry.exitCode) != {policy.final_exit_code}",
        backoff=m.Backoff(
            duration=policy.backoff,
            factor=m.IntOrString(root=factor),
            cap=policy.max_backoff,
        ),
    )


def step_kwargs(
    job: JobSpec,
    step: str,
    settings: Settings,
    retry: RetryPolicy | None = None,
    placement: Placement | None = None,
) -> dict[str, Any]:
    """A step's Script keywords: CPU and memory requests and limits and the per-attempt
    ``activeDeadlineSeconds`` from its profile, its container's security context, its
    ``retry`` policy, and its ``placement`` (node selector, tolerations, the GPU limit beside
    CPU and memory)."""
    sized = step_resources(job.name, step, settings)
    kwargs: dict[str, Any] = placement_kwargs(placement) if placement is not None else {}
    gpu = kwargs.pop("resources", None)
    limits = {"cpu": sized.cpu_limit, "memory": sized.memory_limit}
    limits.update({k: v.root for k, v in (gpu.limits or {}).items()} if gpu else {})
    requests = {"cpu": sized.cpu_request, "memory": sized.memory_request}
    kwargs["resources"] = m.ResourceRequirements(
        requests={k: m.Quantity(root=v) for k, v in requests.items()},
        limits={k: m.Quantity(root=v) for k, v in limits.items()},
    )
    kwargs["active_deadline_seconds"] = sized.timeout_s
    kwargs["security_context"] = CONTAINER_SECURITY
    if retry is not None:
        kwargs["retry_strategy"] = retry_strategy(retry)
    return kwargs


def placement_kwargs(placement: Placement) -> dict[str, Any]:
    """Node selector, tolerations and the GPU resource limit of a placement, for a Script."""
    kwargs: dict[str, Any] = {}
    if placement.node_selector:
        kwargs["node_selector"] = dict(sorted(placement.node_selector.items()))
    if placement.tolerations:
        kwargs["tolerations"] = [m.Toleration(**t) for t in placement.tolerations]
    if placement.resource is not None and placement.count > 0:
        quantity = m.Quantity(root=str(placement.count))
        # Extended resources: the request defaults to the limit.
        kwargs["resources"] = m.ResourceRequirements(limits={placement.resource: quantity})
    return kwargs
