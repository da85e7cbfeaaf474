"""A ``resource`` template, as Argo's executor runs it: ``kubectl <action>`` on the manifest, then
a wait until the object meets ``successCondition`` or ``failureCondition`` (conditions.py), then
its output parameters. Here through components/rollout/kube_api.py (lightkube), against the API
server of the steps' kubeconfig: ``LLMW_KUBECONFIG`` (or ``KUBECONFIG``) and
``LLMW_KUBE_CONTEXT`` in the runner's environment; without one, the in-cluster service account
or ~/.kube/config.

Actions: ``get``, ``create``, ``apply`` (client-side, as kubectl does it for custom resources: a
JSON merge patch from the last-applied annotation, the manifest and the live object), ``replace``,
``delete`` (not-found ignored) and ``patch`` with ``mergeStrategy`` ``merge`` or ``json`` (the
object named by ``flags``: ``[type, name, -n namespace]``) or ``strategic`` (Argo's default, which
the API server refuses for custom resources, as here). The namespace is the manifest's, else the
flags', else the workflow's. The object is read every ``RESOURCE_STATE_CHECK_INTERVAL`` (a Go
duration, Argo's variable; default ``LLMW_KUBE_POLL_INTERVAL_S``, 2 s) until a condition decides,
the object is deleted (Failed, as in Argo), or the template's time runs out. Output parameters:
``valueFrom.jsonPath`` (``{.a.b[0].c}`` paths) with ``default``. ``manifestFrom``, ``jqFilter``
and other flags are refused before anything runs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .conditions import MISSING, check, lookup, parse_condition, text
from .expressions import parse_duration
from .model import NodeError, Outcome, UnsupportedFeatureError
from .templating import VARIABLE, substitute_all

ACTIONS = ("get", "create", "apply", "replace", "delete", "patch")
FIELDS = {"action", "manifest", "mergeStrategy", "successCondition", "failureCondition", "flags"}
CLUSTER_ONLY = {"setOwnerReference"}  # no Workflow object to own it here
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_JSONPATH = re.compile(r"^\{\.([A-Za-z0-9_\-./\[\]]+)\}$")


def check_resource(where: str, resource: Mapping[str, Any]) -> None:
    """Refuse, naming the field, what argo-local cannot run of a resource template."""
    unknown = sorted(set(resource) - FIELDS - CLUSTER_ONLY)
    if unknown:
        raise UnsupportedFeatureError(f"{where}.resource: argo-local does not support {unknown}")
    if resource.get("action") not in ACTIONS:
        raise UnsupportedFeatureError(
            f"{where}.resource.action: {resource.get('action')!r} (argo-local runs {ACTIONS})"
        )
    if resource.get("mergeStrategy", "strategic") not in ("strategic", "merge", "json"):
        raise UnsupportedFeatureError(
            f"{where}.resource.mergeStrategy: {resource['mergeStrategy']}"
        )
    for name in ("successCondition", "failureCondition"):
        condition = str(resource.get(name) or "")
        if condition and not VARIABLE.search(condition):
            try:
                parse_condition(condition)
            except ValueError as exc:
                raise UnsupportedFeatureError(f"{where}.resource.{name}: {exc}") from None
    if "manifest" not in resource and not resource.get("flags"):
        raise UnsupportedFeatureError(f"{where}.resource: needs a manifest or flags")


def check_outputs(where: str, tmpl: Mapping[str, Any]) -> None:
    for param in tmpl.get("outputs", {}).get("parameters", []):
        value_from = param.get("valueFrom", {})
        if "jsonPath" not in value_from and "value" not in param:
            raise UnsupportedFeatureError(
                f"{where}: output parameter {param.get('name')!r} of a resource template needs "
                "valueFrom.jsonPath"
            )


def _flags(flags: list[str]) -> tuple[list[str], str | None]:
    """``kubectl``'s positional words and ``-n``/``--namespace``; other flags refused."""
    words, namespace = [], None
    items = iter(flags)
    for flag in items:
        if flag in ("-n", "--namespace"):
            namespace = next(items, None)
        elif flag.startswith("--namespace="):
            namespace = flag.partition("=")[2]
        elif flag.startswith("-"):
            raise NodeError(f"resource flag {flag!r}: argo-local takes TYPE NAME and -n only")
        else:
            words.append(flag)
    return words, namespace


def three_way(last: Any, new: Any, live: Any) -> Any:
    """kubectl apply's JSON merge patch: what ``new`` sets that ``live`` lacks or differs in,
    and null for what ``last`` (the previous apply) set and ``new`` no longer does."""
    if not (isinstance(new, dict) and isinstance(live, dict)):
        return new
    last = last if isinstance(last, dict) else {}
    patch: dict[str, Any] = {k: None for k in last if k not in new and k in live}
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(live.get(key), dict):
            nested = three_way(last.get(key), value, live[key])
            if nested:
                patch[key] = nested
        elif live.get(key, object()) != value:
            patch[key] = value
    return patch


class ResourceRun:
    """One attempt of a resource template: the action, the wait, the outputs."""

    def __init__(self, resource: dict[str, Any], env: Mapping[str, str], namespace: str,
                 log: Path) -> None:  # fmt: skip
        from components.rollout.kube_api import KubeApi, KubeError

        self.resource = resource
        self.namespace = namespace
        self.log_path = log
        kubeconfig = env.get("LLMW_KUBECONFIG") or env.get("KUBECONFIG")
        try:
            self.api = KubeApi(Path(kubeconfig) if kubeconfig else None,
                               env.get("LLMW_KUBE_CONTEXT") or None)  # fmt: skip
        except KubeError as exc:
            raise NodeError(str(exc)) from None
        interval = env.get("RESOURCE_STATE_CHECK_INTERVAL")
        default = float(env.get("LLMW_KUBE_POLL_INTERVAL_S") or 2.0)
        self.interval = parse_duration(interval) if interval else default

    def log(self, line: str) -> None:
        with self.log_path.open("a", encoding="utf-8") as out:
            out.write(line.rstrip("\n") + "\n")

    def target(self, manifest: Any) -> tuple[Any, str, str]:
        """(kind, name, namespace) the action is on: the manifest's, or the flags'."""
        from components.rollout.kube_api import kind_named, kind_of

        words, flag_ns = _flags([str(f) for f in self.resource.get("flags") or []])
        if isinstance(manifest, dict) and manifest.get("kind"):
            meta = manifest.get("metadata") or {}
            kind = kind_of(str(manifest.get("apiVersion", "")), str(manifest["kind"]))
            return kind, str(meta.get("name")), meta.get("namespace") or flag_ns or self.namespace
        if len(words) != 2:
            raise NodeError("resource: without a manifest kind, flags must name TYPE NAME")
        return kind_named(words[0]), words[1], flag_ns or self.namespace

    def act(self) -> tuple[Any, str, str]:
        """Do the action; (kind, name, namespace) of the object it was on."""
        from components.rollout.kube_api import PATCH_TYPES

        action = self.resource["action"]
        manifest = yaml.safe_load(str(self.resource.get("manifest") or "")) or {}
        kind, name, namespace = self.target(manifest)
        if isinstance(manifest, dict) and manifest.get("kind"):
            manifest.setdefault("metadata", {})["namespace"] = namespace
        self.log(f"{action} {kind.plural}/{name} in {namespace}")
        if action == "get" and self.api.get(kind, name, namespace) is None:
            raise NodeError(f'{kind.plural} "{name}" not found in {namespace}')
        if action == "create":
            self.api.create(manifest)
        elif action == "replace":
            live = self.api.get(kind, name, namespace) or {}
            version = (live.get("metadata") or {}).get("resourceVersion")
            manifest["metadata"]["resourceVersion"] = version
            self.api.replace(manifest)
        elif action == "delete":
            self.api.delete(kind, name, namespace)
        elif action == "apply":
            self.apply(manifest, kind, name, namespace)
        elif action == "patch":
            strategy = self.resource.get("mergeStrategy", "strategic")
            self.api.patch(kind, name, namespace, manifest, PATCH_TYPES[strategy])
        return kind, name, namespace

    def apply(self, manifest: dict[str, Any], kind: Any, name: str, namespace: str) -> None:
        applied = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
        new = json.loads(applied)
        new["metadata"].setdefault("annotations", {})[LAST_APPLIED] = applied
        live = self.api.get(kind, name, namespace)
        if live is None:
            self.api.create(new)
            return
        last = json.loads((live["metadata"].get("annotations") or {}).get(LAST_APPLIED, "{}"))
        patch = three_way(last, new, live)
        if patch:
            self.api.patch(kind, name, namespace, patch)

    def wait(self, kind: Any, name: str, namespace: str, deadline: float | None) -> str | None:
        """None when the conditions are met; else why the node failed."""
        from components.rollout.kube_api import KubeError

        success = parse_condition(str(self.resource.get("successCondition") or ""))
        failure = parse_condition(str(self.resource.get("failureCondition") or ""))
        if not success and not failure:
            return None
        while True:
            try:
                obj = self.api.get(kind, name, namespace)
            except KubeError as exc:
                obj, problem = {}, str(exc)  # transient: Argo keeps waiting
            else:
                if obj is None:
                    return (f"The resource has been deleted while its status was still being "
                            f"checked: {kind.plural}/{name}")  # fmt: skip
                verdict = check(obj, success, failure)
                if verdict == "succeeded":
                    self.log("success conditions matched")
                    return None
                if verdict is not None:
                    return verdict.removeprefix("failed: ")
                problem = "neither condition matched yet"
            if deadline is not None and time.monotonic() >= deadline:
                return f"{problem} ({kind.plural}/{name})"
            time.sleep(self.interval if deadline is None else
                       max(0.0, min(self.interval, deadline - time.monotonic())))  # fmt: skip

    def outputs(self, tmpl: dict[str, Any], scope: dict[str, str], target: tuple[Any, str, str],
                where: str) -> dict[str, str]:  # fmt: skip
        outputs = substitute_all(tmpl.get("outputs", {}), scope, f"{where}.outputs")
        params = outputs.get("parameters", [])
        obj = self.api.get(*target) if any("valueFrom" in p for p in params) else None
        values: dict[str, str] = {}
        for param in params:
            value_from = param.get("valueFrom") or {}
            if "jsonPath" not in value_from:
                values[param["name"]] = str(param.get("value", ""))
                continue
            match = _JSONPATH.match(str(value_from["jsonPath"]).strip())
            if match is None:
                raise NodeError(f"output {param['name']!r}: jsonPath {value_from['jsonPath']!r} "
                                "is not a {.a.b[0].c} path")  # fmt: skip
            path = re.sub(r"\[(\d+)\]", r".\1", match.group(1))
            found = lookup(obj, path)
            if found is MISSING:
                if "default" not in value_from:
                    raise NodeError(f"output {param['name']!r}: {value_from['jsonPath']} not found")
                values[param["name"]] = str(value_from["default"])
            else:
                values[param["name"]] = text(found)
        return values


