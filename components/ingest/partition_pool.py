"""Partitioning off the main process, with a per-document timeout.

Partitioning is CPU-bound Python, so worker processes let it overlap embedding in the main
process. pebble's pool can kill a worker whose task overruns, which a stdlib pool cannot.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from components.ingest.partition import Chunk, ChunkingConfig, DocumentError, partition_document


def _init_worker() -> None:
    """Set a partition worker up to take as little from embedding as it can."""
    # Workers yield the CPU to embedding, whose threads synchronize per operation: one
    # descheduled torch thread stalls all of them, a descheduled partition worker stalls none.
    os.nice(5)
    # The fast strategy needs no torch, but spaCy's thinc imports it whenever it is installed:
    # about 1 s of CPU and 150 MB per worker. Marked missing, thinc goes on without it.
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]


class PartitionPool:
    """``workers`` processes (0: partition inline, without a timeout)."""

    def __init__(self, workers: int, timeout_s: float) -> None:
        self.workers = workers
        self.timeout_s = timeout_s
        self._pool: Any = None
        if workers > 0:
            from pebble import ProcessPool

            # spawn, not fork: the parent holds torch's threads and a Milvus connection.
            self._pool = ProcessPool(
                max_workers=workers,
                context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
            )

    def submit(
        self, data: bytes, name: str, file_type: str, config: ChunkingConfig
    ) -> Future[list[Chunk]]:
        if self._pool is None:
            future: Future[list[Chunk]] = Future()
            try:
                future.set_result(partition_document(data, name, file_type, config))
            except Exception as exc:
                future.set_exception(exc)
            return future
        scheduled: Future[list[Chunk]] = self._pool.schedule(
            partition_document, args=(data, name, file_type, config), timeout=self.timeout_s
        )
        return scheduled

    def result(self, future: Future[list[Chunk]]) -> list[Chunk]:
        """The chunks, or DocumentError naming what went wrong (timeouts and crashes too)."""
        from pebble import ProcessExpired

        try:
            return future.result()
        except DocumentError:
            raise
        except FutureTimeout as exc:
            raise DocumentError(f"partitioning timed out after {self.timeout_s:g} s") from exc
        except BrokenProcessPool as exc:
            # Not the document's fault: the workers cannot start at all.
            raise RuntimeError(
                "partition worker processes could not start (a script that calls ingest must "
                "guard its entry point with `if __name__ == '__main__':`, or set "
                "LLMW_PARTITION_WORKERS=0)"
            ) from exc
        except ProcessExpired as exc:
            raise DocumentError(f"partition worker died (exit code {exc.exitcode})") from exc
        except Exception as exc:
            raise DocumentError(f"partitioning failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None
