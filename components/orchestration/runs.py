"""What both engines' submitters share: the submitted run, its status, errors, following it.

The bridge and the CLI see one shape whichever engine ran the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel


class SubmitError(RuntimeError):
    """A request to an engine's API that failed; the message says which, and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SubmittedRun(BaseModel):
    run_id: str
    url: str
    state: str
    experiment_id: str | None = None  # KFP only


class RunStatus(BaseModel):
    run_id: str
    state: str  # the engine's own word: KFP SUCCEEDED/FAILED/..., Argo Succeeded/Failed/...
    url: str
    error: str | None = None


def follow(
    fetch: Callable[[], RunStatus],
    terminal_states: frozenset[str],
    timeout_s: float | None = None,
    poll_s: float = 5.0,
    on_change: Callable[[RunStatus], None] | None = None,
) -> RunStatus:
    """Poll ``fetch`` until the state is terminal (compared case-insensitively); call
    ``on_change`` on each new state. SubmitError after ``timeout_s``."""
    terminal = {state.upper() for state in terminal_states}
    started = time.monotonic()
    last: str | None = None
    while True:
        status = fetch()
        if status.state != last:
            last = status.state
            if on_change is not None:
                on_change(status)
        if status.state.upper() in terminal:
            return status
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise SubmitError(f"run {status.run_id} is still {status.state} after {timeout_s:g} s")
        time.sleep(poll_s)
