"""Batch inference input and output: rows in, results appended, resumable, local or S3.

Input is an OpenAI batch file (JSONL of ``{"custom_id", "method", "url", "body"}``) or a dataset
(JSONL, CSV or Parquet) plus a prompt template over its columns and the name of its id column.
A bad line becomes an error row in the output; a structural problem (a missing id column, a
template naming a column the dataset lacks, a dataset without a template) is refused before
anything runs. The output file's own rules (what may be appended to, what a rerun retries) live
in ``components.inference.results_file``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from components.inference.models import (
    SUPPORTED_URLS,
    BatchOptions,
    BatchResult,
    BatchRow,
    RowError,
)


class InputRefusedError(ValueError):
    """The input cannot be run at all; the message names the line or column."""


class OutputRefusedError(InputRefusedError):
    """The output is the input, or holds something other than results: it is left untouched."""


class ModelNotFoundError(InputRefusedError):
    """The model asked for can't be found or loaded; nothing ran."""


class EngineUnavailableError(RuntimeError):
    """The engine's service can't be reached; nothing ran."""


DATASET_SUFFIXES = (".csv", ".tsv", ".parquet")
BATCH_KEYS = frozenset({"custom_id", "method", "url", "body"})
PEEK_LINES = 20
DATASET_HINT = (
    "a dataset (CSV, Parquet, or JSONL rows that are not OpenAI batch requests "
    '{"custom_id", "method", "url", "body"}) needs --template (a prompt over its columns) '
    "and --id-column"
)


@dataclass(frozen=True)
class InputItem:
    """One input line: a request, or the error it gets instead."""

    line: int
    row: BatchRow | None = None
    error: RowError | None = None
    custom_id: str | None = None

    @property
    def key(self) -> str:
        """The id of its output line; resume matches on it."""
        return result_id(self.custom_id, self.line if self.custom_id is None else None)


def result_id(custom_id: str | None, line: int | None = None) -> str:
    """Deterministic output id: from the custom_id, or from the line for rows that lack one."""
    if custom_id is None:
        return f"batch_req_line_{line}"
    return "batch_req_" + hashlib.sha256(custom_id.encode()).hexdigest()[:24]


def error_result(item: InputItem) -> BatchResult:
    return BatchResult(id=item.key, custom_id=item.custom_id, error=item.error)


def read_items(path: Path, params: BatchOptions) -> Iterator[InputItem]:
    """Every input line in order, each a request or an error; duplicates become errors."""
    seen: set[str] = set()
    for item in _raw_items(path, params):
        if item.row is not None and item.row.custom_id in seen:
            yield InputItem(
                line=item.line,
                error=RowError(
                    code="duplicate_custom_id",
                    message=f"line {item.line}: custom_id {item.row.custom_id!r} already used",
                ),
            )
            continue
        if item.row is not None:
            seen.add(item.row.custom_id)
        yield item


def _raw_items(path: Path, params: BatchOptions) -> Iterator[InputItem]:
    if not params.dataset_mode():
        _refuse_a_dataset(path, params)
        yield from _batch_file_items(path)
        return
    if not params.id_column:
        raise InputRefusedError("a dataset with --template needs --id-column")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        records = _parquet_records(path)
    elif suffix == ".csv":
        records = _csv_records(path)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        records = _jsonl_records(path)
    else:
        raise InputRefusedError(f"unsupported dataset type {suffix!r}: use .jsonl, .csv, .parquet")
    yield from _dataset_items(records, params)


def _refuse_a_dataset(path: Path, params: BatchOptions) -> None:
    """Without a template the input must be an OpenAI batch file: judged by its type, then by
    its first JSON object within the first lines (a malformed first line stays a row's error)."""
    if path.suffix.lower() in DATASET_SUFFIXES:
        raise InputRefusedError(f"{path.name} is a dataset: {DATASET_HINT}")
    if params.id_column:
        raise InputRefusedError(
            f"--id-column {params.id_column!r} without --template: {DATASET_HINT}"
        )
    seen = 0
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            if isinstance(data, dict):
                if data.keys() & BATCH_KEYS:
                    return
                raise InputRefusedError(
                    f"line {number} is not an OpenAI batch request: {DATASET_HINT}"
                )
            seen += 1
            if seen >= PEEK_LINES:
                break
    if seen:
        raise InputRefusedError(f"the first lines are not JSON objects: {DATASET_HINT}")


