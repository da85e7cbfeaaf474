"""The one settings model: environment variables prefixed ``LLMW_`` and an optional YAML file."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from components.images import project_image
from components.orchestration.step_resources import StepResources, merged_profiles

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
MAX_MILVUS_WRITE_BYTES = 64 * 1024 * 1024
# The keys of the Kubernetes Secrets that compiled pipelines mount, named like the variables.
S3_SECRET_KEYS = ("LLMW_S3_ACCESS_KEY", "LLMW_S3_SECRET_KEY")
MILVUS_SECRET_KEYS = ("LLMW_MILVUS_TOKEN",)
LLM_SECRET_KEY = "LLMW_LLM_API_KEY"


class _ConfigFileLocator(BaseSettings):
    """Reads only ``LLMW_CONFIG_FILE``, so the main model knows which YAML file to layer in."""

    model_config = SettingsConfigDict(env_prefix="LLMW_", extra="ignore")
    config_file: Path | None = None


def packaged_schemas_dir() -> Path:
    """The pinned schemas shipped inside the package (``components/orchestration/schemas``)."""
    return Path(str(files("components.orchestration").joinpath("schemas")))


class Settings(BaseSettings):
    """Everything the project can be configured with. Precedence: init args > env > file > defaults.

    Every field maps to ``LLMW_<FIELD>`` (for example ``LLMW_MILVUS_URI``). A YAML file named by
    ``LLMW_CONFIG_FILE`` may hold the same fields in lower case.
    """

    model_config = SettingsConfigDict(env_prefix="LLMW_", extra="ignore", validate_default=True)

    # Milvus: a file path means Milvus Lite; http(s):// means a server.
    milvus_uri: str = "./.llmw/milvus.db"
    milvus_token: SecretStr | None = None
    # The dense vector index. "auto": FLAT on Milvus Lite (exact, and fast at the sizes Lite
    # serves; its approximate indexes lose a distinct vector among many identical ones) and
    # AUTOINDEX on a server.
    milvus_index_type: Literal["auto", "FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX"] = "auto"
    collection: str = "documents"
    milvus_write_batch_bytes: int = Field(16 * 1024 * 1024, gt=0, lt=MAX_MILVUS_WRITE_BYTES)
    # Embedding rollouts (components/embedding_rollout/, `llmw rollout embeddings`): one at a
    # time per alias, under a lock kept in Milvus (collection llmw_rollout_locks) that lasts
    # this long unless renewed (the rollout renews it as it works), so a crashed run does not
    # hold it forever; one whose owner died on this host is taken over at once.
    embedding_rollout_lock_ttl_s: float = Field(900.0, gt=0)

    # MinIO / S3, used through the minio client.
    s3_endpoint: str = "minio.minio.svc.cluster.local:9000"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_secure: bool = False
    s3_region: str | None = None

    # Embeddings: a local sentence-transformers model, or an OpenAI-compatible endpoint when
    # ``embedding_url`` is set (the cluster's BGE service).
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_url: str | None = None
    embedding_api_key: SecretStr | None = None
    embedding_device: str | None = None
    embedding_batch_size: int = Field(64, gt=0)
    embedding_concurrency: int = Field(4, gt=0)
    embedding_timeout_s: float = Field(60.0, gt=0)
    embedding_max_retries: int = Field(5, ge=0)
    # The local model's runtime (components/embedding_export/): "auto" is the gated default
    # for the packaged model (exported once into embedding_cache_dir) and torch for any other;
    # precision "auto" is the fastest one that passes the quality gate. An exported folder
    # (llmw embeddings export) as embedding_model runs as its manifest says.
    embedding_backend: Literal["auto", "torch", "onnx", "openvino"] = "auto"
    embedding_precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    embedding_cache_dir: Path = Path(".llmw/embeddings")
    # The export quality gate: the most recall@5 and MRR@10 may drop against fp32 (0.01: one
    # point) on the labelled set, before an export is refused.
    embedding_gate_max_recall_drop: float = Field(0.01, ge=0, le=1)
    embedding_gate_max_mrr_drop: float = Field(0.01, ge=0, le=1)

    # Batch inference against an OpenAI-compatible server (the cluster's /llm route, or vLLM's).
    llm_url: str = "http://ai-inference-serve-svc.ai-ml.svc.cluster.local:8000/llm"
    llm_api_key: SecretStr | None = None

    # Partitioning and chunking.
    chunking_strategy: Literal["by_title", "basic"] = "by_title"
    chunk_max_characters: int = Field(1000, ge=50, le=16000)
    chunk_overlap: int = Field(100, ge=0)
    partition_workers: int = Field(1, ge=0)
    partition_timeout_s: float = Field(300.0, gt=0)

    # Sources.
    max_file_size_bytes: int = Field(50 * 1024 * 1024, gt=0)
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    # Ingestion (components/ingest/local_files.py): follow a folder source's symlinks whose
    # target is outside the folder; off, they are skipped with that reason.
    follow_external_symlinks: bool = False

    # Incremental runs.
    prune_max_fraction: float = Field(0.5, gt=0, le=1)

    # Sharded ingestion (the document-ingestion pipeline): documents per shard (at most
    # components.ingest.steps.MAX_SHARDS shards), and where a run's steps leave what they pass
    # each other through storage (the plan's listing): a local folder or s3://bucket/prefix.
    # Compiled pipelines use cluster_run_data_uri instead, since a pod's folder is its own.
    ingest_docs_per_shard: int = Field(200, ge=1)
    run_data_uri: str = ".llmw/runs"
    cluster_run_data_uri: str = "s3://llmw-runs"

    # The cluster's GPU inventory; None means the one shipped in components/cluster/data.
    cluster_inventory: Path | None = None

    # Model rollout (components/rollout/). The model store that `stage` copies models into, as
    # <store>/<name>/<version>/ with a manifest: a local folder (the embedded default on one
    # machine) or s3://bucket[/prefix] (MinIO in the cluster), read through the minio client.
    model_store_uri: str = ".llmw/models"
    # The store the compiled model-rollout steps use instead (a pod's folder is its own).
    cluster_model_store_uri: str = "s3://models"
    # The GPU memory a model needs, when not given: the size of its weights times this factor.
    rollout_memory_factor: float = Field(1.2, ge=1.0)
    # The serving catalog: the RayService's name and groups, and each Ray Serve application
    # (route, import path, framework, GPU share, first model). None: the one shipped in
    # components/rollout/data/serving.yaml.
    serving_catalog: Path | None = None
    # KServe InferenceServices: the deployment mode rendered when none is asked for, and the
    # service account whose Secret holds the model store's credentials (never literal values).
    kserve_deployment_mode: Literal["Serverless", "RawDeployment"] = "RawDeployment"
    kserve_service_account: str = "llmw-models"
    # ray-local (components/rollout/ray_local.py, `llmw serve`): a Ray head on 127.0.0.1 only,
    # its sessions and state under ray_local_dir, its GCS, dashboard (KubeRay's PUT/GET
    # /api/serve/applications/) and Serve HTTP ports. Its CPUs are logical: each application's
    # deployment asks for one, and a replacement in place runs two replicas for a moment.
    ray_local_dir: Path = Path(".llmw/ray")
    ray_local_gcs_port: int = Field(6380, gt=0, lt=65536)
    ray_local_dashboard_port: int = Field(8266, gt=0, lt=65536)
    ray_local_serve_port: int = Field(8001, gt=0, lt=65536)
    ray_local_num_cpus: int = Field(8, ge=1)
    ray_local_start_timeout_s: float = Field(120.0, gt=0)
    # How long a rollout waits for an application to be RUNNING (and serving) after an apply,
    # and for the previous model to serve again after a rollback.
    rollout_ready_timeout_s: float = Field(300.0, gt=0)
    # The kubernetes engine (components/rollout/kube_*.py) and argo-local's resource templates:
    # the kubeconfig file and context (None: the pod's service account in a cluster, else
    # $KUBECONFIG or ~/.kube/config), how often a rollout reads status while it waits, and the
    # retries of a write that meets a 409 Conflict. The gate reaches a RayService application at
    # rollout_serve_url + its route prefix, an InferenceService at rollout_kserve_url ({name},
    # {namespace} filled in; /openai is KServe's OpenAI-compatible prefix).
    kubeconfig: Path | None = None
    kube_context: str | None = None
    kube_poll_interval_s: float = Field(2.0, gt=0)
    kube_conflict_retries: int = Field(5, ge=0)
    rollout_serve_url: str = "http://ai-inference-serve-svc.ai-ml.svc:8000"
    rollout_kserve_url: str = "http://{name}-predictor.{namespace}.svc.cluster.local/openai"

    # Engines. Kubeflow Pipelines: the API endpoint (ml-pipeline) and the UI links are built from.
    kfp_host: str = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    kfp_token: SecretStr | None = None
    kfp_namespace: str = "kubeflow"
    kfp_ui_url: str = "https://kubeflow.lab.daviestechlabs.io"
    # Argo Workflows: the Argo Server and its UI.
    argo_host: str = "https://argo-server.argo.svc.cluster.local:2746"
    argo_token: SecretStr | None = None
    argo_namespace: str = "ai-ml"
    argo_ui_url: str = "https://argo.lab.daviestechlabs.io"
    argo_verify_tls: bool = True
    # What each step asks of the cluster (components/orchestration/step_resources.py): named
    # profiles of CPU/memory requests and limits and a per-attempt timeout, each given one laid
    # over its default field by field; a step moved to another profile ("job/step": profile);
    # and how long a whole Argo run may take.
    step_profiles: dict[str, StepResources] = Field(default_factory=dict)
    step_profile_by_step: dict[str, str] = Field(default_factory=dict)
    workflow_timeout_s: int = Field(24 * 3600, gt=0)
    # How long Argo keeps a finished Workflow (and the failed pods' logs) before deleting it.
    argo_ttl_after_success_s: int = Field(24 * 3600, ge=0)
    argo_ttl_after_failure_s: int = Field(7 * 24 * 3600, ge=0)
    # What the compiled pipelines run: the component image, and the Kubernetes Secrets holding
    # credentials (never literal values in compiled YAML). Secret keys follow the env names.
    component_image: str = Field(default_factory=project_image)  # the cpu image, this version
    s3_credentials_secret: str = "llmw-minio-credentials"
    milvus_credentials_secret: str = "llmw-milvus-credentials"
    llm_credentials_secret: str = "llmw-llm-credentials"  # key LLMW_LLM_API_KEY (optional)
    cluster_milvus_uri: str = "http://milvus.ai-ml.svc.cluster.local:19530"
    cluster_nats_url: str = "nats://nats.nats.svc.cluster.local:4222"  # the bridge's, in-cluster
    # NATS (the bridge and `llmw trigger`). Credentials: user/password, a token, an nkey seed file
    # or a creds file; TLS with a CA and an optional client certificate.
    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_nkey_seed_file: Path | None = None
    nats_creds_file: Path | None = None
    nats_tls_ca_file: Path | None = None
    nats_tls_cert_file: Path | None = None
    nats_tls_key_file: Path | None = None
    # OpenTelemetry (components/tracing.py): the OTLP/HTTP collector the bridge, `llmw trigger`
    # and the steps send spans to, e.g. http://tempo.observability.svc:4318. Unset: no tracing.
    otlp_endpoint: str | None = None
    # The bridge: its stream, consumer, claim bucket, limits and HTTP port (health and metrics).
    bridge_stream: str = "AI_PIPELINE"
    bridge_consumer: str = "llmw-bridge"
    bridge_kv_bucket: str = "ai_pipeline_requests"
    bridge_max_message_bytes: int = Field(64 * 1024, gt=0)
    bridge_ack_wait_s: float = Field(60.0, gt=0)
    bridge_max_deliver: int = Field(20, ge=1)
    bridge_workers: int = Field(4, ge=1)
    # A local run a killed bridge was doing is run again by the next bridge, under its run id,
    # at most this many times; then it ends failed (interrupted).
    bridge_local_resume_attempts: int = Field(2, ge=0)
    bridge_poll_s: float = Field(5.0, gt=0)
    bridge_fetch_batch: int = Field(64, ge=1, le=1024)
    bridge_max_in_flight: int = Field(256, ge=1)
    bridge_retry_base_s: float = Field(1.0, gt=0)  # nak delay after a transient failure, doubling
    bridge_retry_max_s: float = Field(60.0, gt=0)
    bridge_http_host: str = "0.0.0.0"
    bridge_http_port: int = Field(8080, ge=0, le=65535)
    bridge_image: str | None = None  # None: component_image
    bridge_namespace: str = "ai-ml"
    bridge_nats_secret: str = "llmw-nats-credentials"
    bridge_engine_secret: str = "llmw-engine-credentials"  # LLMW_KFP_TOKEN, LLMW_ARGO_TOKEN

    # Argo Events (sensors/, `llmw events`): the EventSources and Sensors that start pipelines.
    # Their namespace (None: argo_namespace, beside the WorkflowTemplates they start) and the
    # EventBus they share there.
    events_namespace: str | None = None
    events_eventbus: str = "default"
    # How a sensor starts its pipeline: "bridge" publishes an AI_PIPELINE request (JSON) on
    # cluster_nats_url for the bridge (one run per event, status events); "direct" submits from
    # the WorkflowTemplate (Argo) or creates a run over the KFP REST API, without the bridge.
    # events_trigger_by_sensor sets it per sensor: {"nightly-reingest": "direct"}.
    events_trigger: Literal["bridge", "direct"] = "bridge"
    events_trigger_by_sensor: dict[str, Literal["bridge", "direct"]] = Field(default_factory=dict)
    # The engine the runs use (None: each pipeline's own default, as `llmw trigger` does).
    events_engine: Literal["argo", "kfp"] | None = None
    # MinIO bucket notifications: the documents' bucket, their key prefix, and the key suffixes
    # that are documents (matched case-insensitively; the types ingestion reads).
    events_bucket: str = "documents"
    events_prefix: str = "docs/"
    events_suffixes: list[str] = Field(
        default_factory=lambda: [".md", ".markdown", ".html", ".htm", ".txt", ".pdf", ".docx"]
    )
    # The nightly re-ingest of the whole prefix, with prune: a cron schedule, in an IANA timezone.
    events_schedule: str = "0 2 * * *"
    events_timezone: str = "UTC"
    # The CI webhook: the Secret whose key "token" a POST must send as "Authorization: Bearer …".
    events_webhook_secret: str = "llmw-webhook-token"
    # Direct KFP runs: each pipeline's id in KFP (uploaded beforehand), the experiment id (None:
    # KFP's default experiment), and the Secret whose key "Authorization" holds "Bearer <token>".
    events_kfp_pipeline_ids: dict[str, str] = Field(default_factory=dict)
    events_kfp_experiment_id: str | None = None
    events_kfp_auth_secret: str = "llmw-kfp-auth"
    # How the sensors' NATS triggers log in to cluster_nats_url: bridge_nats_secret's
    # LLMW_NATS_TOKEN ("token"), its LLMW_NATS_USER and LLMW_NATS_PASSWORD ("basic"), or not.
    events_nats_auth: Literal["none", "token", "basic"] = "none"

    # Show the traceback of a failure the CLI reports in one line (for bug reports).
    debug: bool = False

    # The pinned upstream schemas (validation of what `llmw compile` renders): shipped with the
    # package; LLMW_SCHEMAS_DIR points elsewhere (a newer pin, under test).
    schemas_dir: Path = Field(default_factory=lambda: packaged_schemas_dir())

    @field_validator("step_profiles", mode="before")
    @classmethod
    def _profiles_over_defaults(cls, value: object) -> object:
        return merged_profiles(value)

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_max(cls, value: int, info: object) -> int:
        data = getattr(info, "data", {})
        max_chars = data.get("chunk_max_characters")
        if max_chars is not None and value >= max_chars:
            raise ValueError(
                f"chunk_overlap ({value}) must be smaller than chunk_max_characters ({max_chars})"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _ConfigFileLocator().config_file
        if config_file is not None:
            if not config_file.is_file():
                raise FileNotFoundError(
                    f"LLMW_CONFIG_FILE names {config_file}, which is not a file"
                )
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return (*sources, file_secret_settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """``LLMW_*`` variables from which ``Settings()`` in a subprocess rebuilds ``settings``."""
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            text = json.dumps(value, default=lambda model: model.model_dump(mode="json"))
        else:
            text = str(value)
        env[f"LLMW_{name.upper()}"] = text
    return env
