"""The ``model-rollout`` job's parameters: one pydantic model for both engines and the bridge.

Optional numbers are 0 for "none" (KFP and Argo parameters cannot be null); optional text is
None here and "" in a compiled pipeline, which the steps read as "none". No parameter chooses an
image, a command, an environment or a node (``components.registry.FORBIDDEN_KEYS``): placement
comes from the GPU inventory, never from a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.rollout.manifest import NAME_PATTERN, VERSION_PATTERN

JOB_NAME = "model-rollout"
# Which of the job's retry policies (``JobSpec.retries``) each step takes; a step not listed is
# never retried: what applies, gates or promotes would measure or apply again what decided.
STEP_RETRIES = {
    "stage": "plan",
    "render": "plan",
    "baseline": "plan",
    "collection": "finish",  # the embedding rollout resumes its build after a crash
    "conclude": "finish",  # the exit handler's restore must happen
    "restore": "finish",
    "restored": "finish",
}
# The application whose model the ``collection`` target rolls out behind a Milvus alias.
EMBEDDINGS_APP = "embeddings"


class ModelRolloutParams(BaseModel):
    """What a ``model-rollout`` run is asked: the model, where it goes, the gate's thresholds."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1, description="the model: a folder, a file or s3://bucket/prefix"
    )
    app: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="the Ray Serve application: llm, embeddings, reranker, whisper, tts",
    )
    version: str = Field(pattern=VERSION_PATTERN, description="the version to stage it as")
    name: str | None = Field(
        None, pattern=NAME_PATTERN, description="its name in the model store; default: the app's"
    )
    target: Literal["rayservice", "kserve", "collection"] = Field(
        "rayservice",
        description="what changes: the app's entry in the RayService's serveConfigV2, a KServe "
        "InferenceService (canary), or (app embeddings) the Milvus collection behind the alias, "
        "rebuilt with the model",
    )
    engine: Literal["ray-local", "kubernetes"] = Field(
        "kubernetes", description="where the change is applied"
    )
    canary: int = Field(0, ge=0, le=99, description="kserve: the new model's traffic, %; 0: all")
    memory_gb: float = Field(0, ge=0, description="GPU memory it needs; 0: weights x factor")
    gpu_fraction: float = Field(0, ge=0, le=1, description="its GPU share; 0: the current one")
    # The serve gate (components/rollout/gate.py).
    min_success_rate: float = Field(1.0, ge=0, le=1, description="gate: lowest success rate")
    max_p95_ms: float = Field(0, ge=0, description="gate: highest p95 latency, ms; 0: no limit")
    max_quality_drop: float = Field(0.1, ge=0, le=1, description="gate: largest quality drop")
    min_quality: float = Field(0, ge=0, le=1, description="gate: lowest quality; 0: no floor")
    labelled_set: str | None = Field(
        None, description="gate: labelled set (JSON) for embeddings/reranker; default: packaged"
    )
    rounds: int = Field(2, ge=1, le=10, description="gate: rounds of smoke requests per side")
    # The collection target (components/embedding_rollout/).
    queries: str | None = Field(
        None, description="collection: labelled query set, JSONL {query, relevant: [uri]}"
    )
    # A plain default (pydantic copies it per instance): the engines read defaults as values.
    sources: list[str] = Field(
        [], description="collection: what to ingest; default: what it records"
    )
    alias: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$", description="collection: the alias"
    )
    keep: int = Field(1, ge=0, description="collection: previous generations kept")
    keep_failed: bool = Field(False, description="collection: keep a generation that failed")
    top_k: int = Field(5, ge=1, le=100, description="collection: k of recall@k and MRR@k")
    max_recall_drop: float = Field(0.05, ge=0, le=1, description="collection: recall@k drop")
    max_mrr_drop: float = Field(0.05, ge=0, le=1, description="collection: MRR@k drop")
    milvus_uri: str | None = Field(None, description="collection: Milvus; default: settings'")

    @model_validator(mode="after")
    def _collection_needs(self) -> ModelRolloutParams:
        if self.target == "collection":
            if self.app != EMBEDDINGS_APP:
                raise ValueError(
                    f"target collection rolls out the {EMBEDDINGS_APP} app's model behind a "
                    f"Milvus alias; app {self.app!r} has no collection"
                )
            if not self.queries:
                raise ValueError("target collection needs queries (the labelled query set)")
        if self.target == "kserve" and self.engine == "ray-local":
            raise ValueError("ray-local runs the RayService: target kserve needs engine kubernetes")
        return self

    @property
    def store_name(self) -> str:
        """The model's name in the store: ``name``, or the application's."""
        return self.name or self.app


def read_params(values: Mapping[str, Any]) -> ModelRolloutParams:
    """The parameters from a step's arguments: "" (a compiled pipeline's unset text) is None."""
    optional = {"name", "labelled_set", "queries", "alias", "milvus_uri"}
    cleaned = {k: (None if k in optional and v == "" else v) for k, v in values.items()}
    return ModelRolloutParams.model_validate(cleaned)
