"""Scheduling: a template's children under its parallelism and failFast; DAG order and target."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .model import DONE, NodeError, UnsupportedFeatureError

T = TypeVar("T")


@dataclass
class Siblings:
    """The children one steps or DAG template invocation starts (its steps and tasks, and the
    items of their fan-outs): each ``run`` starts at most ``limit`` jobs at a time; once a job has
    not succeeded, ``failed`` is set and, with ``fail_fast``, no job of any ``run`` starts."""

    limit: int
    fail_fast: bool
    failed: threading.Event = field(default_factory=threading.Event)

    @property
    def stopped(self) -> bool:
        """Whether no new child may start (failFast after a failure)."""
        return self.fail_fast and self.failed.is_set()

    def run(self, jobs: Sequence[Callable[[], T]], ok: Callable[[T], bool]) -> list[T]:
        """Run ``jobs`` in order, ``ok`` telling whether one's result succeeded; returns the
        results of the jobs that started, in job order (Argo orders a fan-out's outputs by loop
        index). Jobs start in order, so those that started are the first ones."""
        if self.limit <= 1 or len(jobs) <= 1:
            results: list[T] = []
            for job in jobs:
                if self.stopped:
                    break
                results.append(self._one(job, ok))
            return results
        return self._pooled(jobs, ok)

    def _one(self, job: Callable[[], T], ok: Callable[[T], bool]) -> T:
        result = job()
        if not ok(result):
            self.failed.set()
        return result

    def _pooled(self, jobs: Sequence[Callable[[], T]], ok: Callable[[T], bool]) -> list[T]:
        done: dict[int, T] = {}
        pending: dict[Future[T], int] = {}
        queue = iter(enumerate(jobs))
        with ThreadPoolExecutor(max_workers=self.limit) as pool:

            def fill() -> None:
                while len(pending) < self.limit and not self.stopped:
                    following = next(queue, None)
                    if following is None:
                        return
                    index, job = following
                    pending[pool.submit(self._one, job, ok)] = index

            fill()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    done[pending.pop(future)] = future.result()
                fill()
        return [done[index] for index in sorted(done)]


def fail_fast(tmpl: Mapping[str, Any]) -> bool:
    """Whether a steps/DAG template stops starting children after a failure, as Argo decides:
    the template's ``failFast`` (off unless true), or for a DAG its ``dag.failFast`` (on unless
    false)."""
    if tmpl.get("failFast", False):
        return True
    return "dag" in tmpl and bool(tmpl["dag"].get("failFast", True))


def dependencies(task: Mapping[str, Any], names: set[str]) -> list[str]:
    """The tasks a DAG task waits for, from ``dependencies`` or a ``depends`` of names."""
    if "dependencies" in task:
        deps = [str(d) for d in task["dependencies"]]
    elif "depends" in task:
        deps = []
        for part in str(task["depends"]).split("&&"):
            term = part.strip().removesuffix(".Succeeded")
            if not re.fullmatch(r"[A-Za-z0-9_-]+", term):
                raise UnsupportedFeatureError(
                    f"task {task['name']!r}: depends {task['depends']!r} (only names joined by &&)"
                )
            deps.append(term)
    else:
        deps = []
    unknown = sorted(set(deps) - names)
    if unknown:
        raise UnsupportedFeatureError(f"task {task['name']!r} depends on unknown tasks {unknown}")
    return deps


def targeted(order: Sequence[str], deps: Mapping[str, list[str]], target: str) -> list[str]:
    """The tasks to run, in ``order``: every task without a ``target``; else the targets (names
    separated by spaces) and what they depend on, directly or not."""
    if not target.strip():
        return list(order)
    wanted = target.split()
    unknown = [name for name in wanted if name not in deps]
    if unknown:
        raise NodeError(f"dag.target: target {unknown[0]!r} is not defined")
    keep: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name not in keep:
            keep.add(name)
            wanted.extend(deps[name])
    return [name for name in order if name in keep]


def ready(order: Sequence[str], deps: Mapping[str, list[str]], phase: dict[str, str]) -> list[str]:
    """The tasks whose dependencies are all done, after marking Omitted in ``phase`` every task
    that a dependency not done (failed, errored, omitted) blocks, however far down."""
    blocked = True
    while blocked:
        blocked = False
        for name in order:
            if name not in phase and any(phase.get(d) not in (None, *DONE) for d in deps[name]):
                phase[name] = "Omitted"
                blocked = True
    return [n for n in order if n not in phase and all(phase.get(d) in DONE for d in deps[n])]
