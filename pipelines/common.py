"""What the KFP pipelines share: the job's retry policies as ``set_retry``, the steps'
environment (Secrets, never values), GPU placement, and the local variant's fan-out.

What a job declares (``components.registry.JobSpec``: description, shard parallelism, step needs,
Secrets, retries) is translated here, never restated.
"""

from __future__ import annotations

from typing import Any

from kfp import dsl, kubernetes
from pydantic import BaseModel

from components.cluster.placement import Placement
from components.registry import JobSpec, RetryPolicy
from components.registry import cluster_env as cluster_values
from components.settings import MILVUS_SECRET_KEYS, S3_SECRET_KEYS, Settings

# Locally (kfp.local) shards run one at a time: Milvus Lite admits one process per database
# file (a file lock), and each batch shard loads its model on a small machine.
LOCAL_SHARD_PARALLELISM = 1


def default(model: type[BaseModel], field: str) -> Any:
    """A pipeline parameter's default: the job model's (KFP parameters can't be null, so an
    unset optional one is "", which the steps read as "none")."""
    value = model.model_fields[field].default
    return "" if value is None else value


def shard_parallelism(job: JobSpec, for_cluster: bool) -> int:
    return job.shard_parallelism if for_cluster else LOCAL_SHARD_PARALLELISM


def retry_policy(policy: RetryPolicy, for_cluster: bool) -> RetryPolicy:
    """The policy as declared in the cluster; locally the same attempts with a short backoff."""
    return policy if for_cluster else policy.local()


def apply_retry(task: dsl.PipelineTask, policy: RetryPolicy) -> None:
    """Retry ``task`` as ``policy`` says, but for its final exit code: KFP's retry policy
    (``set_retry``; the IR's RetryPolicy holds a count and a backoff, nothing else) has no
    condition, so a step refusing bad input is retried like any failure; it says what was wrong
    on each attempt."""
    task.set_retry(
        num_retries=policy.limit,
        backoff_duration=policy.backoff,
        backoff_factor=float(policy.factor),
        backoff_max_duration=policy.max_backoff,
    )


def cluster_env(
    task: dsl.PipelineTask, settings: Settings, milvus: bool, run_data: bool = False
) -> None:
    """Credentials from Kubernetes Secrets (never values); with ``milvus``, the in-cluster Milvus
    server; with ``run_data``, where the run's steps leave data for each other (S3)."""
    s3_keys = {key: key for key in S3_SECRET_KEYS}
    kubernetes.use_secret_as_env(
        task, secret_name=settings.s3_credentials_secret, secret_key_to_env=s3_keys
    )
    for name, value in cluster_values(settings, milvus=milvus, run_data=run_data).items():
        task.set_env_variable(name, value)
    if milvus:
        # Optional: a Milvus without authentication has no token to mount.
        kubernetes.use_secret_as_env(
            task,
            secret_name=settings.milvus_credentials_secret,
            secret_key_to_env={key: key for key in MILVUS_SECRET_KEYS},
            optional=True,
        )


def step_secrets(task: dsl.PipelineTask, job: JobSpec, step: str, settings: Settings) -> None:
    """The Secrets the job declares for ``step`` (``JobSpec.step_secrets``), as its env."""
    for secret in job.step_secrets.get(step, ()):
        kubernetes.use_secret_as_env(
            task,
            secret_name=secret.secret_name(settings),
            secret_key_to_env={key: key for key in secret.keys},
            optional=secret.optional,
        )


def apply_placement(task: dsl.PipelineTask, placement: Placement) -> None:
    """Node selector, tolerations, accelerator and GPU environment from a placement."""
    for key, value in sorted(placement.node_selector.items()):
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for toleration in placement.tolerations:
        kubernetes.add_toleration(
            task,
            key=toleration.get("key"),
            operator=toleration.get("operator"),
            value=toleration.get("value"),
            effect=toleration.get("effect"),
            toleration_seconds=toleration.get("tolerationSeconds"),
        )
    if placement.resource is not None and placement.count > 0:
        # KFP turns the accelerator type into the container's resource limit name.
        task.set_accelerator_type(placement.resource)
        task.set_accelerator_limit(placement.count)
    for name, value in sorted(placement.env.items()):
        task.set_env_variable(name, value)
