"""The ingestion job's parameter model, what its shard step needs, and its report."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from components.cluster.placement import GpuNeed

# The shard step (the KFP component, the Argo template) and what it needs: the embedding model's
# framework on its default GPU (the BGE node, drizzt, in the shipped inventory).
INGEST_SHARD_STEP = "ingest-shard"
EMBEDDING_NEED = GpuNeed(framework="sentence-transformers")


class IngestParams(BaseModel):
    """What one ingestion run is asked to do; names match the ``llmw ingest`` options."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="a folder, a file, or s3://bucket/prefix")
    collection: str = Field("documents", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
    milvus_uri: str | None = Field(None, description="Milvus Lite file or server URL")
    prune: bool = Field(False, description="delete documents that are gone from the source")

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, value: str) -> str:
        if not value.strip():
            # No "Value error, " prefix: the refusal reads "source: must not be empty".
            raise PydanticCustomError("empty", "must not be empty")
        return value


class DocumentCounts(BaseModel):
    seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    skipped: int = 0


class DocumentIssue(BaseModel):
    """A document that failed (``error``) or was skipped (the reason in ``error`` too)."""

    source_uri: str
    error: str


class IngestReport(BaseModel):
    """The outcome of an ingestion run (or of one shard of it)."""

    documents: DocumentCounts = Field(default_factory=DocumentCounts)
    chunks: int = 0
    seconds: float = 0.0
    failures: list[DocumentIssue] = Field(default_factory=list)
    skipped: list[DocumentIssue] = Field(default_factory=list)
    prune_error: str | None = None

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    def to_cli_json(self) -> dict[str, Any]:
        """The ``llmw ingest --json`` object (a contract: scripts depend on these keys)."""
        return {
            "documents": self.documents.model_dump(),
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "failures": [f.model_dump() for f in self.failures],
        }

    @classmethod
    def merge(cls, reports: list[IngestReport]) -> IngestReport:
        """One report for shards that ran in parallel (seconds: the slowest shard)."""
        merged = cls()
        for report in reports:
            for name in DocumentCounts.model_fields:
                total = getattr(merged.documents, name) + getattr(report.documents, name)
                setattr(merged.documents, name, total)
            merged.chunks += report.chunks
            merged.seconds = max(merged.seconds, report.seconds)
            merged.failures.extend(report.failures)
            merged.skipped.extend(report.skipped)
            merged.prune_error = merged.prune_error or report.prune_error
        return merged