def _batch_file_items(path: Path) -> Iterator[InputItem]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            yield _parse_batch_line(number, text)


def _parse_batch_line(number: int, text: str) -> InputItem:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return InputItem(
            number, error=RowError(code="malformed_line", message=f"line {number}: {exc}")
        )
    if not isinstance(data, dict):
        message = f"line {number}: expected a JSON object"
        return InputItem(number, error=RowError(code="malformed_line", message=message))
    custom_id = data.get("custom_id")
    if custom_id is None or custom_id == "":
        message = f"line {number}: no custom_id"
        return InputItem(number, error=RowError(code="missing_custom_id", message=message))
    if not isinstance(custom_id, str):
        kind = type(custom_id).__name__
        message = f"line {number}: custom_id must be a string, got {custom_id!r} ({kind})"
        return InputItem(number, error=RowError(code="invalid_custom_id", message=message))
    if data.get("url") not in SUPPORTED_URLS:
        message = (
            f"line {number}: url {data.get('url')!r} is not one of {', '.join(SUPPORTED_URLS)}"
        )
        return InputItem(
            number, error=RowError(code="unknown_url", message=message), custom_id=custom_id
        )
    try:
        return InputItem(number, row=BatchRow.model_validate(data), custom_id=custom_id)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        message = f"line {number}: {problems}"
        return InputItem(
            number, error=RowError(code="invalid_request", message=message), custom_id=custom_id
        )


def _template_fields(template: str) -> list[str]:
    try:
        return [field for _, field, _, _ in string.Formatter().parse(template) if field]
    except ValueError as exc:
        raise InputRefusedError(f"template is not valid: {exc}") from exc


def _dataset_items(
    records: Iterator[tuple[int, dict[str, Any], list[str] | None]], params: BatchOptions
) -> Iterator[InputItem]:
    assert params.template is not None and params.id_column is not None
    fields = _template_fields(params.template)
    for index, (line, record, header) in enumerate(records):
        if index == 0:
            # CSV and Parquet have a header; a JSONL dataset is judged by its first record.
            columns = header if header is not None else list(record)
            missing = [c for c in dict.fromkeys([params.id_column, *fields]) if c not in columns]
            if missing:
                where = f"line {line}" if header is None else "the header"
                raise InputRefusedError(
                    f"{where}: the dataset has no column {', '.join(map(repr, missing))} "
                    f"(columns: {', '.join(columns)})"
                )
        raw_id = record.get(params.id_column)
        if raw_id is None or str(raw_id) == "":
            message = f"line {line}: empty {params.id_column!r}"
            yield InputItem(line, error=RowError(code="missing_custom_id", message=message))
            continue
        custom_id = str(raw_id)
        try:
            prompt = params.template.format(
                **{k: "" if v is None else v for k, v in record.items()}
            )
        except (KeyError, IndexError, ValueError) as exc:
            message = f"line {line}: template could not be filled: {exc!r}"
            yield InputItem(
                line, error=RowError(code="template_error", message=message), custom_id=custom_id
            )
            continue
        body = {
            "model": params.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
        }
        row = BatchRow(custom_id=custom_id, url="/v1/chat/completions", body=body)
        yield InputItem(line, row=row, custom_id=custom_id)


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any], list[str] | None]]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                record = {"__malformed__": text.strip()[:200]}
            yield number, record, None


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any], list[str] | None]]:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        for record in reader:
            yield reader.line_num, dict(record), header


def _parquet_records(path: Path) -> Iterator[tuple[int, dict[str, Any], list[str] | None]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    header = list(parquet.schema_arrow.names)
    number = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            number += 1
            yield number, record, header
