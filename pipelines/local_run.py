"""Run a whole registered pipeline on this machine with ``kfp.local``.

kfp.local (2.17) runs the real DAG: ``dsl.ParallelFor`` (honouring its parallelism),
``dsl.Collected``, retries with backoff, artifacts and the pipeline's outputs.
``SubprocessRunner(use_venv=False)`` runs each component in a subprocess of this interpreter,
where ``components`` is importable. The pipeline is built ``for_cluster=False``: kfp.local would
ignore its Kubernetes platform config (secrets, node selector, tolerations, accelerators)
anyway, and the in-cluster environment (the Milvus server URI, GPU variables) must not replace
the user's settings here.

The settings reach the subprocesses as ``LLMW_*`` environment variables: during the run, the
environment holds exactly the given settings (so values passed to ``Settings(...)`` in code or
read from ``LLMW_CONFIG_FILE`` apply in the components too), and is restored afterwards.

kfp.local prints its log, the tasks' own output included, on stdout, coloured (it has no option
against either): during the run, stdout goes to stderr instead, without colour codes unless
stderr is a terminal, so that a caller's stdout holds only what it prints itself. The log also
tells the failed task's own error line (``components.exit_codes.step_error``); kfp.local keeps
no exit code, so a task refusing bad input is told by its ``bad input: …`` line.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from kfp import local

from components.exit_codes import is_bad_input, step_error
from components.settings import Settings, settings_env
from pipelines.registry import get_pipeline, normalize_result, pipeline_arguments, with_trace

DEFAULT_PIPELINE_ROOT = Path(".llmw/kfp-local")
ENV_PREFIX = "LLMW_"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours task names in its messages
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_INNER = re.compile(r"Inner task failed: '([^']+)'")


class LocalRunError(RuntimeError):
    """A local pipeline run that failed; the message names the task that failed and says its
    own error line. ``bad_input``: that task refused its input."""

    def __init__(self, message: str, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


class _KfpLog(io.TextIOBase):
    """kfp.local's log (what it prints on stdout), passed on to ``out`` (colour codes removed
    unless ``out`` is a terminal); each task's own lines read on the way, so that a failure can
    say the failed task's error line and how many attempts it had."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out
        self.colour = out.isatty()
        self.failed: dict[str, str | None] = {}  # failed task -> its last attempt's error line
        self.attempts: dict[str, int] = {}
        self._partial = ""
        self._task: str | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            for line in lines:
                self._read(ANSI.sub("", line))
            self.out.write(text if self.colour else ANSI.sub("", text))
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def _read(self, line: str) -> None:
        started = _STARTED.search(line)
        finished = _FINISHED.search(line)
        if started:  # a retry follows a failure of the same task
            name = started[1]
            self.attempts[name] = self.attempts.get(name, 0) + 1 if name in self.failed else 1
            self._task, self._lines = name, []
        elif finished and finished[2] == "FAILURE":
            self.failed[finished[1]] = step_error("\n".join(self._lines))
        elif finished:
            self.failed.pop(finished[1], None)
        elif self._task is not None:
            self._lines.append(line)

    def failure(self, pipeline: str, exc: RuntimeError) -> LocalRunError:
        """The run's failure: the failed task, its own error line and its attempts (kfp's
        message, uncoloured, when the log did not tell)."""
        text = ANSI.sub("", str(exc))
        inner = _INNER.search(text)
        line = self.failed.get(inner[1]) if inner else None
        if inner is None or line is None:
            return LocalRunError(f"{pipeline}: {text}")
        attempts = self.attempts.get(inner[1], 1)
        tried = f" ({attempts} attempts)" if attempts > 1 else ""
        return LocalRunError(f"{pipeline} failed: {inner[1]}: {line}{tried}", is_bad_input(line))


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Replace every ``LLMW_*`` variable with ``values`` for the duration (the config file too:
    the values already include what it said)."""
    saved = {key: value for key, value in os.environ.items() if key.startswith(ENV_PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[key]
        os.environ.update(saved)


def run_local(
    name: str,
    params: dict[str, Any],
    settings: Settings | None = None,
    pipeline_root: Path | None = None,
    log: TextIO | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """Run pipeline ``name`` with ``params`` through kfp.local; returns its final report.

    ``params`` are checked against the job's model first (ParameterError, UnknownPipelineError).
    Task outputs and artifacts (the Metrics and Markdown summary) are kept under
    ``pipeline_root`` (default ``.llmw/kfp-local``). Raises LocalRunError when a task fails
    after its retries. Without ``settings`` the inherited environment is used as it is.
    kfp.local's log goes to ``log`` (default: stderr; see above). ``traceparent`` (else the
    current span's) is the run's ``traceparent`` parameter: the steps' spans join that trace;
    with none the steps inherit ``$TRACEPARENT`` (a local engine's worker sets it).
    """
    arguments = with_trace(pipeline_arguments(name, params), traceparent)
    pipeline = get_pipeline(name, settings, for_cluster=False)
    root = (pipeline_root or DEFAULT_PIPELINE_ROOT).resolve()
    root.mkdir(parents=True, exist_ok=True)
    env = settings_env(settings) if settings is not None else None
    kfp_log = _KfpLog(log or sys.stderr)
    with (
        # kfp.local deletes the workspace itself at the end of the run.
        tempfile.TemporaryDirectory(
            prefix="llmw-kfp-workspace-", ignore_cleanup_errors=True
        ) as workspace,
        _environment(env) if env is not None else contextlib.nullcontext(),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(kfp_log),
    ):
        # The component image is not a python image, which the runner warns about; here the
        # components run in this interpreter, where the project is installed.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        # Display names are for the Kubeflow UI; kfp.local says it ignores them.
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner")
        # kfp.local's session is process-wide; each run starts its own (public ``init``), which
        # stays set after the run, as after any ``local.init``.
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            workspace_root=workspace,
            raise_on_error=True,
        )
        try:
            task = pipeline(**arguments)
        except RuntimeError as exc:
            raise kfp_log.failure(name, exc) from exc
        finally:
            kfp_log.flush()
    result = normalize_result(name, task.output)
    if not isinstance(result, dict):
        raise LocalRunError(f"{name}: expected a report mapping, got {type(result).__name__}")
    return result
