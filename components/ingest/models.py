"""The ingestion job's parameter model, what its shard step needs, and its report; the removal
job's parameter model and report."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from components.cluster.placement import GpuNeed

# The shard step (the KFP component, the Argo template) and what it needs: the embedding model's
# framework on its default GPU (the BGE node, drizzt, in the shipped inventory).
INGEST_SHARD_STEP = "ingest-shard"
EMBEDDING_NEED = GpuNeed(framework="sentence-transformers")
COLLECTION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,200}$"


class IngestParams(BaseModel):
    """What one ingestion run is asked to do; names match the ``llmw ingest`` options."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="a folder, a file, or s3://bucket/prefix")
    collection: str = Field("documents", pattern=COLLECTION_PATTERN)
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


# A report that travels between steps lists at most this many failed and skipped documents
# each (the first ones), with errors cut to MAX_ISSUE_CHARS; the rest are only counted.
MAX_LISTED_ISSUES = 100
MAX_ISSUE_CHARS = 500


class IngestReport(BaseModel):
    """The outcome of an ingestion run (or of one shard of it).

    ``failures_unlisted``/``skipped_unlisted``: documents counted in ``documents.failed`` and
    ``documents.skipped`` that a ``bounded`` report no longer lists."""

    documents: DocumentCounts = Field(default_factory=DocumentCounts)
    chunks: int = 0
    seconds: float = 0.0
    failures: list[DocumentIssue] = Field(default_factory=list)
    skipped: list[DocumentIssue] = Field(default_factory=list)
    failures_unlisted: int = 0
    skipped_unlisted: int = 0
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
            merged.failures_unlisted += report.failures_unlisted
            merged.skipped_unlisted += report.skipped_unlisted
            merged.prune_error = merged.prune_error or report.prune_error
        return merged

    def bounded(self, limit: int = MAX_LISTED_ISSUES) -> IngestReport:
        """This report listing at most ``limit`` failed and ``limit`` skipped documents (the
        first ones, errors cut to MAX_ISSUE_CHARS), the others counted in ``*_unlisted``: the
        size of a report that travels between steps does not grow with the source."""

        def first(issues: list[DocumentIssue]) -> list[DocumentIssue]:
            return [
                DocumentIssue(source_uri=i.source_uri, error=_cut(i.error)) for i in issues[:limit]
            ]

        return self.model_copy(
            update={
                "failures": first(self.failures),
                "skipped": first(self.skipped),
                "failures_unlisted": self.failures_unlisted + max(0, len(self.failures) - limit),
                "skipped_unlisted": self.skipped_unlisted + max(0, len(self.skipped) - limit),
            },
            deep=True,
        )


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ISSUE_CHARS else text[: MAX_ISSUE_CHARS - 1] + "…"


# --- document removal ---------------------------------------------------------------------------

DOCUMENT_URI_HELP = "s3://bucket/key, file:///absolute/path or a path"


def _document_uri(value: str) -> str:
    """One document's source as ingestion names it: an ``s3://bucket/key`` object, a
    ``file:///absolute/path`` or a local path; never a folder or prefix (ending in ``/``), another
    scheme, or text with control characters."""
    problem = document_uri_problem(value)
    if problem:
        # No "Value error, " prefix: the refusal reads "uris.0: <problem>".
        raise PydanticCustomError("document_uri", problem)
    return value


def document_uri_problem(value: str) -> str | None:
    """Why ``value`` is not one document's URI or path, or None when it is one."""
    if not value.strip():
        return "must not be empty"
    if any(ord(char) < 0x20 or char == "\x7f" for char in value):
        return f"{value!r} holds a control character"
    scheme, sep, rest = value.partition("://")
    if not sep:
        name = value.rstrip("/").rsplit("/", 1)[-1]
        if value.endswith("/") or name in (".", ".."):
            return f"{value!r} is a folder, not a document"
        return None
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            return f"{value!r} names no object: use s3://bucket/key"
    elif scheme == "file":
        if not rest.startswith("/"):
            return f"{value!r} is not an absolute file URI: use file:///absolute/path"
    else:
        return f"{value!r} is not a document URI: use {DOCUMENT_URI_HELP}"
    if value.endswith("/"):
        return f"{value!r} is a folder or prefix, not a document"
    return None


DocumentUri = Annotated[str, AfterValidator(_document_uri)]


class RemovalParams(BaseModel):
    """What one removal run is asked to do: remove these documents' rows (their chunks and
    manifest record) from the collection. Names match ``llmw ingest --remove`` and
    ``document-ingestion``'s parameters."""

    model_config = ConfigDict(extra="forbid")

    uris: list[DocumentUri] = Field(
        description=f"the documents' source URIs, as ingested: {DOCUMENT_URI_HELP}"
    )
    collection: str = Field("documents", pattern=COLLECTION_PATTERN)
    milvus_uri: str | None = Field(None, description="Milvus Lite file or server URL")

    @field_validator("uris")
    @classmethod
    def _some_uris(cls, value: list[str]) -> list[str]:
        if not value:
            raise PydanticCustomError("empty", "must name at least one document")
        return value


class RemovedDocument(BaseModel):
    """One requested URI: the source URI it names (as ingestion records it), its ``doc_id``,
    whether its rows were removed or were not there, and how many chunks its record listed."""

    uri: str
    source_uri: str
    doc_id: str
    outcome: Literal["removed", "not_found"]
    chunks: int = 0


class RemovalReport(BaseModel):
    """The outcome of a removal run: one entry per distinct document asked for, in order."""

    collection: str
    removed: int = 0
    not_found: int = 0
    chunks: int = 0
    seconds: float = 0.0
    documents: list[RemovedDocument] = Field(default_factory=list)
