"""Time limits as Argo sets them, and a step's process group that ends with its limit.

- the workflow's ``activeDeadlineSeconds`` counts from when the run starts (once its mutexes
  are held); past it, no step starts ("Step exceeded its deadline"), a running step is killed,
  a failed one is not retried, and the exit handler still runs, unlimited, as in Argo;
- a template's ``activeDeadlineSeconds`` limits each attempt (Kubernetes' pod deadline); its
  ``timeout`` limits the node, every attempt together.

A step runs in a process group of its own (a new session): at its limit the whole group gets
SIGTERM, then SIGKILL after ``KILL_GRACE_S`` (Kubernetes' terminationGracePeriod, shortened), so
no worker it started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .expressions import parse_duration

KILL_GRACE_S = 3.0
STEP_PAST_DEADLINE = "Step exceeded its deadline"


@dataclass
class Deadline:
    """A limit of ``seconds`` from ``started`` (monotonic); None: no limit."""

    seconds: float | None = None
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, value: Any) -> Deadline:
        return cls(None if value is None else parse_duration(value))

    def remaining(self) -> float | None:
        if self.seconds is None:
            return None
        return max(0.0, self.started + self.seconds - time.monotonic())

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0


@dataclass(frozen=True)
class Limit:
    """The nearest of a step's limits: its seconds left and what to say when it passes."""

    seconds: float | None
    reason: str

    @classmethod
    def nearest(cls, *limits: tuple[float | None, str]) -> Limit:
        known = [(seconds, reason) for seconds, reason in limits if seconds is not None]
        if not known:
            return cls(None, "")
        seconds, reason = min(known, key=lambda limit: limit[0])
        return cls(seconds, reason)


def run_group(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: IO[bytes],
    stderr: IO[bytes],
    timeout: float | None,
) -> int | None:
    """Run ``argv`` in a process group of its own: its exit code, or None when ``timeout``
    seconds passed and the whole group was killed (as on any exception here, an interrupt
    included). When it exits, what is left of its group is killed too, as a container's
    processes end with its main one; output goes to files, which no leftover holds open for
    long. OSError when it cannot start."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        return None
    finally:
        if process.poll() is None:  # an exception other than the timeout
            kill_group(process)
        else:
            _signal_group(process.pid, signal.SIGKILL)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group, SIGKILL to what is left after ``KILL_GRACE_S``."""
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_GRACE_S)
    # Members of the group may outlive its leader: the group is killed in any case.
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
