"""The jobs this project runs, each declared once: its name, parameter model and description,
how its shards fan out, what each step needs to run (GPU placement, Secrets) and how steps retry.

The engine rooms (``pipelines/`` for KFP, ``workflows/`` for Argo) map the same names to a pipeline
or a template and translate what is declared here into their own shapes; they hold none of it.
Adding a pipeline is one entry here, plus one in ``pipelines/`` and one in ``workflows/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from components.cluster.placement import GpuNeed, Placement, place
from components.exit_codes import (
    EXIT_BAD_INPUT,
    ExitStatus,
    batch_status,
    done_status,
    ingestion_status,
    removal_status,
)
from components.inference.models import ENGINE_NEEDS, ENGINES, BatchJobParams, shard_step
from components.ingest.models import (
    EMBEDDING_NEED,
    INGEST_SHARD_STEP,
    IngestParams,
    RemovalParams,
)
from components.orchestration.step_resources import GPU_MODEL, LIGHT, MODEL
from components.rollout.job_params import JOB_NAME as ROLLOUT_JOB
from components.rollout.job_params import ModelRolloutParams
from components.settings import LLM_SECRET_KEY

if TYPE_CHECKING:
    from components.settings import Settings

# Locally (kfp.local, argo-local) retries wait a moment, not minutes.
LOCAL_BACKOFF_S = 1
LOCAL_MAX_BACKOFF_S = 5


# Keys that would let a request steer what runs where: the bridge refuses them anywhere in a
# message, whatever their case and '-' or '_', and the webhook sensors refuse such a body. A job's
# parameters choose what a pipeline works on, never an image, command, env, node or account.
FORBIDDEN_KEYS = frozenset(
    {
        "image",
        "command",
        "args",
        "env",
        "envfrom",
        "environment",
        "node",
        "nodename",
        "nodeselector",
        "node_selector",
        "affinity",
        "tolerations",
        "serviceaccount",
        "serviceaccountname",
        "service_account",
        "securitycontext",
        "volumes",
        "podspecpatch",
    }
)


class UnknownPipelineError(KeyError):
    """A pipeline name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class ParameterError(ValueError):
    """Parameters that the pipeline's model refuses; the message names each problem."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a step is retried: ``limit`` attempts after the first, on any failure but a step that
    exits ``final_exit_code`` (bad input: retrying could not help); the first waits
    ``backoff_s`` seconds, each next one ``factor`` times longer, never over ``max_backoff_s``.

    Argo gets it as the template's ``retryStrategy`` (the exit code as its ``expression``), KFP
    as ``task.set_retry(...)``, which has no condition: KFP retries bad input too.
    """

    limit: int
    backoff_s: int
    factor: float = 2
    max_backoff_s: int = 3600
    final_exit_code: int = EXIT_BAD_INPUT

    @property
    def backoff(self) -> str:
        """The first wait as a duration both engines read (``30s``)."""
        return f"{self.backoff_s}s"

    @property
    def max_backoff(self) -> str:
        return f"{self.max_backoff_s}s"

    def local(self) -> RetryPolicy:
        """The same attempts with a short, flat backoff, for runs on this machine."""
        return RetryPolicy(
            self.limit, LOCAL_BACKOFF_S, 1, LOCAL_MAX_BACKOFF_S, self.final_exit_code
        )


@dataclass(frozen=True)
class StepRetries:
    """The retries of a sharded job's three steps: plan, each shard, and the step that finishes
    the run (ingestion's report, batch inference's merge)."""

    plan: RetryPolicy
    shard: RetryPolicy
    finish: RetryPolicy


# In the cluster a failed step usually means MinIO, Milvus, an endpoint or the GPU node blinked:
# wait before retrying, a shard longest. Reruns are safe: ingestion ids are deterministic and a
# shard converges to the same rows after a crash; a batch shard resumes from what its output
# holds, and the merge rewrites the output whole.
SHARDED_JOB_RETRIES = StepRetries(
    plan=RetryPolicy(limit=3, backoff_s=30, max_backoff_s=600),
    shard=RetryPolicy(limit=3, backoff_s=60, max_backoff_s=1800),
    finish=RetryPolicy(limit=2, backoff_s=30, max_backoff_s=600),
)


@dataclass(frozen=True)
class StepSecret:
    """Credentials a step reads from a Kubernetes Secret (never values): the settings field that
    names the Secret, and its keys, each mounted as the environment variable of its name."""

    secret_setting: str
    keys: tuple[str, ...]
    optional: bool = False

    def secret_name(self, settings: Settings) -> str:
        name: str = getattr(settings, self.secret_setting)
        return name


def cluster_env(
    settings: Settings, *, milvus: bool = False, run_data: bool = False
) -> dict[str, str]:
    """The variables that point a compiled step at the cluster's services instead of the local
    defaults: with ``milvus``, the Milvus server (used when the milvus_uri argument is empty);
    with ``run_data``, where the run's steps leave data for each other (S3)."""
    env: dict[str, str] = {}
    if milvus:
        env["LLMW_MILVUS_URI"] = settings.cluster_milvus_uri
    if run_data:
        env["LLMW_RUN_DATA_URI"] = settings.cluster_run_data_uri
    return env


