"""Workers held by a lifeline die with their parent, SIGKILL included, and take every process they
started along; ``kill_group`` ends one from the parent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil
import pytest

from components.orchestration import lifeline

REPO = Path(__file__).resolve().parents[2]
SLEEP = "600"
# A child that starts a grandchild of its own, and one that leaves the group (a new session).
GRANDPARENT = "import subprocess, sys; subprocess.Popen(['sleep', sys.argv[1]]).wait()"


def start_family(sleep: str = SLEEP) -> int:
    """In a held worker: start processes that would outlive it; this worker's pid."""
    subprocess.Popen(["sleep", sleep])
    subprocess.Popen([sys.executable, "-c", GRANDPARENT, sleep])
    subprocess.Popen(["sleep", sleep], start_new_session=True)
    return os.getpid()


def family_parent(poll_s: float | None, death_signal: bool) -> None:
    """The parent process (run with ``python -c``): a held pool worker with a family, then wait."""
    pool = ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=lifeline.hold,
        initargs=(os.getpid(), poll_s, death_signal),
    )
    pool.submit(start_family).result()
    time.sleep(600)


def gone(process: psutil.Process) -> bool:
    """Ended (a zombie waiting for init to reap it counts as ended)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def sleepers(root: psutil.Process) -> list[psutil.Process]:
    return [p for p in root.children(recursive=True) if p.name() == "sleep"]


@pytest.fixture
def reap() -> Iterator[list[psutil.Process]]:
    """Processes to kill at the end whatever happened, so that a failing test leaves nothing."""
    found: list[psutil.Process] = []
    yield found
    for process in found:
        if not gone(process):
            process.kill()


@pytest.mark.parametrize(
    ("poll_s", "death_signal"),
    [(0.2, True), (0.2, False), (None, True)],
    ids=["both", "polling-only", "death-signal-only"],
)
def test_a_killed_parent_takes_its_workers_and_their_children_along(
    poll_s: float | None, death_signal: bool, reap: list[psutil.Process]
) -> None:
    code = "from tests.components.test_lifeline import family_parent; family_parent(%r, %r)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen(
        [sys.executable, "-c", code % (poll_s, death_signal)], cwd=REPO, env=env
    )
    root = psutil.Process(parent.pid)
    reap.append(root)
    try:
        wait_until(lambda: len(sleepers(root)) == 3, 60, "the worker's family")
        family = root.children(recursive=True)
        reap.extend(family)
        # the pool worker, its three children, the grandchild and multiprocessing's tracker
        assert len(family) == 6, [p.cmdline() for p in family]
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    wait_until(lambda: all(gone(p) for p in family), 10, "every descendant to end")


@pytest.mark.parametrize(
    "end",
    [lifeline.kill_group, lambda pid: os.kill(pid, signal.SIGTERM)],
    ids=["kill_group", "sigterm"],
)
def test_kill_group_or_sigterm_ends_a_worker_and_all_it_started(
    end: Callable[[int], None], reap: list[psutil.Process]
) -> None:
    pool = ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=lifeline.hold,
        initargs=(os.getpid(),),
    )
    try:
        worker = psutil.Process(pool.submit(start_family).result(timeout=60))
        wait_until(lambda: len(sleepers(worker)) == 3, 30, "the worker's family")
        family = [worker, *worker.children(recursive=True)]
        reap.extend(family)
        assert os.getpgid(worker.pid) == worker.pid  # it leads its own group
        end(worker.pid)
        wait_until(lambda: all(gone(p) for p in family), 10, "the worker and its family to end")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    assert psutil.Process().is_running()  # the parent lives on
