"""An S3 server on 127.0.0.1 for tests and benches: moto's, used through the minio client.

``threaded_s3_server`` runs it in this process (quick to start: the tests' session fixture).
``s3_server_process`` runs it as a child process, so that a bench measuring a client does not
share the interpreter (and its GIL) with the server; the child is stopped on exit, also on error.
Both yield the endpoint and credentials as ``{"endpoint", "access_key", "secret_key", "region"}``
(and the child's ``"pid"``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from testing.nats_server import free_port

CREDENTIALS = {
    "access_key": "testing-access",
    "secret_key": "testing-secret",
    "region": "us-east-1",
}


@contextmanager
def threaded_s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server in a thread of this process."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {"endpoint": f"127.0.0.1:{port}", **CREDENTIALS}
    finally:
        server.stop()


@contextmanager
def s3_server_process(
    start_timeout_s: float = 60.0, in_memory: bool = False
) -> Iterator[dict[str, str]]:
    """moto's S3 server as a child process (``python -m moto.server``).

    moto keeps an object over 5 MB in a temporary file; ``in_memory`` keeps every object in
    memory instead, so that the disk (and what else uses it) does not time an upload.
    """
    port = free_port()
    env = dict(os.environ)
    if in_memory:
        env["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = str(1 << 40)
    child = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_for_port(port, child, start_timeout_s)
        yield {"endpoint": f"127.0.0.1:{port}", **CREDENTIALS, "pid": str(child.pid)}
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_for_port(port: int, child: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"moto's S3 server exited with {child.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto's S3 server did not listen on 127.0.0.1:{port} in {timeout_s:.0f} s")
