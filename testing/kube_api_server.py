"""A Kubernetes API server on 127.0.0.1 for the kubernetes engine's tests and argo-local's resource
templates: RayServices (ray.io) and InferenceServices (serving.kserve.io), over real HTTP.

What it does as the real one does: the namespaced REST paths (GET, POST, PUT, PATCH, DELETE),
``Status`` objects for errors (404 NotFound, 409 AlreadyExists and Conflict, 422 Invalid, 415 for
a strategic merge patch, which custom resources do not take), a bearer token from the kubeconfig
it writes, ``resourceVersion`` (bumped on every change; a write carrying an older one is a 409;
a PUT must carry one), ``generation`` (bumped when ``spec`` changes), and ``status`` as a
subresource: clients cannot write it. Every object written, and every status its controllers
write, is validated strictly against the pinned KubeRay v1.5.1 / KServe v0.20.0 CRD
(components/rollout/crd.py); a body that fails is refused with 422 naming each problem.

Its controllers (testing/kube_controllers.py) move ``status`` along like KubeRay and KServe.
Injected failures: ``conflicts(n)`` makes another writer change the object just before each of
the next n writes, so a write computed from the object it read meets a real 409; ``outcomes``
maps a model version to ``deploy_failed`` or ``never_ready``. What it does not serve: lists,
watches, server-side apply, discovery, other kinds.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from components.rollout.crd import (
    INFERENCESERVICE_CRD,
    RAYSERVICE_CRD,
    crd_path,
    crd_problems,
)
from testing.kube_controllers import Controllers, Served

TOKEN = "llmw-test-token"
CRDS = {("ray.io", "rayservices"): RAYSERVICE_CRD,
        ("serving.kserve.io", "inferenceservices"): INFERENCESERVICE_CRD}  # fmt: skip
_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<namespace>[^/]+)/"
    r"(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?/?$"
)
Key = tuple[str, str, str]  # (plural, namespace, name)


class ApiFailure(Exception):
    """An API answer other than success: its code, reason and message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}  # fmt: skip


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` applied to ``target``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubeApi:
    """The server: ``with FakeKubeApi(schemas_dir) as api: api.write_kubeconfig(path)``."""

    def __init__(
        self, schemas_dir: Path, ready_delay_s: float = 0.3, reconcile_delay_s: float = 0.05
    ) -> None:
        self.schemas_dir = Path(schemas_dir)
        self.objects: dict[Key, dict[str, Any]] = {}
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, code)
        self.outcomes: dict[str, str] = {}  # model version -> deploy_failed | never_ready
        self.served: list[Served] = []  # what became RUNNING/Ready, in order
        self.on_serving: Callable[[Served], None] | None = None
        self._conflicts = 0
        self._version = 1000
        # While set to an unset Event, writes wait for it before they land (a test kills the
        # client meanwhile: the write lands after the client is gone, as a real one can).
        self.hold_writes: threading.Event | None = None
        self.writes_held = 0
        self.controllers = Controllers(self, ready_delay_s, reconcile_delay_s)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeKubeApi:
        self._thread.start()
        self.controllers.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controllers.stop()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        if self.controllers.errors and exc[0] is None:
            raise AssertionError("the fake's controllers failed:\n" + self.controllers.errors[0])

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig whose current context is this server, with its token."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester",
                                                      "namespace": namespace}}],
        }  # fmt: skip
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # --- what tests use ------------------------------------------------------------------

    def conflicts(self, count: int) -> None:
        """Another writer changes the object just before each of the next ``count`` writes."""
        with self.lock:
            self._conflicts = count

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get((plural, namespace, name))
            return copy.deepcopy(found) if found else None

    def seed(self, document: dict[str, Any]) -> dict[str, Any]:
        """Create ``document`` (validated) and let its controller settle it at once."""
        plural = _plural(document)
        meta = document["metadata"]
        created = self.create(plural, meta["namespace"], copy.deepcopy(document))
        self.controllers.settle((plural, meta["namespace"], meta["name"]))
        return created

    def count(self, method: str, code: int) -> int:
        with self.lock:
            return sum(1 for m, _, c in self.requests if m == method and c == code)

    # --- the store -------------------------------------------------------------------------

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def validate(self, plural: str, document: dict[str, Any]) -> None:
        group = str(document.get("apiVersion", "")).rpartition("/")[0]
        problems = crd_problems(document, crd_path(self.schemas_dir, CRDS[(group, plural)]))
        if problems:
            name = document.get("metadata", {}).get("name")
            raise ApiFailure(422, "Invalid", f"{document.get('kind')} {name!r} is invalid: "
                             + "; ".join(problems))  # fmt: skip

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            meta = body.get("metadata") or {}
            name = meta.get("name")
            if not name:
                raise ApiFailure(422, "Invalid", "metadata.name: Required value")
            if (plural, namespace, name) in self.objects:
                raise ApiFailure(409, "AlreadyExists", f'{plural} "{name}" already exists')
            body.pop("status", None)
            body["metadata"] = {**meta, "namespace": namespace, "uid": str(uuid.uuid4()),
                                "creationTimestamp": now(), "generation": 1,
                                "resourceVersion": self._next_version()}  # fmt: skip
            self.validate(plural, body)
            self.objects[(plural, namespace, name)] = body
            self.controllers.changed((plural, namespace, name), 1)
            return copy.deepcopy(body)

    def _existing(self, key: Key) -> dict[str, Any]:
        found = self.objects.get(key)
        if found is None:
            raise ApiFailure(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        return found

    def _other_writer(self, key: Key) -> None:
        """Someone else's write (an annotation), when a conflict was injected."""
        if self._conflicts <= 0:
            return
        self._conflicts -= 1
        current = self.objects[key]
        annotations = current["metadata"].setdefault("annotations", {})
        annotations["other-writer.example.com/touched"] = str(self._conflicts)
        current["metadata"]["resourceVersion"] = self._next_version()

    def write(self, key: Key, make: Callable[[dict[str, Any]], dict[str, Any]],
              needs_version: bool) -> dict[str, Any]:  # fmt: skip
        """Replace the object with ``make(copy of it)``: preconditions, server fields, status
        kept, validation, generation and resourceVersion."""
        with self.lock:
            self._existing(key)
            self._other_writer(key)
            current = self.objects[key]
            wanted = make(copy.deepcopy(current))
            sent = (wanted.get("metadata") or {}).get("resourceVersion")
            if needs_version and not sent:
                raise ApiFailure(422, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: "
                                 "must be specified for an update")  # fmt: skip
            if sent and sent != current["metadata"]["resourceVersion"]:
                raise ApiFailure(409, "Conflict", f'Operation cannot be fulfilled on {key[0]} '
                                 f'"{key[2]}": the object has been modified; please apply your '
                                 "changes to the latest version and try again")  # fmt: skip
            meta = current["metadata"]
            server = {k: meta[k] for k in ("name", "namespace", "uid", "creationTimestamp")}
            wanted["metadata"] = {**(wanted.get("metadata") or {}), **server,
                                  "generation": meta["generation"],
                                  "resourceVersion": meta["resourceVersion"]}  # fmt: skip
            wanted.pop("status", None)
            if "status" in current:
                wanted["status"] = current["status"]
            self.validate(key[0], wanted)
            if wanted == current:
                return copy.deepcopy(current)
            spec_changed = wanted.get("spec") != current.get("spec")
            if spec_changed:
                wanted["metadata"]["generation"] = meta["generation"] + 1
            wanted["metadata"]["resourceVersion"] = self._next_version()
            self.objects[key] = wanted
            if spec_changed:
                self.controllers.changed(key, wanted["metadata"]["generation"])
            return copy.deepcopy(wanted)

    def set_status(self, key: Key, status: dict[str, Any]) -> None:
        """A controller's status write (validated like any other)."""
        with self.lock:
            current = self.objects.get(key)
            if current is None:
                return
            updated = {**current, "status": status}
            self.validate(key[0], updated)
            updated["metadata"] = {**current["metadata"], "resourceVersion": self._next_version()}
            self.objects[key] = updated

    def delete(self, key: Key) -> None:
        with self.lock:
            self._existing(key)
            del self.objects[key]
            self.controllers.deleted(key)

    # --- HTTP -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Any, raw: bytes) -> tuple[int, Any]:
        match = _PATH.match(path.split("?")[0])
        if match is None or (match["group"], match["plural"]) not in CRDS:
            raise ApiFailure(404, "NotFound", f"the server could not find the requested resource "
                             f"({method} {path})")  # fmt: skip
        plural, namespace, name = match["plural"], match["namespace"], match["name"]
        body = json.loads(raw) if raw else None
        if method == "POST" and name is None:
            return 201, self.create(plural, namespace, body)
        if name is None:
            raise ApiFailure(405, "MethodNotAllowed", f"{method} on a collection")
        key = (plural, namespace, name)
        if method == "GET":
            with self.lock:
                return 200, copy.deepcopy(self._existing(key))
        if method == "DELETE":
            self.delete(key)
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        if method in ("PUT", "PATCH") and self.hold_writes is not None:
            with self.lock:
                self.writes_held += 1
            self.hold_writes.wait(60)
        if method == "PUT":
            return 200, self.write(key, lambda _: body, needs_version=True)
        if method == "PATCH":
            return 200, self.write(key, _patcher(headers.get("Content-Type", ""), body), False)
        raise ApiFailure(405, "MethodNotAllowed", f"{method} is not allowed")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                        raise ApiFailure(401, "Unauthorized", "Unauthorized")
                    code, payload = api.handle(self.command, self.path, self.headers, raw)
                except ApiFailure as failure:
                    code, payload = failure.code, failure.status()
                except (ValueError, jsonpatch.JsonPatchException) as exc:
                    code, payload = 422, ApiFailure(422, "Invalid", str(exc)).status()
                with api.lock:
                    api.requests.append((self.command, self.path, code))
                encoded = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler


def _patcher(content_type: str, body: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    kind = content_type.split(";")[0].strip()
    if kind == "application/merge-patch+json":
        return lambda current: merge_patch(current, body)
    if kind == "application/json-patch+json":
        return lambda current: jsonpatch.apply_patch(current, body)
    raise ApiFailure(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                     "format - accepted media types include: application/json-patch+json, "
                     "application/merge-patch+json, application/apply-patch+yaml")  # fmt: skip


def _plural(document: dict[str, Any]) -> str:
    group = str(document.get("apiVersion", "")).rpartition("/")[0]
    return next(plural for (g, plural) in CRDS if g == group)
