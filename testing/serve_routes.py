"""What answers on the cluster's serving routes while the fake API server runs it: the OpenAI
stand-in (testing/openai_server.py) under route prefixes, each answering as the model version the
fake cluster runs there (``serve``, fed by FakeKubeApi's ``on_serving``).

Like serving/'s applications, each prefix answers ``GET <prefix>/v1/models`` with the
``llmw-model-version`` header and takes requests without ``model`` (its served name is the
default). A version in ``broken`` answers 500 to every request, as a model that loads but cannot
serve; a prefix nothing runs on answers 404.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from components.rollout.ray_local import VERSION_HEADER
from testing.openai_server import OpenAIServer


@dataclass
class ServedRoutes(OpenAIServer):
    versions: dict[str, str | None] = field(default_factory=dict)  # prefix -> version running
    broken: set[str] = field(default_factory=set)

    @property
    def root_url(self) -> str:
        return self.url.removesuffix("/v1")

    def serve(self, prefix: str, version: str | None, up: bool = True) -> None:
        """``version`` answers under ``prefix`` from now on (``up`` False: nothing does)."""
        with self._lock:
            if up:
                self.versions[prefix.rstrip("/")] = version
            else:
                self.versions.pop(prefix.rstrip("/"), None)

    def route_of(self, path: str) -> tuple[str | None, str]:
        """(the prefix ``path`` falls under, the rest of it)."""
        with self._lock:
            prefixes = sorted(self.versions, key=len, reverse=True)
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, path[len(prefix) :]
        return None, path

    def answer(self, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        prefix, rest = self.route_of(path)
        if prefix is None:
            return 404, {"error": {"message": f"nothing serves {path}", "type": "not_found"}}
        version = self.versions.get(prefix)
        if version in self.broken:
            return 500, {"error": {"message": f"{version} cannot serve", "type": "server_error"}}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if isinstance(body, dict) and "model" not in body:
            raw = json.dumps({**body, "model": str(prefix).strip("/")}).encode()
        return super().answer(rest, headers, raw)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base: Any = super()._handler()
        server = self

        class Handler(base):  # type: ignore[misc,valid-type]
            def do_GET(self) -> None:
                prefix, rest = server.route_of(self.path)
                version = server.versions.get(prefix) if prefix is not None else None
                found = rest == "/v1/models" and prefix is not None
                payload = {
                    "object": "list",
                    "data": [{"id": str(prefix).strip("/"), "object": "model", "version": version}],
                }
                encoded = json.dumps(payload if found else {"error": "not found"}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                if found:
                    self.send_header(VERSION_HEADER, version or "")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

        return Handler
