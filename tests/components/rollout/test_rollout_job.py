"""The model-rollout job's parameters and its WorkflowTemplate's steps around the resource
templates, without a cluster: the change rendered from the RayService Argo reads, the patch
Argo would send (valid against the pinned CRD), the restore the exit handler computes from the
history, and the conditions Argo can express."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.registry import FORBIDDEN_KEYS, ParameterError, get_job
from components.rollout import rayservice
from components.rollout.application import RolloutRefused
from components.rollout.history import read_history
from components.rollout.job_argo import render_step, resource_conditions, restore_plan
from components.rollout.job_params import ModelRolloutParams, read_params
from components.rollout.job_steps import (
    failure_reason,
    record_promoted,
    stage_step,
    without_nulls,
)
from components.rollout.serve_config import application_index, parse_serve_config
from components.settings import Settings
from tests.components.rollout.conftest import write_model

JOB = get_job("model-rollout")
# Kubernetes' IsQualifiedName for a key without a prefix: what Argo's condition parser accepts.
LABEL_KEY = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


@pytest.fixture
def settings(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    from components.settings import get_settings

    monkeypatch.setenv("LLMW_MODEL_STORE_URI", str(tmp_path / "store"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def values(model: Path, **more: Any) -> dict[str, Any]:
    return {"model": str(model), "app": "reranker", "version": "v2", **more}


def test_parameters_cannot_choose_an_image_or_anything_a_request_may_not_set() -> None:
    with pytest.raises(ParameterError, match="unknown parameter 'image'"):
        JOB.validate({"model": "/m", "app": "llm", "version": "v1", "image": "evil:latest"})
    squashed = {key.replace("_", "") for key in FORBIDDEN_KEYS}
    assert [n for n in JOB.parameter_names() if n.replace("_", "") in squashed] == []
    assert "node" not in JOB.parameter_names()  # placement comes from the inventory only


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"target": "collection", "queries": "q.jsonl"}, "app 'llm' has no collection"),
        ({"app": "embeddings", "target": "collection"}, "needs queries"),
        ({"target": "kserve", "engine": "ray-local"}, "target kserve needs engine kubernetes"),
        ({"version": "v 2"}, "version"),
        ({"canary": 100}, "canary"),
    ],
)
def test_bad_parameters_are_named(given: dict[str, Any], words: str) -> None:
    with pytest.raises(ParameterError, match=words):
        JOB.validate({"model": "/m", "app": "llm", "version": "v1", **given})


def test_unset_text_from_a_compiled_pipeline_reads_as_none() -> None:
    params = read_params({"model": "/m", "app": "llm", "version": "v1", "name": "", "alias": ""})
    assert params.name is None and params.alias is None and params.store_name == "llm"
    assert ModelRolloutParams.model_fields["sources"].default == []


def test_conditions_argo_can_parse_or_only_the_generation() -> None:
    success, failure = resource_conditions("reranker", 7)
    key = "status.activeServiceStatus.applicationStatuses.reranker.status"
    assert success == f"status.observedGeneration == 7, {key} == RUNNING"
    assert failure == f"{key} == DEPLOY_FAILED"
    assert LABEL_KEY.match(key) and len(key) <= 63
    # 64 characters: a label selector would refuse the key; the gate's wait on the route waits
    # for the version.
    assert resource_conditions("embeddings", 7) == ("status.observedGeneration == 7", "")


def argo_patch(template: dict[str, Any], serve_config: str, version: str = "") -> dict[str, Any]:
    """The patch Argo sends: the template's manifest with its inputs substituted."""
    text = template["resource"]["manifest"]
    text = text.replace("{{inputs.parameters.serve-config}}", serve_config)
    patch: dict[str, Any] = yaml.safe_load(
        text.replace("{{inputs.parameters.resource-version}}", version)
    )
    return patch


def templates(settings: Settings) -> dict[str, dict[str, Any]]:
    from workflows.render import render_template

    document = render_template("model-rollout", settings)
    return {t["name"]: t for t in document["spec"]["templates"]}


def test_render_restore_and_the_patches_argo_sends(settings: Settings, tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    given = values(model)
    staged = stage_step(given)
    current = rayservice.render_rayservice(settings)
    spec = json.dumps(current["spec"])
    plan, serve_config = render_step(given, staged, spec, "41")
    assert plan["changed"] is True  # the patch makes the next generation

    before = parse_serve_config(current["spec"]["serveConfigV2"])
    after = parse_serve_config(json.loads(serve_config))
    index = application_index(after, "reranker")
    assert index is not None
    entry = after["applications"][index]
    assert entry["args"]["model"] == staged["uri"] and entry["args"]["model_version"] == "v2"
    assert (
        entry["args"]["model_digest"] == staged["digest"] == plan["entry"]["args"]["model_digest"]
    )
    others = [a for a in after["applications"] if a["name"] != "reranker"]
    assert others == [a for a in before["applications"] if a["name"] != "reranker"]
    started = read_history("reranker", settings)
    assert [e["event"] for e in started] == ["started"]  # before anything is applied
    assert started[0]["previous_entry"] == before["applications"][index]

    parts = templates(settings)
    patch = argo_patch(parts["apply-change"], serve_config, "41")
    assert patch["metadata"] == {
        "name": "ai-inference",
        "namespace": "ai-ml",
        "resourceVersion": "41",
    }
    patched = {**current, "spec": {**current["spec"], **patch["spec"]}}
    rayservice.validate(patched, settings)  # the pinned KubeRay CRD and Ray's serve rules

    # The exit handler of a failed run puts the previous entry back into what runs now.
    action, restored = restore_plan(given, "Failed", json.dumps(patched["spec"]), "42")
    assert action == "restore"
    assert parse_serve_config(json.loads(restored)) == before
    back = argo_patch(parts["restore-change"], restored)
    assert "resourceVersion" not in back["metadata"]  # the restore must win
    assert restore_plan(given, "Succeeded", json.dumps(patched["spec"]), "42")[0] == "none"
    record_promoted(given, plan, {"passed": True, "table": ""}, plan["entry"])
    assert restore_plan(given, "Failed", json.dumps(patched["spec"]), "42")[0] == "none"


def test_a_refused_change_records_nothing(settings: Settings, tmp_path: Path) -> None:
    given = values(write_model(tmp_path / "model"), memory_gb=900)
    staged = stage_step(given)
    spec = json.dumps(rayservice.render_rayservice(settings)["spec"])
    with pytest.raises(RolloutRefused, match="900"):
        render_step(given, staged, spec, "1")
    assert read_history("reranker", settings) == []
    assert restore_plan(given, "Failed", spec, "1")[0] == "none"  # nothing to restore


def test_the_reason_of_a_rollback_is_its_failed_gate() -> None:
    events = [
        {"event": "started", "version": "v2"},
        {"event": "gate", "version": "v2", "gate": {"passed": False, "reasons": ["quality low"]}},
    ]
    assert failure_reason(events, "v2", "Task exit-handler-1 failed.") == "gate failed: quality low"
    assert failure_reason(events[:1], "v2", "apply timed out") == "apply timed out"
    assert without_nulls({"a": None, "b": [None, {"c": None, "d": 1}]}) == {"b": [{"d": 1}]}
