"""Child processes that die with their parent, SIGKILL included, and take their own children along.

A worker calls ``hold(parent_pid)`` first thing (a pool ``initializer``): it becomes the leader of
a new process group, which every subprocess it starts joins, and from then on, as soon as
``parent_pid`` is gone, it kills every process it started and then its whole group, itself
included. Two watchers, each enough alone: Linux's parent-death signal (``PR_SET_PDEATHSIG``,
delivered at once) and a daemon thread polling ``os.getppid()`` (everywhere). The parent ends a
held worker, with everything it started, by ``kill_group(pid)`` or a SIGTERM.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from types import FrameType

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
DEATH_SIGNAL = signal.SIGUSR1  # nothing else sends it to a worker; its handler checks the parent
POLL_S = 0.2


def hold(parent_pid: int, poll_s: float | None = POLL_S, death_signal: bool = True) -> None:
    """Lead a new process group; kill it, and everything this process started, once
    ``parent_pid`` is gone (``poll_s=None`` or ``death_signal=False`` turn one watcher off)."""
    os.setpgid(0, 0)
    # Process.terminate() (concurrent.futures sends it to the workers of a broken pool) too.
    signal.signal(signal.SIGTERM, lambda signum, frame: end_all())
    if death_signal and sys.platform == "linux":

        def on_death_signal(signum: int, frame: FrameType | None) -> None:
            # The signal also comes when the *thread* that started this process ends, while
            # the parent lives on: only a changed parent counts.
            if os.getppid() != parent_pid:
                end_all()

        signal.signal(DEATH_SIGNAL, on_death_signal)
        _set_parent_death_signal(DEATH_SIGNAL)
    if os.getppid() != parent_pid:  # it died before any watcher was in place
        end_all()
    if poll_s is not None:
        threading.Thread(
            target=_watch, args=(parent_pid, poll_s), name="lifeline", daemon=True
        ).start()


def end_all() -> None:
    """Kill every descendant of this process, then its process group (itself included)."""
    _kill_descendants(os.getpid())
    if os.getpgrp() == os.getpid():  # never the group of whoever started us
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def kill_group(pid: int) -> None:
    """From the parent: kill held worker ``pid``, every process it started and its group."""
    _kill_descendants(pid)
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
            return
        os.kill(pid, signal.SIGKILL)  # not leading its group yet: it has started nothing
    except ProcessLookupError:
        pass


def _kill_descendants(pid: int) -> None:
    """SIGKILL every process below ``pid``, also those that left its group (``setsid``)."""
    import psutil

    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _watch(parent_pid: int, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    end_all()


def _set_parent_death_signal(signum: int) -> None:
    """``prctl(PR_SET_PDEATHSIG, signum)``; does nothing where prctl is missing."""
    with contextlib.suppress(OSError, AttributeError):
        # The process's own symbols: libc is linked into every CPython on Linux.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
