"""An engine for bridge tests and benches whose runs are files, so runs are countable across
bridge processes (killed and restarted) and duplicates cannot hide."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
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
    ) -> None:
        self.name = name
        self.runs_dir = runs_dir
        self.idempotent = idempotent
        self.fail_rate = fail_rate
        self.fail_first = fail_first
        self.run_s = run_s
        self.failing_runs = failing_runs
        self._random = random.Random(seed)
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()
        runs_dir.mkdir(parents=True, exist_ok=True)

    def submit(
        self, pipeline: str, params: dict[str, Any], run_name: str, experiment: str | None
    ) -> SubmittedRun:
        with self._lock:
            calls = self._calls[run_name] = self._calls.get(run_name, 0) + 1
            unlucky = self._random.random() < self.fail_rate
        if calls <= self.fail_first or unlucky:
            raise SubmitError(f"{self.name}: injected transient failure", status=503)
        run_id = run_name if self.idempotent else f"{run_name}--{uuid.uuid4().hex[:8]}"
        record = {"run_name": run_name, "pipeline": pipeline, "params": params, "at": time.time()}
        path = self.runs_dir / f"{run_id}.json"
        # Written aside, then linked into place: readers never see half a file, and a link to
        # an existing name fails, as creating an existing Argo workflow does.
        draft = self.runs_dir / f".{run_id}.{uuid.uuid4().hex}.draft"
        draft.write_text(json.dumps(record))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # adopted: the same run, created before
        finally:
            draft.unlink()
        return SubmittedRun(run_id=run_id, url=f"test://{run_id}", state="Pending")

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
