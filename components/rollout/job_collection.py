"""The ``collection`` target of a ``model-rollout`` run: the embeddings app's new model rolled
out behind the Milvus alias (``components.embedding_rollout``: the next generation built by the
ingestion job with it, gated on the labelled query set, then one alias switch, or rolled back).

The model is the staged version: its folder in a local model store, so that the collection
records a path that stays (readers load the model recorded on the collection); with an S3 store,
the model's own local path. The rollout itself promotes or rolls back; a rolled-back one fails
the run (``GateFailedError``, as a failed serve gate does) after its report is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.rollout.job_params import ModelRolloutParams, read_params
from components.rollout.job_steps import (
    PROMOTED,
    GateFailedError,
    job_settings,
    outcome,
    store_outcome,
)


def embedding_model(params: ModelRolloutParams, staged: Mapping[str, Any]) -> str:
    """What the new generation is embedded with (and records): a path this machine loads."""
    from components.storage.objects import is_s3

    if not is_s3(str(staged["uri"])):
        return str(staged["uri"])
    if not is_s3(params.model):
        return params.model
    raise ValueError(
        f"target collection embeds on this machine: {params.model} was staged into "
        f"{staged['uri']}, which sentence-transformers cannot load; give a local path or "
        "use a local model store"
    )


def collection_step(values: Mapping[str, Any], staged: Mapping[str, Any]) -> dict[str, Any]:
    """Run the embedding rollout with the staged model; its report (promoted or rolled back)."""
    from components.embedding_rollout.models import RolloutParams
    from components.embedding_rollout.rollout import rollout_embeddings

    params = read_params(values)
    rollout = RolloutParams(
        model=embedding_model(params, staged),
        queries=str(params.queries),
        sources=params.sources,
        alias=params.alias,
        milvus_uri=params.milvus_uri,
        top_k=params.top_k,
        max_recall_drop=params.max_recall_drop,
        max_mrr_drop=params.max_mrr_drop,
        max_p95_latency_ms=params.max_p95_ms or None,
        keep=params.keep,
        keep_failed=params.keep_failed,
    )
    report = rollout_embeddings(rollout)
    return report.model_dump(mode="json")


def collection_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The collection gate's numbers as Kubeflow Metrics."""
    gate = report.get("gate") or {}
    metrics = {"passed": 1.0 if report["outcome"] == PROMOTED else 0.0}
    for side in ("old", "new"):
        figures = gate.get(side) or {}
        for name in ("recall", "mrr", "latency_p95_ms"):
            if name in figures:
                metrics[f"{side}_{name}"] = float(figures[name])
    return metrics


def collection_outcome(values: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """The run's outcome; GateFailedError when the rollout was rolled back."""
    params = read_params(values)
    if report["outcome"] != PROMOTED:
        reasons = (report.get("gate") or {}).get("reasons") or ["the gate failed"]
        raise GateFailedError(
            f"gate failed: {'; '.join(reasons)}; alias {report['alias']} still serves "
            f"{report['live']}"
        )
    keys = ("alias", "previous", "live", "model", "dimension", "kept", "dropped", "table")
    result = outcome(params, PROMOTED, collection={k: report[k] for k in keys if k in report})
    return store_outcome(result, job_settings())
