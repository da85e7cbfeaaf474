"""Batch inference: input rows -> shard -> skip what's written -> engine -> append results.

A rerun with the same output skips every id already written, so a run killed at any point and
rerun ends with every id exactly once. Results are matched by ``custom_id``, never by order.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from components.ids import Shard
from components.inference.batch_io import InputItem, ResultWriter, error_result, read_items
from components.inference.engines.base import InferenceEngine
from components.inference.models import BatchParams, BatchReport, BatchResult, BatchRow
from components.settings import Settings, get_settings

ProgressCallback = Callable[[BatchReport], None]
CHECKPOINT_ROWS = 500
CHECKPOINT_S = 30.0
# Results are made durable at least every WRITE_EVERY_S seconds (or WRITE_EVERY rows); a kill
# loses at most that window, which the rerun redoes. An fsync per row would stall the engine.
WRITE_EVERY = 256
WRITE_EVERY_S = 1.0


def make_engine(params: BatchParams, settings: Settings) -> InferenceEngine:
    if params.engine == "openai":
        from components.inference.engines.openai_engine import OpenAIEngine

        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return OpenAIEngine(settings.llm_url, api_key=key, concurrency=params.concurrency)
    if params.engine == "vllm":
        from components.inference.engines.vllm_engine import VLLMEngine

        return VLLMEngine(params.model)
    from components.inference.engines.transformers_engine import TransformersEngine

    return TransformersEngine(params.model, batch_size=params.batch_size)


@contextlib.contextmanager
def local_input(uri: str, settings: Settings) -> Iterator[Path]:
    """The input as a local file: the path itself, or an S3 object downloaded for the duration."""
    if not uri.startswith("s3://"):
        path = Path(uri)
        if not path.is_file():
            raise FileNotFoundError(f"input {uri} does not exist")
        yield path
        return
    from components.storage.s3 import minio_client, parse_s3_uri

    bucket, key = parse_s3_uri(uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(key).name
        minio_client(settings).fget_object(bucket, key, str(local))
        yield local


class _Output:
    """The output file: local, or a local working copy of an S3 object uploaded at checkpoints."""

    def __init__(self, uri: str, settings: Settings, work_dir: Path) -> None:
        self.uri = uri
        self.client: Any = None
        if uri.startswith("s3://"):
            from minio.error import S3Error

            from components.storage.s3 import minio_client, parse_s3_uri

            self.client = minio_client(settings)
            self.bucket, self.key = parse_s3_uri(uri)
            self.path = work_dir / "output.jsonl"
            try:  # resume from what an earlier run uploaded
                self.client.fget_object(self.bucket, self.key, str(self.path))
            except S3Error as exc:
                if exc.code != "NoSuchKey":
                    raise
        else:
            self.path = Path(uri)

    def checkpoint(self) -> None:
        if self.client is not None and self.path.exists():
            self.client.fput_object(self.bucket, self.key, str(self.path))


class _ResultSink:
    """Collects a shard's results: counts them, writes them in batches, checkpoints to S3."""

    def __init__(
        self, output: _Output, report: BatchReport, progress: ProgressCallback | None
    ) -> None:
        self.output = output
        self.writer = ResultWriter(output.path)
        self.report = report
        self.progress = progress
        self.pending: list[BatchResult] = []
        self.started = time.perf_counter()
        self.last_write = time.monotonic()
        self.last_checkpoint = (time.monotonic(), 0)

    def emit(self, result: BatchResult) -> None:
        report = self.report
        report.rows += 1
        if result.error is not None:
            report.errors += 1
        usage = (result.response.body.get("usage") if result.response else None) or {}
        report.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        report.completion_tokens += int(usage.get("completion_tokens") or 0)
        self.pending.append(result)
        if len(self.pending) >= WRITE_EVERY or time.monotonic() - self.last_write >= WRITE_EVERY_S:
            self.flush()
        if self.progress:
            report.seconds = time.perf_counter() - self.started
            self.progress(report)

    def flush(self) -> None:
        self.writer.write(self.pending)
        self.pending.clear()
        now = self.last_write = time.monotonic()
        at, rows = self.last_checkpoint
        if self.report.rows - rows >= CHECKPOINT_ROWS or now - at >= CHECKPOINT_S:
            self.output.checkpoint()
            self.last_checkpoint = (now, self.report.rows)

    def close(self) -> None:
        self.flush()
        self.writer.close()
        self.output.checkpoint()

    def owned(self, items: Iterator[InputItem], shard: Shard) -> Iterator[BatchRow]:
        """The rows this shard owns that aren't written yet; unreadable rows become errors."""
        for item in items:
            if not shard.owns(item.custom_id or f"line:{item.line}"):
                continue
            if item.key in self.writer.done:
                self.report.skipped += 1
            elif item.row is None:
                self.emit(error_result(item))
            else:
                yield item.row


def run_batch(
    params: BatchParams,
    settings: Settings | None = None,
    *,
    engine: InferenceEngine | None = None,
    progress: ProgressCallback | None = None,
) -> BatchReport:
    """Run the rows of ``params.input`` that this shard owns and that aren't written yet."""
    settings = settings or get_settings()
    shard = Shard.parse(params.shard)
    report = BatchReport()
    started = time.perf_counter()
    with local_input(params.input, settings) as input_path, tempfile.TemporaryDirectory() as tmp:
        sink = _ResultSink(_Output(params.output, settings, Path(tmp)), report, progress)
        items = read_items(input_path, params)
        first = next(items, None)  # structural refusals surface here, before any engine loads
        try:
            if first is not None:
                rows = sink.owned(_chain(first, items), shard)
                first_row = next(rows, None)
                if first_row is not None:
                    engine = engine or make_engine(params, settings)
                    engine.process(_chain(first_row, rows), sink.emit)
        finally:
            sink.close()
    report.seconds = time.perf_counter() - started
    return report


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def merge_outputs(parts: list[Path], output: Path) -> int:
    """Shard outputs -> one JSONL with every id exactly once; returns the number of lines."""
    seen: set[str] = set()
    written = 0
    with output.open("w", encoding="utf-8") as out:
        for part in parts:
            with part.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        result_id = json.loads(line)["id"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line from a killed shard
                    if result_id not in seen:
                        seen.add(result_id)
                        out.write(line if line.endswith("\n") else line + "\n")
                        written += 1
    return written
