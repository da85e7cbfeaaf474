"""A local stand-in for an OpenAI-compatible server (contract tests): ``/v1/embeddings``,
``/v1/chat/completions`` and ``/v1/completions``.

It checks each request the way the OpenAI API does, answers deterministically, and can inject
failures (429 with Retry-After, 500) and delays.
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
MAX_PROMPT_CHARS = 2000  # the served model's context, in characters for simplicity
CHAT_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
}
COMPLETION_FIELDS = (CHAT_FIELDS - {"messages", "max_completion_tokens"}) | {"prompt"}
ROLES = {"system", "user", "assistant", "tool", "developer"}


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections under concurrent clients, and a dropped SYN
    # costs a one-second retransmit: the benchmark would measure TCP, not the client.
    request_queue_size = 1024
    daemon_threads = True


def fake_vector(text: str, dimension: int) -> list[float]:
    """A deterministic vector for a text (not unit length: the client must normalize)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [((digest[i % 32] + i) % 17 - 8) / 4.0 for i in range(dimension)]


@dataclass
class OpenAIServer:
    dimension: int = 16
    api_key: str | None = None
    failures: list[int] = field(default_factory=list)  # status codes to answer first, in order
    delay_s: float = 0.0
    reverse_order: bool = True  # answer out of order, as the API allows
    requests: list[dict[str, Any]] = field(default_factory=list)
    contract_violations: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    hold_until_in_flight: int = 0  # see hold()

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def hold(self, in_flight: int) -> None:
        """From now on, hold requests until ``in_flight`` are in flight at once (or 5 s pass):
        proves a client's concurrency without timing."""
        with self._lock:
            self.hold_until_in_flight = in_flight
            self._gate.clear()

    def _violation(self, message: str) -> tuple[int, dict[str, Any]]:
        self.contract_violations.append(message)
        return 400, {"error": {"message": message, "type": "invalid_request_error"}}

    def answer(self, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        if path not in ("/v1/embeddings", "/v1/chat/completions", "/v1/completions"):
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
        if path != "/v1/embeddings":
            return self._generate(path, body)
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

    def _generate(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat = path == "/v1/chat/completions"
        prompt, problem = _prompt_of(body, chat)
        if problem is not None:
            return self._violation(problem)
        with self._lock:
            self.requests.append(body)
            status = self.failures.pop(0) if self.failures else 200
        if status != 200:
            return status, {"error": {"message": f"injected {status}", "type": "server_error"}}
        if len(prompt) > MAX_PROMPT_CHARS:
            return 400, {
                "error": {
                    "message": "maximum context length exceeded",
                    "type": "invalid_request_error",
                    "code": "context_length_exceeded",
                }
            }
        text = f"echo:{prompt[-20:]}"
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": 3,
            "total_tokens": len(prompt.split()) + 3,
        }
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return 200, {
            "id": "cmpl-test",
            "object": "chat.completion" if chat else "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as vLLM's and OpenAI's servers do
            # Headers and body leave in separate writes; with Nagle on, delayed ACKs add ~40 ms
            # to every keep-alive answer. Real servers (uvicorn) set TCP_NODELAY too.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                # In flight: from a request fully received to its answer decided (the delay is
                # the model working), so the count never includes the client's next request.
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    if server.in_flight >= server.hold_until_in_flight:
                        server._gate.set()
                try:
                    if server.hold_until_in_flight and not server._gate.wait(5.0):
                        server._gate.set()  # never reached: let the rest through, the test fails
                    if server.delay_s:
                        time.sleep(server.delay_s)
                    status, payload = server.answer(self.path, self.headers, raw)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                encoded = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler


EmbeddingsServer = OpenAIServer


def _prompt_of(body: dict[str, Any], chat: bool) -> tuple[str, str | None]:
    """The prompt of a (chat) completion body, or a contract violation naming the problem."""
    unknown = set(body) - (CHAT_FIELDS if chat else COMPLETION_FIELDS)
    if unknown:
        return "", f"unknown fields {sorted(unknown)}"
    if chat:
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
                for m in messages
            )
        ):
            return "", "'messages' must be a list of {role, content}"
        prompt = "".join(m["content"] for m in messages)
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return "", "'prompt' must be a string"
    max_tokens = body.get("max_tokens", 16)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "", "'max_tokens' must be a positive integer"
    temperature = body.get("temperature", 1)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        return "", "'temperature' must be between 0 and 2"
    return prompt, None


def main() -> None:
    """Serve on 127.0.0.1 in a process of its own (benchmarks): prints the URL, then serves."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    with OpenAIServer(delay_s=args.delay) as server:
        print(server.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
