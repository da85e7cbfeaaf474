"""The bridge's HTTP side: ``/healthz``, ``/readyz`` and ``/metrics`` on a daemon thread."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from bridge.metrics import BridgeMetrics

TEXT = "text/plain; charset=utf-8"
# The classic text format that generate_latest writes and every Prometheus reads (newer
# prometheus_client's CONTENT_TYPE_LATEST announces 1.0.0, which older scrapers don't know).
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that knows the bridge's readiness check and metrics."""

    daemon_threads = True
    ready: Callable[[], bool]
    metrics: BridgeMetrics

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (slow where DNS is absent)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    """GET only; everything else on the path table is a 404."""

    server: _Server  # HTTP/1.0: one request per connection, so nothing lingers after stop()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, b"ok\n", TEXT)
        elif path == "/readyz":
            self._readyz()
        elif path == "/metrics":
            self._send(200, self.server.metrics.render(), METRICS_TYPE)
        else:
            self._send(404, b"not found\n", TEXT)

    def _readyz(self) -> None:
        try:
            ready = self.server.ready()
        except Exception as exc:  # a failing check means not ready, never a dead server
            self._send(503, f"not ready: {type(exc).__name__}\n".encode(), TEXT)
            return
        if ready:
            self._send(200, b"ready\n", TEXT)
        else:
            self._send(503, b"not ready\n", TEXT)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: probes every few seconds would drown the JSON logs."""


class HealthServer:
    """Serves health, readiness and metrics on ``host:port`` (port 0: a free one) until stopped."""

    def __init__(
        self, host: str, port: int, ready: Callable[[], bool], metrics: BridgeMetrics
    ) -> None:
        self._host = host
        self._port = port
        self._ready = ready
        self._metrics = metrics
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._port

    def start(self) -> None:
        """Bind and serve on a daemon thread."""
        if self._server is not None:
            raise RuntimeError("HealthServer already started")
        server_class = type(
            "_BoundServer",
            (_Server,),
            {"address_family": socket.AF_INET6 if ":" in self._host else socket.AF_INET},
        )
        server: _Server = server_class((self._host, self._port), _Handler)
        server.ready = self._ready
        server.metrics = self._metrics
        self._server = server
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="llmw-bridge-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket; a no-op when not running."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
