"""The Kubernetes API as a rollout uses it: read, create, patch, replace and delete custom
resources (the RayService, InferenceServices, and what an Argo resource template names).

Through lightkube, over the kubeconfig settings name (``LLMW_KUBECONFIG``, ``LLMW_KUBE_CONTEXT``)
or, without one, the pod's service account in a cluster, else ``$KUBECONFIG`` or
``~/.kube/config``. Objects are plain dicts. ``update`` reads an object, lets the caller change a
copy, and sends the difference as a JSON merge patch carrying the ``resourceVersion`` it read: a
409 Conflict (someone wrote in between) makes it read and change again, with tenacity, up to
``kube_conflict_retries`` times. Every failure is a ``KubeError`` naming the object and the
server's words; a server that cannot be reached says where it was looked for.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

if TYPE_CHECKING:
    from components.settings import Settings

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
PATCH_TYPES = {"merge": MERGE, "json": JSON_PATCH, "strategic": STRATEGIC}


@dataclass(frozen=True)
class Kind:
    """A namespaced custom resource kind: its API version, kind, plural and kubectl names."""

    api_version: str
    kind: str
    plural: str
    names: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


RAYSERVICE = Kind("ray.io/v1", "RayService", "rayservices", ("rayservice",))
INFERENCESERVICE = Kind(
    "serving.kserve.io/v1beta1",
    "InferenceService",
    "inferenceservices",
    ("inferenceservice", "isvc"),
)
KINDS = (RAYSERVICE, INFERENCESERVICE)


class KubeError(RuntimeError):
    """A Kubernetes API call failed; ``code`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def kind_of(api_version: str, kind: str) -> Kind:
    """The known kind of an object's ``apiVersion`` and ``kind``; KubeError for any other."""
    for known in KINDS:
        if known.kind == kind and known.group == api_version.rpartition("/")[0]:
            return Kind(api_version, known.kind, known.plural, known.names)
    names = ", ".join(f"{k.kind} ({k.api_version})" for k in KINDS)
    raise KubeError(f"{kind} ({api_version}) is not a kind this client handles: {names}")


def kind_named(name: str) -> Kind:
    """A kind by kubectl's words: ``rayservice``, ``rayservices.ray.io``, ``isvc``, ..."""
    word, _, group = name.lower().partition(".")
    for known in KINDS:
        if word in (known.kind.lower(), known.plural, *known.names) and group in ("", known.group):
            return known
    plurals = ", ".join(k.plural for k in KINDS)
    raise KubeError(f"unknown resource type {name!r}: known are {plurals}")


def merge_diff(current: Any, wanted: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``current`` into ``wanted``."""
    if not isinstance(current, dict) or not isinstance(wanted, dict):
        return copy.deepcopy(wanted)
    patch: dict[str, Any] = {key: None for key in current if key not in wanted}
    for key, value in wanted.items():
        if key not in current:
            patch[key] = copy.deepcopy(value)
        elif current[key] != value:
            patch[key] = merge_diff(current[key], value)
    return patch


def _conflict(exc: BaseException) -> bool:
    return isinstance(exc, KubeError) and exc.code == 409


class KubeApi:
    """A lightkube client on one kubeconfig (or the in-cluster service account)."""

    def __init__(self, kubeconfig: Path | None = None, context: str | None = None,
                 conflict_retries: int = 5) -> None:  # fmt: skip
        from lightkube import Client, KubeConfig
        from lightkube.core.exceptions import ConfigError

        try:
            if kubeconfig is not None:
                config = KubeConfig.from_file(Path(kubeconfig)).get(context)
            else:
                config = KubeConfig.from_env().get(context)
        except (ConfigError, OSError, KeyError) as exc:
            where = kubeconfig or "the in-cluster service account, $KUBECONFIG or ~/.kube/config"
            raise KubeError(f"no usable Kubernetes configuration in {where}: {exc}") from None
        assert config is not None
        self.server = config.cluster.server
        self.conflicts = 0  # 409s met by update(), for the caller's figures
        self.conflict_retries = conflict_retries
        self._client = Client(config=config, trust_env=False, field_manager="llmw")

    @classmethod
    def from_settings(cls, settings: Settings) -> KubeApi:
        return cls(settings.kubeconfig, settings.kube_context, settings.kube_conflict_retries)

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, action: Callable[[], Any]) -> Any:
        """Run one API call; lightkube's and httpx's errors become a KubeError naming ``what``."""
        import httpx2
        from lightkube import ApiError

        try:
            return action()
        except ApiError as exc:
            status = exc.status
            raise KubeError(
                f"{what}: {status.code} {status.reason}: {status.message}",
                status.code,
                status.reason or "",
            ) from None
        except httpx2.HTTPError as exc:
            where = f"cannot reach the Kubernetes API at {self.server}"
            raise KubeError(f"{what}: {where}: {exc}") from None

    @staticmethod
    def _resource(kind: Kind) -> Any:
        from lightkube.generic_resource import create_namespaced_resource

        return create_namespaced_resource(kind.group, kind.version, kind.kind, kind.plural)

    def get(self, kind: Kind, name: str, namespace: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        try:
            found = self._call(
                f"get {kind.plural}/{name} in {namespace}",
                lambda: self._client.get(self._resource(kind), name, namespace=namespace),
            )
        except KubeError as exc:
            if exc.code == 404:
                return None
            raise
        return _plain(found)

    def create(self, document: dict[str, Any]) -> dict[str, Any]:
        return self._write("create", document)

    def replace(self, document: dict[str, Any]) -> dict[str, Any]:
        """PUT ``document`` (its ``metadata.resourceVersion`` is the precondition)."""
        return self._write("replace", document)

    def _write(self, verb: str, document: dict[str, Any]) -> dict[str, Any]:
        """``create`` or ``replace`` the whole ``document`` through lightkube."""
        kind = kind_of(document.get("apiVersion", ""), document.get("kind", ""))
        meta = document.get("metadata") or {}
        resource = self._resource(kind)
        send = getattr(self._client, verb)
        return _plain(self._call(
            f"{verb} {kind.plural}/{meta.get('name')} in {meta.get('namespace')}",
            lambda: send(resource(copy.deepcopy(document))),
        ))  # fmt: skip

    def patch(self, kind: Kind, name: str, namespace: str, body: Any,
              content_type: str = MERGE) -> dict[str, Any]:  # fmt: skip
        """PATCH with ``content_type`` (merge, JSON patch or strategic merge patch)."""
        from lightkube.types import PatchType

        patch_type = PatchType(content_type)
        return _plain(self._call(
            f"patch {kind.plural}/{name} in {namespace}",
            lambda: self._client.patch(
                self._resource(kind), name, body, namespace=namespace, patch_type=patch_type
            ),
        ))  # fmt: skip

    def delete(self, kind: Kind, name: str, namespace: str) -> bool:
        """Delete the object; False when there was none."""
        try:
            self._call(
                f"delete {kind.plural}/{name} in {namespace}",
                lambda: self._client.delete(self._resource(kind), name, namespace=namespace),
            )
        except KubeError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def update(
        self,
        kind: Kind,
        name: str,
        namespace: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Read the object, ``change`` a copy, and merge-patch the difference with the read
        ``resourceVersion`` as precondition; on 409 read and change again. The object after."""

        def attempt() -> dict[str, Any]:
            current = self.get(kind, name, namespace)
            if current is None:
                raise KubeError(f"{kind.plural}/{name} in {namespace} does not exist", 404)
            wanted = change(copy.deepcopy(current))
            patch = merge_diff(_writable(current), _writable(wanted))
            if not patch:
                return current
            version = current["metadata"]["resourceVersion"]
            patch.setdefault("metadata", {})["resourceVersion"] = version
            return self.patch(kind, name, namespace, patch)

        def met_conflict(_: Any) -> None:
            self.conflicts += 1

        retrying = Retrying(
            retry=retry_if_exception(_conflict),
            stop=stop_after_attempt(self.conflict_retries + 1),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            before_sleep=met_conflict,
            reraise=True,
        )
        result: dict[str, Any] = retrying(attempt)
        return result


def _writable(document: dict[str, Any]) -> dict[str, Any]:
    """What a client writes: metadata's labels and annotations, and everything but status."""
    meta = document.get("metadata") or {}
    kept = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    rest = {k: v for k, v in document.items() if k not in ("metadata", "status")}
    return {"metadata": kept, **rest}


def _plain(obj: Any) -> dict[str, Any]:
    """A lightkube object (a dict subclass for generic resources) as plain JSON data."""
    import json

    to_dict = getattr(obj, "to_dict", None)
    data = to_dict() if callable(to_dict) else obj
    plain: dict[str, Any] = json.loads(json.dumps(data))
    return plain
