"""The engines a request can run on, behind one interface: submit by run name, read a status.

Submission is idempotent on the run name, which the bridge derives from the ``request_id``: Argo
refuses a second Workflow of the same name (409) and the existing one is adopted; KFP runs are
looked up by display name in their experiment first; local runs are keyed by name. So a bridge
killed between submitting and recording the run id never makes a second run when it retries.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

from bridge.messages import ENGINES, RunState
from components import tracing
from components.orchestration import lifeline
from components.orchestration.runs import RunStatus, SubmitError, SubmittedRun
from components.settings import Settings

# Engine words -> the contract's states (KFP upper case, Argo capitalised, local runs lower).
_STATES = {
    "pending": RunState.submitted,
    "running": RunState.running,
    "canceling": RunState.running,
    "paused": RunState.running,
    "succeeded": RunState.succeeded,
    "success": RunState.succeeded,
    "skipped": RunState.succeeded,
    "failed": RunState.failed,
    "error": RunState.failed,
    "canceled": RunState.failed,
    "cancelled": RunState.failed,
    "interrupted": RunState.failed,  # unless the watcher resumes it
}
# A local run this process did not start: the bridge that did stopped (crashed) while it ran.
INTERRUPTED = "Interrupted"
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
T = TypeVar("T")


class Engine(Protocol):
    """What the bridge needs of an engine; ``submit`` must be idempotent on ``run_name``.

    An engine may set ``blocking = False`` when ``submit`` and ``status`` return at once (no
    network or disk): the bridge then calls them on its event loop instead of in a thread.
    """

    name: str

    def submit(
        self, pipeline: str, params: dict[str, Any], run_name: str, experiment: str | None
    ) -> SubmittedRun: ...

    def status(self, run_id: str) -> RunStatus: ...

    def close(self) -> None: ...


@runtime_checkable
class ResumableEngine(Engine, Protocol):
    """An engine whose runs die with the bridge, and can be started again under their run id."""

    def resume(self, pipeline: str, params: dict[str, Any], run_id: str) -> SubmittedRun: ...


def run_state(engine_state: str) -> RunState:
    """An engine's own state word as a contract state (unknown words count as running)."""
    return _STATES.get(engine_state.strip().lower(), RunState.running)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying a failed submission may succeed (unreachable, 5xx, 429, timeouts)."""
    if isinstance(exc, SubmitError):
        return exc.status is None or exc.status in TRANSIENT_HTTP
    return isinstance(exc, OSError | TimeoutError)


def blocks(engine: Engine) -> bool:
    """Whether the engine's calls may wait on I/O (unless it sets ``blocking = False``)."""
    return bool(getattr(engine, "blocking", True))


async def call_engine(engine: Engine, method: Callable[..., T], *args: Any) -> T:
    """``engine.method(*args)``: in a worker thread unless the engine says it never blocks."""
    if blocks(engine):
        return await asyncio.to_thread(method, *args)
    return method(*args)


def run_name_for(pipeline: str, request_id: str) -> str:
    """A Kubernetes-safe run name that is the same for every delivery of one request."""
    from components.ids import sha256_hex

    readable = "".join(c if c.isalnum() else "-" for c in request_id.lower()).strip("-")[:30]
    return f"{pipeline}-{readable}-{sha256_hex(request_id)[:8]}".strip("-")[:63]


class KfpEngine:
    """Kubeflow Pipelines over its REST API (``LLMW_KFP_*``)."""

    name = "kfp"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def submit(
        self, pipeline: str, params: dict[str, Any], run_name: str, experiment: str | None
    ) -> SubmittedRun:
        from pipelines.submit import submit_run

        return submit_run(pipeline, params, self.settings, experiment, run_name, reuse=True)

    def status(self, run_id: str) -> RunStatus:
        from pipelines.submit import run_status

        return run_status(run_id, self.settings)

    def close(self) -> None:
        return None


class ArgoEngine:
    """Argo Workflows through the Argo Server (``LLMW_ARGO_*``)."""

    name = "argo"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def submit(
        self, pipeline: str, params: dict[str, Any], run_name: str, experiment: str | None
    ) -> SubmittedRun:
        from workflows.submit import run_url, submit_workflow, workflow_status

        try:
            return submit_workflow(pipeline, params, self.settings, run_name=run_name)
        except SubmitError as exc:
            if exc.status != 409:
                raise
        # Submitted before, by a bridge that died before it could record the run: adopt it.
        found = workflow_status(run_name, self.settings)
        return SubmittedRun(
            run_id=run_name, url=run_url(run_name, self.settings), state=found.state
        )

    def status(self, run_id: str) -> RunStatus:
        from workflows.submit import workflow_status

        return workflow_status(run_id, self.settings)

    def close(self) -> None:
        return None


