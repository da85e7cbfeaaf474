"""Batch inference: the job's parameters, its engines and what each needs to run, its rows (OpenAI
batch format) and its report."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from components.cluster.placement import GpuNeed

# The engines, in the order the engine rooms branch on them (KFP: dsl.If, dsl.Elif, then
# dsl.Else for the last, since KFP's OneOf needs an Else; the parameter model admits only these).
ENGINES: tuple[str, ...] = ("vllm", "openai", "transformers")
# What each engine's shard step needs. vLLM: a GPU it supports (khelben in the shipped
# inventory), running this project over vLLM; transformers: the CPU (the cluster's GPUs serve
# other models); openai: nothing but HTTP to a server, so no placement at all.
ENGINE_NEEDS: dict[str, GpuNeed | None] = {
    "vllm": GpuNeed(framework="vllm", image_framework="llmw-vllm"),
    "transformers": GpuNeed(framework="transformers", gpu=False),
    "openai": None,
}


def shard_step(engine: str) -> str:
    """The name of an engine's shard step (the KFP component, the Argo template)."""
    return f"infer-shard-{engine}"


BatchUrl = Literal["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
SUPPORTED_URLS: tuple[str, ...] = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


class BatchOptions(BaseModel):
    """What every batch-inference run is asked to do: input, output, engine, model, generation."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(description="OpenAI batch JSONL, or a JSONL/CSV/Parquet dataset; or s3://")
    output: str = Field(description="JSONL results in the OpenAI batch output shape; or s3://")
    engine: Literal["transformers", "openai", "vllm"] = "transformers"
    model: str = Field(description="model path or name (the served name for openai)")
    template: str | None = Field(None, description="prompt template over dataset columns")
    id_column: str | None = Field(None, description="the dataset column holding the row id")
    concurrency: int = Field(8, ge=1, le=512)
    max_tokens: int = Field(64, ge=1, le=32768)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    batch_size: int = Field(8, ge=1, le=1024)

    def dataset_mode(self) -> bool:
        return self.template is not None


class BatchParams(BatchOptions):
    """One run of the step (``llmw infer``); names match its options."""

    shard: str = Field("0/1", pattern=r"^\d+/\d+$")
    # Batch inference's safety switch (llmw infer --overwrite): replace an output that isn't
    # this job's results. Not a job parameter: the job never replaces a file it didn't write.
    overwrite: bool = Field(False, description="replace an output that is not a results file")


class BatchJobParams(BatchOptions):
    """The ``batch-inference`` job: the options, and how many shards the input is cut into.

    The job chooses each shard and its output itself, so ``shard`` is not a parameter here.
    """

    shards: int = Field(1, ge=1, le=64, description="shards (at most one per input row)")

    def for_shard(self, shard: str, output: str) -> BatchParams:
        """The step's parameters for one shard writing to ``output``."""
        values = self.model_dump(exclude={"shards"})
        return BatchParams(**{**values, "shard": shard, "output": output})


class BatchRow(BaseModel):
    """One request line: ``{"custom_id", "method", "url", "body"}``."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1)
    method: Literal["POST"] = "POST"
    url: BatchUrl
    body: dict[str, Any]


class RowError(BaseModel):
    code: str
    message: str


class ResponseBody(BaseModel):
    status_code: int
    request_id: str = ""
    body: dict[str, Any]


class BatchResult(BaseModel):
    """One output line, in the OpenAI batch output shape."""

    id: str
    custom_id: str | None
    response: ResponseBody | None = None
    error: RowError | None = None


class BatchReport(BaseModel):
    rows: int = 0  # rows answered by this run (results + errors)
    skipped: int = 0  # already in the output from an earlier run
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def merge(cls, reports: list[BatchReport]) -> BatchReport:
        """One report for shards that ran in parallel (seconds: the slowest shard)."""
        merged = cls()
        for report in reports:
            merged.rows += report.rows
            merged.skipped += report.skipped
            merged.errors += report.errors
            merged.prompt_tokens += report.prompt_tokens
            merged.completion_tokens += report.completion_tokens
            merged.seconds = max(merged.seconds, report.seconds)
        return merged
