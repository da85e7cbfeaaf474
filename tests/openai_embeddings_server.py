"""A local stand-in for an OpenAI-compatible ``/v1/embeddings`` server (contract tests).

It checks each request the way the OpenAI embeddings API does, answers with deterministic
vectors, and can inject failures (429 with Retry-After, 500) and delays.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_INPUTS = 2048


def fake_vector(text: str, dimension: int) -> list[float]:
    """A deterministic vector for a text (not unit length: the client must normalize)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [((digest[i % 32] + i) % 17 - 8) / 4.0 for i in range(dimension)]


@dataclass
class EmbeddingsServer:
    dimension: int = 16
    api_key: str | None = None
    failures: list[int] = field(default_factory=list)  # status codes to answer first, in order
    delay_s: float = 0.0
    reverse_order: bool = True  # answer out of order, as the API allows
    requests: list[dict[str, Any]] = field(default_factory=list)
    contract_violations: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> EmbeddingsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _violation(self, message: str) -> tuple[int, dict[str, Any]]:
        self.contract_violations.append(message)
        return 400, {"error": {"message": message, "type": "invalid_request_error"}}

    def answer(self, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        if path != "/v1/embeddings":
            return self._violation(f"unknown path {path}")
        if self.api_key and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "invalid api key", "type": "auth_error"}}
        if "application/json" not in (headers.get("Content-Type") or ""):
            return self._violation("Content-Type must be application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._violation("body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return self._violation("'model' (string) is required")
        unknown = set(body) - {"model", "input", "encoding_format", "dimensions", "user"}
        if unknown:
            return self._violation(f"unknown fields {sorted(unknown)}")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or len(inputs) > MAX_INPUTS:
            return self._violation(f"'input' must be a string or 1..{MAX_INPUTS} strings")
        if not all(isinstance(text, str) and text for text in inputs):
            return self._violation("every input must be a non-empty string")
        with self._lock:
            self.requests.append(body)
            status = self.failures.pop(0) if self.failures else 200
        if status != 200:
            return status, {"error": {"message": f"injected {status}", "type": "server_error"}}
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(t, self.dimension)}
            for i, t in enumerate(inputs)
        ]
        if self.reverse_order:
            data.reverse()
        tokens = sum(len(t.split()) for t in inputs)
        return 200, {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay_s:
                        time.sleep(server.delay_s)
                    raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    status, payload = server.answer(self.path, self.headers, raw)
                    encoded = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(encoded)))
                    self.end_headers()
                    self.wfile.write(encoded)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler
