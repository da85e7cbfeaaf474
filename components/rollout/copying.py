"""Read a model's files once each: hash while copying, a few files at a time, retrying blips.

Both stores copy through ``HashingReader``, so the sha256 and size a manifest records are those
of the bytes that were written, taken on the only read of the source. ``run_each`` runs one
copy (or one hash) per file in a small thread pool: hashlib and socket I/O release the GIL, so
the files of a model (weights, configs, tokenizer files) overlap. ``retrying`` repeats one
file's copy after a transient S3 or network error; a retry reopens the source and starts the
hash over, so only a retried file is read twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, BinaryIO, ParamSpec, TypeVar

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from components.rollout.manifest import CHUNK, FileEntry
from components.rollout.sources import SourceError, SourceFile, open_source_file

if TYPE_CHECKING:
    from components.settings import Settings

# Files copied at once: enough to overlap small files with the weights. With minio's 3 threads
# per multipart upload, 3 x 3 connections stay within its pool of 10.
WORKERS = 3
ATTEMPTS = 4  # per file, the first included
# S3 error codes that say "try again" (AWS and MinIO), and HTTP statuses that do.
_TRANSIENT_CODES = {
    "InternalError",
    "RequestTimeout",
    "ServiceUnavailable",
    "SlowDown",
    "XMinioServerNotInitialized",
}
T = TypeVar("T")
P = ParamSpec("P")


class SourceChangedError(SourceError):
    """A source file's size while it was copied is not the size it was listed with."""


class HashingReader:
    """``file``'s stream, hashing and counting what is read through it.

    It ends early with SourceChangedError when the stream ends before the listed size, so that
    an upload of a known length never stores a short object.
    """

    def __init__(self, stream: BinaryIO, file: SourceFile) -> None:
        self._stream = stream
        self._file = file
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if not data and n != 0 and self.size < self._file.size:
            raise self._changed()
        self.sha256.update(data)
        self.size += len(data)
        return data

    def entry(self) -> FileEntry:
        """What was read, as the manifest's line; SourceChangedError if the file grew."""
        if self.size != self._file.size or self._stream.read(1):
            raise self._changed()
        return FileEntry(path=self._file.path, size=self.size, sha256=self.sha256.hexdigest())

    def _changed(self) -> SourceChangedError:
        return SourceChangedError(
            f"{self._file.location} changed size while it was staged (listed "
            f"{self._file.size} B, read {self.size} B); stage it again once it is complete"
        )


def hash_file(file: SourceFile, settings: Settings) -> FileEntry:
    """``file``'s size and sha256, read once from the source (nothing is written)."""
    with open_source_file(file, settings) as stream:
        reader = HashingReader(stream, file)
        while reader.read(CHUNK):
            pass
        return reader.entry()


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an S3 or network error that a second try may not meet."""
    import urllib3.exceptions
    from minio.error import S3Error, ServerError

    if isinstance(exc, S3Error):
        return exc.code in _TRANSIENT_CODES
    if isinstance(exc, ServerError):
        return exc.status_code >= 500 or exc.status_code == 429
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def retrying(function: Callable[P, T]) -> Callable[P, T]:
    """``function`` tried up to ATTEMPTS times while it fails with a transient error."""
    return retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(ATTEMPTS),
        wait=wait_exponential(multiplier=0.2, max=5),
        reraise=True,
    )(function)


def run_each(
    function: Callable[[SourceFile], T], files: list[SourceFile], workers: int = WORKERS
) -> list[T]:
    """``function`` of every file, in the files' order, ``workers`` at a time.

    On the first failure no further file is started; those running finish, then it is raised.
    """
    if workers <= 1 or len(files) <= 1:
        return [function(f) for f in files]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmw-stage") as pool:
        futures = [pool.submit(function, f) for f in files]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()  # those not started yet
        wait(futures)
        return [f.result() for f in futures]  # raises the first file's error, in file order
