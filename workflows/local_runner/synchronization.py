"""``synchronization`` mutexes as file locks: runs on this machine that name the same mutex (in
the same namespace) never overlap, as Argo's controller keeps them apart in the cluster.

A workflow's ``spec.synchronization`` is held for the whole run, its exit handler included; a
template's while that template runs. Mutex names are substituted first (the workflow's
parameters, and a template's inputs), so ``llmw-collection-{{workflow.parameters.collection}}``
serializes the runs into one collection. Each mutex is a lock file under the runner's lock
folder (``<work_dir>/locks``), taken with ``filelock`` (``flock``: exclusive between processes,
and between threads of one process too), several in sorted order so that two runs cannot
deadlock. The wait has no limit, as a Pending workflow in Argo waits for its lock. Semaphores
(sized by a ConfigMap in the cluster) are not run here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from .model import UnsupportedFeatureError, safe_name
from .templating import substitute

MUTEX_FIELDS = {"name", "namespace", "database"}


def check_synchronization(where: str, synchronization: Any) -> None:
    """Refuse what argo-local cannot hold: semaphores, a mutex without a name, unknown keys."""
    if synchronization is None:
        return
    if not isinstance(synchronization, dict):
        raise UnsupportedFeatureError(f"{where}.synchronization: {synchronization!r}")
    unknown = sorted(set(synchronization) - {"mutexes"})
    if unknown:
        raise UnsupportedFeatureError(
            f"{where}.synchronization: argo-local holds mutexes only, not {', '.join(unknown)}"
        )
    for index, mutex in enumerate(synchronization.get("mutexes") or []):
        at = f"{where}.synchronization.mutexes[{index}]"
        if not isinstance(mutex, dict) or not mutex.get("name"):
            raise UnsupportedFeatureError(f"{at}: a mutex needs a name")
        extra = sorted(set(mutex) - MUTEX_FIELDS)
        if extra:
            raise UnsupportedFeatureError(f"{at}: argo-local does not support {', '.join(extra)}")


def mutex_keys(
    synchronization: Mapping[str, Any] | None, scope: Mapping[str, str], namespace: str, where: str
) -> list[str]:
    """``<namespace>/<name>`` of each mutex, its name substituted (NodeError when it cannot be)."""
    keys = []
    for index, mutex in enumerate((synchronization or {}).get("mutexes") or []):
        at = f"{where}.synchronization.mutexes[{index}].name"
        name = substitute(str(mutex["name"]), dict(scope), at)
        keys.append(f"{mutex.get('namespace') or namespace}/{name}")
    return sorted(set(keys))


def lock_path(lock_dir: Path, key: str) -> Path:
    """The lock file of mutex ``key``: readable, and distinct for keys that read alike."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return lock_dir / f"{safe_name(key)[:100]}-{digest}.lock"


@contextmanager
def holding(keys: list[str], lock_dir: Path) -> Iterator[None]:
    """Hold every mutex of ``keys`` (sorted) until the block ends; waits for each as long as
    another run holds it."""
    if not keys:
        yield
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for key in sorted(keys):
            # One FileLock object per hold: a fresh file descriptor, so flock excludes other
            # threads of this process as well as other processes.
            lock = FileLock(str(lock_path(lock_dir, key)), is_singleton=False, thread_local=False)
            stack.enter_context(lock)
        yield
