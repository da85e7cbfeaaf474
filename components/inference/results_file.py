"""The results file: what batch inference may write to, how it appends, what a rerun retries.

A run only ever appends to a file of results (JSONL rows in the OpenAI batch output shape,
``{"id", "custom_id", "response", "error"}``) or to a file it creates. The input itself (by
path or by inode), a folder, or a file with any line that is not a result row is refused before
anything runs and left as it was; ``overwrite`` is the explicit way to replace such a file.
Nothing touches the file before the first result is written, so a refused or failed run leaves
no file behind. A torn last line (a kill mid-write) is cut off at the first write.

A row whose error can succeed on retry (``RETRYABLE_CODES``) is not done: a rerun runs it again
and appends its new row; the last row of an id wins, and the writer rewrites the file with one
row per id when it closes (atomically: a kill leaves the previous file, which the next run
reads the same way).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from components.inference.batch_io import OutputRefusedError
from components.inference.models import BatchResult

RESULT_KEYS = frozenset({"id", "custom_id", "response", "error"})
# Errors that a rerun retries: the request may succeed next time. Every other code (a malformed
# line, a missing or duplicate custom_id, an unknown url, an invalid request, a prompt longer
# than the model's context, ...) is the row's final answer until the input or model changes.
RETRYABLE_CODES = frozenset(
    {"request_failed", "retries_exhausted", "timeout", "server_error", "rate_limit_exceeded"}
)
REFUSAL_HINT = "it is left as it is: choose another output, or --overwrite to replace it"


def check_local_output(uri: str, input_uri: str) -> Path:
    """The output as a local path, or OutputRefusedError naming why it can't be one."""
    if not uri.strip():
        raise OutputRefusedError("the output is empty: give a file path or an s3:// URI")
    path = Path(uri)
    if path.is_dir():
        raise OutputRefusedError(f"output {uri} is a folder: give a file path")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputRefusedError(f"output {uri}: {parent} is not a folder")
    source = Path(input_uri)
    if path.exists() and source.exists() and os.path.samefile(path, source):
        raise OutputRefusedError(f"output {uri} is the input {input_uri}: write results elsewhere")
    return path


def is_result_row(data: Any) -> bool:
    """Whether a parsed line is a row of the OpenAI batch output shape."""
    if not isinstance(data, dict) or set(data) != RESULT_KEYS:
        return False
    response, error = data["response"], data["error"]
    return (
        isinstance(data["id"], str)
        and bool(data["id"])
        and (data["custom_id"] is None or isinstance(data["custom_id"], str))
        and (response is None or isinstance(response, dict))
        and (not isinstance(response, dict) or isinstance(response.get("status_code"), int))
        and (error is None or isinstance(error, dict))
    )


def _torn(raw: bytes) -> bool:
    """A last line without its newline that starts like a result row: a write cut by a kill."""
    compact = re.sub(rb"\s+", b"", raw[:64])
    return bool(compact) and (compact.startswith(b'{"id":') or b'{"id":'.startswith(compact))


@dataclass
class ExistingResults:
    """What a results file holds: each id's latest error code (None: answered), and where its
    whole lines end (a torn last line after that)."""

    latest: dict[str, str | None] = field(default_factory=dict)
    good_bytes: int = 0
    size: int = 0
    duplicates: bool = False

    @classmethod
    def read(cls, path: Path, name: str) -> ExistingResults:
        """Scan ``path``; refuse (OutputRefusedError) a file with a line that isn't a result."""
        found = cls()
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = None
                if not is_result_row(data):
                    if not raw.endswith(b"\n") and _torn(raw):
                        break
                    raise OutputRefusedError(
                        f"output {name}: line {number} is not a result row "
                        f'{{"id", "custom_id", "response", "error"}}; {REFUSAL_HINT}'
                    )
                found.duplicates |= data["id"] in found.latest
                error = data["error"]
                found.latest[data["id"]] = None if error is None else str(error.get("code"))
                found.good_bytes += len(raw)
        found.size = path.stat().st_size
        return found


class ResultWriter:
    """Appends results to a results file, durably; knows which ids earlier runs finished."""

    def __init__(self, path: Path, name: str | None = None, overwrite: bool = False) -> None:
        self.path = path
        self.overwrite = overwrite
        existing = ExistingResults()
        if path.exists() and not overwrite:
            existing = ExistingResults.read(path, name or str(path))
        self.existing = existing
        final = {k: code for k, code in existing.latest.items() if code not in RETRYABLE_CODES}
        self.done: set[str] = set(final)  # ids a rerun skips
        self.failed: set[str] = {k for k, code in final.items() if code is not None}
        self._compact = existing.duplicates
        self._handle: IO[bytes] | None = None

    def write(self, results: list[BatchResult]) -> None:
        if not results:
            return
        handle = self._handle or self._open()
        data = "".join(r.model_dump_json(exclude_none=False) + "\n" for r in results)
        handle.write(data.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
        for result in results:
            self._compact |= result.id in self.existing.latest
            self.done.add(result.id)

    def _open(self) -> IO[bytes]:
        """Open for appending, at the first write: cut a torn last line, end the last line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.overwrite:
            self._handle = self.path.open("wb")
            return self._handle
        handle = self._handle = self.path.open("ab")
        good = self.existing.good_bytes
        if self.existing.size > good:
            handle.truncate(good)
        if good and _last_byte(self.path, good) != b"\n":
            handle.write(b"\n")
        return handle

    def close(self, complete: bool = True) -> None:
        """Close; after a complete run an output exists even when no row needed writing."""
        if self._handle is not None:
            self._handle.close()
        elif complete and (self.overwrite or not self.path.exists()):
            self._open().close()
        if self._compact:
            compact_results(self.path)
            self._compact = False


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1)


def compact_results(path: Path) -> None:
    """Rewrite ``path`` with the last row of each id only, in file order, atomically."""
    last: dict[str, int] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle):
            if raw.endswith(b"\n"):  # every whole line is a result row by now
                last[json.loads(raw)["id"]] = number
    keep = set(last.values())
    partial = path.with_name(f".{path.name}.compacting")
    with path.open("rb") as source, partial.open("wb") as target:
        for number, raw in enumerate(source):
            if number in keep:
                target.write(raw)
        target.flush()
        os.fsync(target.fileno())
    shutil.copymode(path, partial)
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