@dataclass(frozen=True)
class JobSpec:
    """One job, as both engines run it: plan -> shards (fanned out) -> finish. A job of one step
    (``document-removal``) has only the step that finishes it, retried as ``retries.finish``.

    ``step_needs``: what a step needs to run, by step name (``ingest-shard``,
    ``infer-shard-<engine>``): a GpuNeed is placed on the cluster (``place``); None, or a step
    not listed, runs anywhere on the component image. ``step_secrets``: the Secrets a step reads
    besides the storage's. ``step_profiles``: the resource profile each step names (CPU,
    memory, timeout: ``components.orchestration.step_resources``; ``light`` when not listed).
    ``engines``: the job's engine choices, in the order the engine rooms
    branch on them. ``exit_status``: the exit code (and why) of a run that ended with a report
    (the job's report model dumped), the same on ``llmw run`` as on the job's own command.
    """

    name: str
    params_model: type[BaseModel]
    description: str
    default_engine: str = "argo"
    shard_parallelism: int = 1
    retries: StepRetries = SHARDED_JOB_RETRIES
    step_needs: Mapping[str, GpuNeed | None] = field(default_factory=dict)
    step_secrets: Mapping[str, tuple[StepSecret, ...]] = field(default_factory=dict)
    step_profiles: Mapping[str, str] = field(default_factory=dict)
    engines: tuple[str, ...] = ()
    exit_status: Callable[[Mapping[str, Any]], ExitStatus] = done_status

    def placements(self, settings: Settings) -> dict[str, Placement | None]:
        """Where each step in ``step_needs`` runs on the settings' inventory (None: anywhere).
        PlacementError/InventoryError say why a step cannot be placed."""
        from components.cluster.inventory import load_inventory

        inventory = load_inventory(settings.cluster_inventory)
        return {
            step: None if need is None else place(need, inventory)
            for step, need in self.step_needs.items()
        }

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


# model-rollout (which step takes which: job_params.STEP_RETRIES): "plan" before anything is
# applied, a store or a server that blinked; "finish" the exit handler's restore, which must
# happen; "shard" is unused: apply, gate and promote are never retried.
ROLLOUT_RETRIES = StepRetries(
    plan=RetryPolicy(limit=2, backoff_s=10, max_backoff_s=120),
    shard=RetryPolicy(limit=0, backoff_s=0),
    finish=RetryPolicy(limit=3, backoff_s=10, max_backoff_s=300),
)


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in [
        JobSpec(
            name="document-ingestion",
            params_model=IngestParams,
            description=(
                "Documents from a folder or s3:// prefix, partitioned and chunked with "
                "unstructured, embedded with sentence-transformers, upserted into Milvus."
            ),
            # Every shard asks for the embedding GPU, so the scheduler queues what the GPU
            # cannot hold; more would only add pending pods.
            shard_parallelism=4,
            step_needs={INGEST_SHARD_STEP: EMBEDDING_NEED},
            # The shard loads the embedding model and partitions documents in its memory.
            step_profiles={INGEST_SHARD_STEP: MODEL},
            exit_status=ingestion_status,
        ),
        JobSpec(
            name="batch-inference",
            params_model=BatchJobParams,
            description=(
                "Prompts (an OpenAI batch file, or a JSONL/CSV/Parquet dataset with a template) "
                "through vLLM, an OpenAI-compatible endpoint or transformers, into JSONL "
                "results; resumable."
            ),
            # GPU shards queue on the scheduler for the one GPU that runs them; openai shards
            # share the endpoint's capacity.
            shard_parallelism=4,
            step_needs={shard_step(engine): ENGINE_NEEDS[engine] for engine in ENGINES},
            # The endpoint's key, when it has one (a vLLM server without --api-key has none).
            step_secrets={
                shard_step("openai"): (
                    StepSecret("llm_credentials_secret", (LLM_SECRET_KEY,), optional=True),
                )
            },
            # vLLM stages the weights through host memory; transformers holds the model there;
            # an openai shard only sends requests.
            step_profiles={
                shard_step("vllm"): GPU_MODEL,
                shard_step("transformers"): MODEL,
                shard_step("openai"): LIGHT,
            },
            engines=ENGINES,
            exit_status=batch_status,
        ),
        JobSpec(
            name="document-removal",
            params_model=RemovalParams,
            description=(
                "Documents' rows (chunks and manifest record) removed from the Milvus collection "
                "by source URI; a document that isn't there is reported, not an error."
            ),
            # One step, no shards: it finishes the run and retries as ingestion's report step
            # does (a rerun converges: what was removed is not found again).
            retries=SHARDED_JOB_RETRIES,
            # A report means done: "not found" is an outcome, not a failure.
            exit_status=removal_status,
        ),
        JobSpec(
            name=ROLLOUT_JOB,
            params_model=ModelRolloutParams,
            description=(
                "A model staged into the model store (version, sha256), served by its Ray Serve "
                "app changed in place in the RayService (or a KServe canary) where the GPU "
                "inventory places it, gated against the model it replaces, promoted or rolled "
                "back; target collection rebuilds the embeddings behind the Milvus alias."
            ),
            retries=ROLLOUT_RETRIES,
            # The collection target embeds the corpus in its own memory.
            step_profiles={"collection": MODEL},
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
    """``KEY=VALUE`` strings -> a dict; JSON lists and objects are decoded, any other value
    (a number, the empty string) stays a string for the model to coerce or refuse."""
    values: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"parameter {item!r} is not KEY=VALUE")
        value: Any = raw
        # An empty value is the empty string (``"" in "[{"`` is true: test the prefix).
        if raw.startswith(("[", "{")):
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise ParameterError(f"parameter {key}: {raw!r} is not valid JSON") from exc
        values[key.strip()] = value
    return values
