"""A generic contract-test HTTP server driven by a pinned OpenAPI (Swagger 2.0) spec.

It routes requests by method and path template to handlers registered by operationId, answers
contract violations as grpc-gateway does (400, code 3) and records them, checks a bearer token,
injects failures and records every routed request.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from jsonschema import Draft4Validator

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
INT64_FORMATS = frozenset({"int64", "uint64"})
# Argo's swagger types these Kubernetes unions as plain strings; real clients send numbers too.
WIDENED = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": ["string", "integer"],
    "io.k8s.apimachinery.pkg.api.resource.Quantity": ["string", "number"],
}
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 412: 9, 429: 8, 499: 1, 500: 13, 501: 12}
GRPC_CODES |= {503: 14, 504: 4}
BOOLS = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"})
INTEGER = re.compile(r"-?\d+\Z")
SEPARATORS = {"csv": ",", "ssv": " ", "tsv": "\t", "pipes": "|"}


@dataclass
class ContractRequest:
    """One routed request, as a handler (and a test) sees it."""

    operation_id: str
    method: str  # "GET", "POST", ...
    path: str  # the raw path, without query
    path_params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: Any  # decoded JSON (multipart: {part name: bytes}) or None


Handler = Callable[[ContractRequest], tuple[int, Any]]  # (status, JSON body)


def grpc_error(status: int, message: str) -> dict[str, Any]:
    """An error body as grpc-gateway (KFP and Argo servers alike) writes it."""
    return {"error": message, "code": GRPC_CODES.get(status, 2), "message": message}


def _tighten(schema: Any) -> None:
    """Make a Swagger schema strict enough to catch client mistakes (in place).

    Neither pinned spec sets ``additionalProperties: false`` (grpc-gateway's generator never
    does), so an object that lists ``properties`` and says nothing about additionalProperties
    is closed here: a misspelt field is then a violation instead of silently ignored. Protobuf
    JSON accepts 64-bit integers as strings or numbers, so int64/uint64 fields accept both.
    """
    if not isinstance(schema, dict):
        return
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    if schema.get("format") in INT64_FORMATS and schema.get("type") in ("string", "integer"):
        schema["type"] = ["string", "integer"]
        schema["pattern"] = r"^-?[0-9]+$"  # applies to the string form only
    for sub in schema.get("properties", {}).values():
        _tighten(sub)
    for key in ("items", "additionalProperties", "not"):
        _tighten(schema.get(key))
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            _tighten(sub)


@dataclass(frozen=True)
class _Route:
    method: str
    operation_id: str
    operation: dict[str, Any]
    params: tuple[dict[str, Any], ...]
    regex: re.Pattern[str]
    names: tuple[str, ...]
    rank: tuple[int, ...]  # per segment: 2 literal, 1 mixed ("{id}:archive"), 0 template


def _compile(template: str) -> tuple[re.Pattern[str], tuple[str, ...], tuple[int, ...]]:
    names: list[str] = []
    segments: list[str] = []
    rank: list[int] = []
    for segment in template.strip("/").split("/"):
        pieces = re.split(r"\{([^}]+)\}", segment)  # odd indices are parameter names
        rank.append(2 if len(pieces) == 1 else 1 if "".join(pieces[0::2]) else 0)
        out = ""
        for i, piece in enumerate(pieces):
            if i % 2:
                out += f"(?P<p{len(names)}>[^/]+)"
                names.append(piece)
            else:
                out += re.escape(piece)
        segments.append(out)
    return re.compile("/" + "/".join(segments) + r"\Z"), tuple(names), tuple(rank)


class Spec:
    """A loaded, tightened spec: routes by method + template, cached body/response validators."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.definitions: dict[str, Any] = raw.get("definitions", {})
        for name, types in WIDENED.items():
            if name in self.definitions:
                self.definitions[name] = {"type": types}
        for definition in self.definitions.values():
            _tighten(definition)
        self.base_path = str(raw.get("basePath") or "").rstrip("/")
        self.routes: list[_Route] = []
        for template, item in raw.get("paths", {}).items():
            for method, operation in item.items():
                if method not in METHODS:
                    continue
                params = [*item.get("parameters", []), *operation.get("parameters", [])]
                for param in params:
                    _tighten(param.get("schema"))
                _tighten(operation.get("responses", {}).get("200", {}).get("schema"))
                op_id = operation.get("operationId") or f"{method.upper()} {template}"
                route = _Route(method.upper(), op_id, operation, tuple(params), *_compile(template))
                self.routes.append(route)
        self.routes.sort(key=lambda route: route.rank, reverse=True)  # literal segments first
        self.operations = {route.operation_id: route for route in self.routes}
        self._validators: dict[tuple[str, str], Draft4Validator] = {}
        self._lock = threading.Lock()

    def route(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | str:
        """The operation for a request and its decoded path parameters, or why there is none."""
        if self.base_path:
            if path != self.base_path and not path.startswith(self.base_path + "/"):
                return f"{method} {path}: outside the spec's basePath {self.base_path!r}"
            path = path[len(self.base_path) :] or "/"
        other_methods = []
        for route in self.routes:
            match = route.regex.match(path)
            if match is None:
                continue
            if route.method != method:
                other_methods.append(route.method)
                continue
            values = (unquote(match.group(f"p{i}")) for i in range(len(route.names)))
            return route, dict(zip(route.names, values, strict=True))
        if other_methods:
            return f"{method} {path}: method not in spec (allowed: {sorted(set(other_methods))})"
        return f"{method} {path}: no path in the spec matches"

    def validator(self, route: _Route, which: str, schema: dict[str, Any]) -> Draft4Validator:
        """A Draft 4 validator for a body or response schema; formats are not checked."""
        key = (route.operation_id, which)
        with self._lock:
            if key not in self._validators:
                root = {"definitions": self.definitions, "allOf": [schema]}
                self._validators[key] = Draft4Validator(root)
            return self._validators[key]


@functools.lru_cache(maxsize=8)
def load_spec(spec_path: Path) -> Spec:
    """Load and prepare a spec once per path (Argo's is large)."""
    return Spec(json.loads(Path(spec_path).read_text(encoding="utf-8")))


def _check_value(where: str, param: dict[str, Any], raw: str) -> list[str]:
    kind, fmt = param.get("type", "string"), param.get("format")
    if kind == "integer" or (kind == "string" and fmt in INT64_FORMATS):
        if not INTEGER.match(raw):
            return [f"{where} is not an integer: {raw!r}"]
        if fmt == "int32" and not -(2**31) <= int(raw) < 2**31:
            return [f"{where} is out of int32 range: {raw!r}"]
    elif kind == "boolean" and raw not in BOOLS:
        return [f"{where} is not a boolean: {raw!r}"]
    if "enum" in param and raw not in [str(value) for value in param["enum"]]:
        return [f"{where} is not one of {param['enum']}: {raw!r}"]
    return []


def _check_parameters(
    route: _Route, path: dict[str, str], query: dict[str, list[str]]
) -> list[str]:
    """Problems with path and query parameters (the route's regex guarantees path ones exist)."""
    problems: list[str] = []
    for p in route.params:
        if p.get("in") == "path":
            problems += _check_value(f"path parameter {p['name']!r}", p, path[p["name"]])
    declared = {p["name"]: p for p in route.params if p.get("in") == "query"}
    missing = [name for name, p in declared.items() if p.get("required") and name not in query]
    problems += [f"required query parameter {name!r} is missing" for name in missing]
    for name, values in query.items():
        where = f"query parameter {name!r}"
        if (param := declared.get(name)) is None:
            problems.append(f"undeclared {where} (declared: {sorted(declared)})")
            continue
        if param.get("type") == "array":
            fmt = param.get("collectionFormat", "csv")
            if fmt != "multi" and len(values) > 1:
                problems.append(f"{where} repeated, but its collectionFormat is {fmt!r}")
            split = [v for raw in values for v in raw.split(SEPARATORS.get(fmt, ","))]
            for value in values if fmt == "multi" else split:
                problems += _check_value(where, param.get("items", {}), value)
            continue
        if len(values) > 1:
            problems.append(f"{where} given {len(values)} times but is not an array")
        for value in values:
            problems += _check_value(where, param, value)
    return problems


def _decode_body(route: _Route, headers: dict[str, str], raw: bytes) -> tuple[Any, list[str]]:
    """The body as a handler sees it, and the contract problems with it."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    body_param = next((p for p in route.params if p.get("in") == "body"), None)
    form_params = [p for p in route.params if p.get("in") == "formData"]
    if form_params:
        if content_type != "multipart/form-data":
            return None, [f"Content-Type must be multipart/form-data, got {content_type!r}"]
        head = f"Content-Type: {headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + raw)
        parts = {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }
        missing = [p["name"] for p in form_params if p.get("required") and p["name"] not in parts]
        return parts, [f"required form field {name!r} is missing" for name in missing]
    if not raw:
        required = body_param is not None and body_param.get("required")
        return None, ["required request body is missing"] if required else []
    try:
        body = json.loads(raw)
    except ValueError as exc:
        text = raw.decode("utf-8", "replace")
        return text, [f"body is not valid JSON: {exc}"] if body_param is not None else []
    if body_param is None:  # grpc-gateway ignores a body the operation does not declare
        return body, []
    if content_type != "application/json":
        return body, [f"Content-Type must be application/json, got {content_type!r}"]
    return body, []


class OpenAPIContractServer:
    """An HTTP server on 127.0.0.1 that answers and polices the operations of one spec."""

    def __init__(
        self,
        spec_path: Path,
        handlers: dict[str, Handler] | None = None,
        token: str | None = None,
        validate_responses: bool = False,
    ) -> None:
        self.spec = load_spec(Path(spec_path).resolve())
        self.handlers: dict[str, Handler] = {}
        for operation_id, handler in (handlers or {}).items():
            self.handle(operation_id, handler)
        self.token = token
        self.validate_responses = validate_responses
        self.requests: list[ContractRequest] = []
        self.violations: list[str] = []
        self._failures: dict[str, deque[tuple[int, str]]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _known(self, operation_id: str) -> None:
        if operation_id not in self.spec.operations:
            raise KeyError(f"operationId {operation_id!r} is not in the spec")

    def handle(self, operation_id: str, handler: Handler) -> None:
        """Answer an operation with ``handler`` (replacing any earlier one)."""
        self._known(operation_id)
        self.handlers[operation_id] = handler

    def fail_next(
        self, operation_id: str, status: int, times: int = 1, message: str = "injected"
    ) -> None:
        """Answer the next ``times`` valid calls of an operation with ``status``."""
        self._known(operation_id)
        with self._lock:
            self._failures.setdefault(operation_id, deque()).extend([(status, message)] * times)

    def requests_for(self, operation_id: str) -> list[ContractRequest]:
        """The recorded requests of one operation, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.operation_id == operation_id]

    def __enter__(self) -> OpenAPIContractServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def _violation(self, status: int, problems: list[str]) -> tuple[int, Any]:
        with self._lock:
            self.violations.extend(problems)
        return status, grpc_error(status, "; ".join(problems))

    def _serve(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        split = urlsplit(target)
        found = self.spec.route(method, split.path)
        if isinstance(found, str):
            return self._violation(404, [found])
        route, path_params = found
        op = route.operation_id
        query = parse_qs(split.query, keep_blank_values=True)
        body, body_problems = _decode_body(route, headers, raw)
        request = ContractRequest(op, method, split.path, path_params, query, headers, body)
        with self._lock:
            self.requests.append(request)
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            message = "missing or wrong bearer token in the Authorization header"
            return 401, {"error": "unauthenticated", "code": 16, "message": message}
        body_param = next((p for p in route.params if p.get("in") == "body"), None)
        if not body_problems and body_param is not None and body is not None:
            validator = self.spec.validator(route, "body", body_param["schema"])
            body_problems = [_describe("body", e) for e in validator.iter_errors(body)]
        problems = _check_parameters(route, path_params, query) + body_problems
        if problems:
            return self._violation(400, [f"{method} {split.path} ({op}): {p}" for p in problems])
        with self._lock:
            queue = self._failures.get(op)
            failure = queue.popleft() if queue else None
        if failure is not None:
            return failure[0], grpc_error(*failure)
        handler = self.handlers.get(op)
        if handler is None:
            return self._violation(501, [f"no handler registered for operation {op}"])
        try:
            status, payload = handler(request)
        except Exception as exc:  # a broken handler is the test's bug; make it loud
            return self._violation(500, [f"handler for {op} raised {exc!r}"])
        schema = route.operation.get("responses", {}).get("200", {}).get("schema")
        if self.validate_responses and status == 200 and schema is not None:
            validator = self.spec.validator(route, "response", schema)
            with self._lock:
                self.violations += [
                    f"{op}: {_describe('response', e)}" for e in validator.iter_errors(payload)
                ]
        return status, payload

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _RequestHandler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length > 0 else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, payload = server._serve(self.command, self.path, headers, raw)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

        return _RequestHandler


def _describe(what: str, error: Any) -> str:
    """A jsonschema error as one readable line, with its JSON path."""
    return f"{what} {error.json_path}: {error.message}"