def run_resource(
    tmpl: dict[str, Any],
    scope: dict[str, str],
    folder: Path,
    env: Mapping[str, str],
    limit: tuple[float | None, str],
) -> Outcome:
    """One attempt of resource template ``tmpl``; ``limit``: (seconds left or None, its name)."""
    from components.rollout.kube_api import KubeError

    where = f"template {tmpl['name']!r}"
    seconds, reason = limit
    deadline = None if seconds is None else time.monotonic() + seconds
    folder.mkdir(parents=True, exist_ok=True)
    try:
        resource = substitute_all(dict(tmpl["resource"]), scope, f"{where}.resource")
        run = ResourceRun(resource, env, scope.get("workflow.namespace", "default"),
                          folder / "resource.log")  # fmt: skip
        target = run.act()
        problem = run.wait(*target, deadline)
        if problem is not None:
            if deadline is not None and time.monotonic() >= deadline:
                problem = f"exceeded {reason}: {problem}"
            run.log(problem)
            return Outcome("Failed", problem)
        return Outcome("Succeeded", None, None, run.outputs(tmpl, scope, target, where))
    except KubeError as exc:
        return Outcome("Failed", str(exc))
    except NodeError as exc:
        return Outcome("Error", str(exc))
    except (ValueError, yaml.YAMLError) as exc:  # a condition that does not parse, bad YAML
        return Outcome("Error", f"{where}.resource: {exc}")
