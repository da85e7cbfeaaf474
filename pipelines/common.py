"""What the KFP pipelines share: how a step function becomes a component (the image's code in
the cluster), the job's retry policies as ``set_retry``, each step's CPU, memory and timeout, the
steps' environment (Secrets, never values), GPU placement, and the local variant's fan-out.

What a job declares (``components.registry.JobSpec``: description, shard parallelism, step needs,
Secrets, retries, resource profiles) is translated here, never restated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl.base_component import BaseComponent
from pydantic import BaseModel

from components.cluster.placement import Placement
from components.orchestration.step_resources import step_resources
from components.registry import JobSpec, RetryPolicy
from components.registry import cluster_env as cluster_values
from components.settings import MILVUS_SECRET_KEYS, S3_SECRET_KEYS, Settings

# Every step function a cluster component runs, by name: what the image's kfp_config.ini lists
# (pipelines.kfp_config), since KFP's executor finds a function by its name alone.
STEP_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def make_component(func: Callable[..., Any], image: str, for_cluster: bool) -> BaseComponent:
    """``func`` (a step function: its annotations are the component's interface) on ``image``.

    In the cluster, a containerized Python component (``target_image``): the IR names the
    function (``python3 -m kfp.dsl.executor_main --function_to_execute <name>``) and KFP's
    executor loads it from the image, through the ``kfp_config.ini`` in the image's working
    folder, so what runs is the image's code, never a copy of the source held in the IR. Locally,
    where kfp.local's SubprocessRunner runs only lightweight components, the same function with
    its source, in this interpreter. ``install_kfp_package=False``: nothing is pip-installed at
    run time.
    """
    if not for_cluster:
        return dsl.component(func, base_image=image, install_kfp_package=False)
    known = STEP_FUNCTIONS.setdefault(func.__name__, func)
    if (known.__module__, known.__qualname__) != (func.__module__, func.__qualname__):
        raise ValueError(
            f"step function name {func.__name__!r} is taken by {known.__module__}: KFP's "
            "executor finds a function by its name, which must be unique across the pipelines"
        )
    return dsl.component(func, base_image=image, target_image=image, install_kfp_package=False)


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


def apply_resources(task: dsl.PipelineTask, job: JobSpec, step: str, settings: Settings) -> None:
    """CPU and memory requests and limits (never a BestEffort pod) and how long one attempt may
    run (``activeDeadlineSeconds``), from ``step``'s profile (``step_resources``)."""
    wanted = step_resources(job.name, step, settings)
    try:
        task.set_cpu_request(wanted.cpu_request).set_cpu_limit(wanted.cpu_limit)
        task.set_memory_request(wanted.memory_request).set_memory_limit(wanted.memory_limit)
    except ValueError as exc:  # KFP takes fewer quantity forms than Kubernetes
        raise ValueError(f"{job.name}/{step}: {exc}") from None
    kubernetes.set_timeout(task, wanted.timeout_s)


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
