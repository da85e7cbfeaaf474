"""What a job's run and its steps say when they end: exit codes, in one place.

The commands (``llmw ingest``, ``llmw infer``, ``llmw run``) exit with them, the engine steps exit
with ``EXIT_BAD_INPUT`` when they refuse their input, and the retry policies
(``components.registry.RetryPolicy``) retry every failure but that one.

- ``0`` done; ``1`` failed (a step failed after its retries, a service could not be reached);
- ``2`` bad input or configuration: a step that refuses its input prints one line on stderr,
  ``bad input: <what was wrong>``, and exits 2; retrying it could not help;
- ``3`` some documents failed, or some rows have an error in the output (the rest is in);
- ``4`` prune refused (the rest of the run landed).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PARTLY_DONE = 3
EXIT_PRUNE_REFUSED = 4

# The line a step that refuses its input writes last on stderr (kfp.local, which keeps no exit
# code, reads it there).
BAD_INPUT_PREFIX = "bad input: "
# What a step refuses as bad input: a path that is not there or not what it should be, a value
# its models refuse (pydantic's ValidationError is a ValueError), a collection that does not fit
# the model, an input or output the batch job refuses. Anything else (a service that blinked,
# an engine that could not be reached) may pass on a retry.
BAD_INPUT_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError)
# A traceback's last line ("FileNotFoundError: source /x does not exist"), or a command's own
# "error: ..." line.
_ERROR_LINE = re.compile(r"^(error: |bad input: |[A-Za-z_][\w.]*(Error|Exception|Exit)\b:?)")


@dataclass(frozen=True)
class ExitStatus:
    """A run's exit code, and the line that says why when it is not 0."""

    code: int
    message: str | None = None


def done_status(report: Mapping[str, Any]) -> ExitStatus:
    """A job whose report has nothing that went partly wrong: a report means done."""
    return ExitStatus(EXIT_DONE)


def ingestion_status(report: Mapping[str, Any]) -> ExitStatus:
    """An ingestion report's exit status (the report as ``IngestReport.model_dump()`` gives it):
    4 when prune was refused, else 3 when a document failed, else 0."""
    if report.get("prune_error"):
        return ExitStatus(EXIT_PRUNE_REFUSED, str(report["prune_error"]))
    failed = int(report.get("documents", {}).get("failed", 0))
    if failed:
        noun = "document" if failed == 1 else "documents"
        message = f"{failed} {noun} failed (every other document is in)"
        return ExitStatus(EXIT_PARTLY_DONE, message)
    return ExitStatus(EXIT_DONE)


def removal_status(report: Mapping[str, Any]) -> ExitStatus:
    """A removal report's exit status: 0, each document having been removed or not found
    (not there is an outcome, not a failure: a repeated or retried removal converges)."""
    return ExitStatus(EXIT_DONE)


def batch_status(report: Mapping[str, Any]) -> ExitStatus:
    """A batch inference report's exit status: 3 while any row has an error in the output."""
    errors = int(report.get("errors", 0))
    if errors:
        noun = "row has an error" if errors == 1 else "rows have an error"
        return ExitStatus(
            EXIT_PARTLY_DONE, f"{errors} {noun} in the output (every other row is in it)"
        )
    return ExitStatus(EXIT_DONE)


@contextmanager
def refusing_bad_input(step: str = "step") -> Iterator[None]:
    """Around an engine step's work: bad input (``BAD_INPUT_ERRORS``) ends the process with
    ``EXIT_BAD_INPUT`` after one line on stderr, ``bad input: <what was wrong>``, which the retry
    policies do not retry. Any other failure goes on as it is (a traceback, exit 1, retried).
    The step is a span named ``step`` in the run's trace when the run carries one."""
    from components.tracing import step_span

    with step_span(step):
        try:
            yield
        except BAD_INPUT_ERRORS as exc:
            print(BAD_INPUT_PREFIX + one_line(exc), file=sys.stderr, flush=True)
            raise SystemExit(EXIT_BAD_INPUT) from None


def step_error(log: str) -> str | None:
    """A failed step's own one-line error in its log (stderr): the last line that says what was
    wrong (``bad input: …``, ``error: …``, a traceback's ``SomeError: …``), else the last line;
    None when the log is empty."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.match(line):
            return line
    return lines[-1] if lines else None


def is_bad_input(line: str | None) -> bool:
    """Whether a step's error line is its refusal of bad input."""
    return line is not None and line.startswith(BAD_INPUT_PREFIX)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (pydantic's are several)."""
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())
