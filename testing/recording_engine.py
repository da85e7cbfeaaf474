"""An engine for bridge tests and benches whose runs are files, so runs are countable across
bridge processes (killed and restarted) and duplicates cannot hide.

Every ``submit`` call is also appended to ``runs_dir/submissions.jsonl`` (one ``write`` of one
line to a file opened for appending, so a SIGKILLed bridge loses at most the call it was in):
which run name, which process, when it began, and whether it failed, created a run or adopted an
existing one. Surviving runs say what exists; this log says how often the bridge asked.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.orchestration.runs import RunStatus, SubmitError, SubmittedRun


class RecordingEngine:
    """Each ``submit`` that creates a run writes ``runs_dir/<run_id>.json``; runs end ``run_s``
    seconds after creation. ``fail_rate`` of submissions fail transiently (HTTP 503).

    ``idempotent`` (as Argo is: names are unique) adopts an existing run of the same name;
    without it every submission creates a run, so only the bridge's own claims prevent duplicates.
    """

    def __init__(
        self,
        name: str,
        runs_dir: Path,
        *,
        idempotent: bool = False,
        fail_rate: float = 0.0,
        fail_first: int = 0,
        run_s: float = 0.0,
        failing_runs: frozenset[str] = frozenset(),
        seed: int | None = None,
        submit_s: float = 0.0,
        hang_after_create_s: float = 0.0,
    ) -> None:
        self.name = name
        self.runs_dir = runs_dir
        self.idempotent = idempotent
        self.fail_rate = fail_rate
        self.fail_first = fail_first
        self.run_s = run_s
        self.failing_runs = failing_runs
        self.submit_s = submit_s  # how long each submission takes, as a slow API would
        # How long a call that created a run takes to answer: a bridge killed meanwhile has
        # submitted and not recorded it.
        self.hang_after_create_s = hang_after_create_s
        self._random = random.Random(seed)
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()
        runs_dir.mkdir(parents=True, exist_ok=True)

    def submit(
        self, pipeline: str, params: dict[str, Any], run_name: str, experiment: str | None
    ) -> SubmittedRun:
        began = time.time()
        with self._lock:
            calls = self._calls[run_name] = self._calls.get(run_name, 0) + 1
            unlucky = self._random.random() < self.fail_rate
        if self.submit_s:
            time.sleep(self.submit_s)
        if calls <= self.fail_first or unlucky:
            record_submission(self.runs_dir, run_name, began, "failed")
            raise SubmitError(f"{self.name}: injected transient failure", status=503)
        run_id = run_name if self.idempotent else f"{run_name}--{uuid.uuid4().hex[:8]}"
        created = self.create_run(run_id, run_name, pipeline, params)
        record_submission(self.runs_dir, run_name, began, "created" if created else "adopted")
        if created and self.hang_after_create_s:
            time.sleep(self.hang_after_create_s)
        return SubmittedRun(run_id=run_id, url=f"test://{run_id}", state="Pending")

    def create_run(self, run_id: str, run_name: str, pipeline: str, params: dict[str, Any]) -> bool:
        """Write the run's file; False when a run of that id existed (it is adopted)."""
        record = {"run_name": run_name, "pipeline": pipeline, "params": params, "at": time.time()}
        path = self.runs_dir / f"{run_id}.json"
        # Written aside, then linked into place: readers never see half a file, and a link to
        # an existing name fails, as creating an existing Argo workflow does.
        draft = self.runs_dir / f".{run_id}.{uuid.uuid4().hex}.draft"
        draft.write_text(json.dumps(record))
        try:
            os.link(draft, path)
        except FileExistsError:
            return False  # adopted: the same run, created before
        finally:
            draft.unlink()
        return True

    def status(self, run_id: str) -> RunStatus:
        path = self.runs_dir / f"{run_id}.json"
        url = f"test://{run_id}"
        try:
            record = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return RunStatus(run_id=run_id, state="Pending", url=url)
        if time.time() - record["at"] < self.run_s:
            return RunStatus(run_id=run_id, state="Running", url=url)
        if record["run_name"] in self.failing_runs:
            return RunStatus(run_id=run_id, state="Failed", url=url, error="step exploded")
        return RunStatus(run_id=run_id, state="Succeeded", url=url)

    def close(self) -> None:
        return None


def runs_by_name(runs_dir: Path) -> dict[str, int]:
    """How many runs each run name got (a value above 1 is a duplicate run)."""
    counts: dict[str, int] = {}
    for path in runs_dir.glob("*.json"):
        name = json.loads(path.read_text())["run_name"]
        counts[name] = counts.get(name, 0) + 1
    return counts


SUBMISSIONS = "submissions.jsonl"


@dataclass(frozen=True)
class Submission:
    """One ``submit`` call: ``outcome`` is ``failed``, ``created`` or ``adopted``."""

    run_name: str
    pid: int
    began: float  # time.time() when the call began
    outcome: str

    @property
    def succeeded(self) -> bool:
        return self.outcome != "failed"


def record_submission(runs_dir: Path, run_name: str, began: float, outcome: str) -> None:
    entry = {"run_name": run_name, "pid": os.getpid(), "began": began, "outcome": outcome}
    line = json.dumps(entry)
    fd = os.open(runs_dir / SUBMISSIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def submissions(runs_dir: Path) -> list[Submission]:
    """Every ``submit`` call logged so far, in the order they were logged."""
    try:
        lines = (runs_dir / SUBMISSIONS).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [Submission(**json.loads(line)) for line in lines if line.strip()]


def repeats(
    calls: list[Submission], died: dict[int, float], recorded: dict[str, float]
) -> tuple[list[str], list[str]]:
    """(allowed repeats, double submissions) among the successful ``submit`` calls.

    ``died``: pid -> when that bridge process was killed; ``recorded``: run name -> when its run
    was recorded (its request's first ``submitted`` event). The contract allows a repeat only
    where a bridge died between submitting and recording: every earlier successful call for the
    run name came from another process, which died before the repeat began and before the run
    was recorded. Any other repeat is a double submission."""
    by_name: dict[str, list[Submission]] = {}
    for call in sorted(calls, key=lambda c: c.began):
        if call.succeeded:
            by_name.setdefault(call.run_name, []).append(call)
    allowed: list[str] = []
    double: list[str] = []
    for name, made in by_name.items():
        for n, call in enumerate(made[1:], 1):
            ok = all(
                earlier.pid != call.pid
                and earlier.pid in died
                and died[earlier.pid] < call.began
                and recorded.get(name, float("inf")) > died[earlier.pid]
                for earlier in made[:n]
            )
            what = f"{name}: {call.outcome} by pid {call.pid} after {made[:n]}"
            (allowed if ok else double).append(what)
    return allowed, double