def _run_locally(
    kind: str, pipeline: str, params: dict[str, Any], run_name: str, traceparent: str | None
) -> str:
    """In a worker process: run the whole pipeline with the local engine; its report as text.
    The steps join the request's trace through ``$TRACEPARENT`` (set per run: workers are reused).
    """
    import json

    from components.settings import get_settings
    from components.tracing import TRACEPARENT_ENV

    os.environ.pop(TRACEPARENT_ENV, None)
    if traceparent:
        os.environ[TRACEPARENT_ENV] = traceparent

    settings = get_settings()
    if kind == "kfp-local":
        from pipelines.local_run import DEFAULT_PIPELINE_ROOT
        from pipelines.local_run import run_local as run_kfp_local

        # kfp.local's log goes beside the run's outputs, never onto the bridge's JSON log lines.
        log_path = DEFAULT_PIPELINE_ROOT / f"{run_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            report = run_kfp_local(pipeline, params, settings, log=log)
        return json.dumps(report, default=str)
    from workflows.local_runner import run_local as run_argo_local

    result = run_argo_local(pipeline, params, settings, run_name=run_name)
    return json.dumps(result["report"], default=str)


class LocalEngine:
    """kfp.local or the argo-local executor, in a bounded pool of worker processes.

    Each worker leads its own process group and dies with this process, SIGKILL included,
    taking every step subprocess along (``components.orchestration.lifeline``). A run this
    process does not know is reported ``Interrupted``: the watcher then starts it again under
    its run id (``resume``), which the steps allow: they converge after a crash.
    """

    blocking = False  # submit hands the run to the pool; status reads a future

    def __init__(self, name: str, workers: int) -> None:
        if name not in ("kfp-local", "argo-local"):
            raise ValueError(f"{name!r} is not a local engine")
        self.name = name
        # spawn: the bridge's event loop and NATS threads must not be forked into workers.
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=lifeline.hold,
            initargs=(os.getpid(),),
        )
        self._runs: dict[str, Future[str]] = {}
        self._lock = threading.Lock()

    def submit(
        self, pipeline: str, params: dict[str, Any], run_name: str, experiment: str | None
    ) -> SubmittedRun:
        with self._lock:
            if run_name not in self._runs:
                future = self._pool.submit(
                    _run_locally,
                    self.name,
                    pipeline,
                    params,
                    run_name,
                    tracing.current_traceparent(),
                )
                self._runs[run_name] = future
        return SubmittedRun(run_id=run_name, url=f"{self.name}://{run_name}", state="Running")

    def resume(self, pipeline: str, params: dict[str, Any], run_id: str) -> SubmittedRun:
        """Start again, under ``run_id``, a run that a stopped bridge was doing."""
        return self.submit(pipeline, params, run_id, None)

    def status(self, run_id: str) -> RunStatus:
        url = f"{self.name}://{run_id}"
        future = self._runs.get(run_id)
        if future is None:
            return RunStatus(
                run_id=run_id,
                state=INTERRUPTED,
                url=url,
                error="interrupted: the bridge stopped while this local run was in progress",
            )
        if not future.done():
            return RunStatus(run_id=run_id, state="Running", url=url)
        exc = future.exception()
        if exc is not None:
            return RunStatus(run_id=run_id, state="Failed", url=url, error=str(exc) or repr(exc))
        return RunStatus(run_id=run_id, state="Succeeded", url=url)

    def close(self) -> None:
        """End every worker with all it started; a run in progress is left to be resumed."""
        workers = dict(getattr(self._pool, "_processes", None) or {})
        for pid, process in workers.items():
            if process.exitcode is None:  # not reaped yet, so the pid is still this worker's
                lifeline.kill_group(pid)
        self._pool.shutdown(wait=True, cancel_futures=True)


EngineFactory = Callable[[str, Settings], Engine]


def make_engine(name: str, settings: Settings) -> Engine:
    """The engine called ``name`` (one of ``ENGINES``)."""
    if name in ("kfp-local", "argo-local"):
        return LocalEngine(name, settings.bridge_workers)
    if name == "kfp":
        return KfpEngine(settings)
    if name == "argo":
        return ArgoEngine(settings)
    raise ValueError(f"unknown engine {name!r} (engines: {', '.join(ENGINES)})")


class EngineSet:
    """Engines made on first use and closed together."""

    def __init__(
        self,
        settings: Settings,
        factory: EngineFactory = make_engine,
        preset: Iterable[Engine] = (),
    ) -> None:
        self.settings = settings
        self.factory = factory
        self._engines: dict[str, Engine] = {engine.name: engine for engine in preset}
        self._lock = threading.Lock()

    def get(self, name: str) -> Engine:
        with self._lock:
            if name not in self._engines:
                self._engines[name] = self.factory(name, self.settings)
            return self._engines[name]

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()
