"""What a rollout of an embedding model is asked (its parameters) and what it reports."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

# How a rollout ends. Refusals (bad input, a lock held, a model not available here) raise
# RolloutRefusedError instead and leave the alias and its collections as they were.
PROMOTED: Final = "promoted"
ROLLED_BACK: Final = "rolled_back"


class RolloutRefusedError(ValueError):
    """The rollout was refused before it changed anything readers see; the message says why."""


class RolloutParams(BaseModel):
    """A rollout's parameters; names match the ``llmw rollout embeddings`` options."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="the new embedding model (name or path)")
    queries: str = Field(min_length=1, description="JSONL query set: {query, relevant: [uri…]}")
    sources: list[str] = Field(
        default_factory=list,
        description="what to ingest; default: the sources the live one records",
    )
    alias: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$", description="default: LLMW_COLLECTION"
    )
    milvus_uri: str | None = None
    top_k: int = Field(5, ge=1, le=100)
    max_recall_drop: float = Field(0.05, ge=0, le=1)
    max_mrr_drop: float = Field(0.05, ge=0, le=1)
    max_p95_latency_ms: float | None = Field(None, gt=0)
    keep: int = Field(1, ge=0, description="previous generations kept for instant rollback")
    keep_failed: bool = False


class PassCounts(BaseModel):
    """One ingest pass into the new generation: documents by outcome, chunks written."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    chunks: int = 0

    @property
    def changes(self) -> int:
        return self.new + self.changed + self.deleted


class RolloutReport(BaseModel):
    """The outcome of a rollout (the ``--json`` object; also stored at ``report_uri``)."""

    outcome: Literal["promoted", "rolled_back"]
    alias: str
    previous: str  # the collection the alias pointed at before
    previous_model: str
    candidate: str  # the new generation (dropped after a failed gate unless kept)
    model: str
    dimension: int
    live: str  # the collection the alias points at now
    adopted: str | None = None  # a plain collection renamed into generation 0 by this run
    resumed: bool = False  # the candidate was left by an earlier run, and finished here
    sources: list[str] = Field(default_factory=list)
    build: PassCounts = Field(default_factory=PassCounts)
    catch_up: list[PassCounts] = Field(default_factory=list)
    after_switch: PassCounts | None = None
    failures: list[dict[str, str]] = Field(default_factory=list)
    gate: dict[str, Any] = Field(default_factory=dict)
    table: str = ""  # the gate table (Markdown), printed and stored whether it passed or not
    kept: list[str] = Field(default_factory=list)  # previous generations kept for rollback
    dropped: list[str] = Field(default_factory=list)
    report_uri: str | None = None
    gate_report_uri: str | None = None  # the gate's HTML report with plots, next to report_uri
    seconds: float = 0.0
