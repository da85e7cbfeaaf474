"""Rendering the batch-inference WorkflowTemplate: strict validation, one shard template per
engine chosen by ``when``, placement, secrets, the merge step and its summary artifact."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster.placement import GpuNeed
from components.inference.models import BatchJobParams, shard_step
from components.inference.steps import ENGINE_NEEDS
from components.orchestration.schema_validation import validate_document
from components.registry import JOBS
from workflows.registry import template_arguments
from workflows.render import SCHEMA_FILE, render_template, render_text

NAME = "batch-inference"
ENGINES = JOBS[NAME].engines


def templates_by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in document["spec"]["templates"]}


def arguments_of(step: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in step["arguments"]["parameters"]}


def test_renders_strictly_valid(default_settings: Any, schemas_dir: Path) -> None:
    text = render_text(NAME, default_settings, schemas_dir)
    document = yaml.safe_load(text)
    assert validate_document(document, schemas_dir / SCHEMA_FILE) == []
    assert document["kind"] == "WorkflowTemplate" and document["metadata"]["name"] == NAME


def test_parameters_are_the_jobs_with_its_defaults(default_settings: Any) -> None:
    spec = render_template(NAME, default_settings)["spec"]
    declared = {p["name"]: p for p in spec["arguments"]["parameters"]}
    # The job's parameters, then the run's trace context (llmw sets it; requests cannot).
    assert list(declared) == [*BatchJobParams.model_fields, "traceparent"]
    assert declared.pop("traceparent")["value"] == ""
    assert "value" not in declared["input"] and "value" not in declared["model"]
    assert declared["engine"]["enum"] == ["transformers", "openai", "vllm"]
    assert sorted(declared["engine"]["enum"]) == sorted(ENGINES) == sorted(ENGINE_NEEDS)
    # The defaults are what template_arguments sends for unset parameters.
    sent = template_arguments(NAME, {"input": "i", "output": "o", "model": "m"})
    for name, param in declared.items():
        if "value" in param:
            assert param["value"] == sent[name], name
    assert sent["template"] == "" and sent["temperature"] == "0.0" and sent["shards"] == "1"


def test_shape_plan_fan_out_per_engine_merge(default_settings: Any) -> None:
    document = render_template(NAME, default_settings)
    spec = document["spec"]
    templates = templates_by_name(document)
    main = templates[spec["entrypoint"]]
    (plan,), fan_outs, (merge,) = main["steps"]
    assert plan["name"] == "plan" and merge["name"] == "merge"
    assert [s["name"] for s in fan_outs] == [f"infer-shard-{e}" for e in ENGINES]
    for engine, step in zip(ENGINES, fan_outs, strict=True):
        assert step["template"] == f"infer-shard-{engine}"
        assert step["withParam"] == "{{steps.plan.outputs.result}}"
        assert step["when"] == f"'{{{{workflow.parameters.engine}}}}' == '{engine}'"
        assert arguments_of(step)["shard"] == "{{item}}"
        script = templates[step["template"]]["script"]
        assert script["args"][-1] == "workflows.batch_inference:infer_shard"
    # The merge reads the planned shards' reports from storage: a Skipped step has no outputs.
    assert arguments_of(merge)["planned"] == "{{steps.plan.outputs.result}}"
    assert not any("infer-shard" in v for v in arguments_of(merge).values())
    assert main["outputs"]["parameters"] == [
        {"name": "report", "valueFrom": {"parameter": "{{steps.merge.outputs.result}}"}}
    ]
    (artifact,) = templates["merge"]["outputs"]["artifacts"]
    assert artifact["s3"] == {"key": "batch-inference/{{workflow.name}}/summary.md"}
    assert artifact["archive"] == {"none": {}}
    assert "onExit" not in spec
    for name in ("plan", "merge", *(f"infer-shard-{e}" for e in ENGINES)):
        assert templates[name]["retryStrategy"]["limit"] >= 2, name


def test_vllm_shards_on_khelben_with_amd_gpu_the_rest_without(default_settings: Any) -> None:
    templates = templates_by_name(render_template(NAME, default_settings))
    vllm = templates["infer-shard-vllm"]
    assert vllm["nodeSelector"] == {"kubernetes.io/hostname": "khelben"}
    assert vllm["tolerations"] == [
        {"effect": "NoSchedule", "key": "dedicated", "operator": "Equal", "value": "vllm"}
    ]
    # The GPU limit beside the gpu-model profile's CPU and memory (vLLM stages weights in RAM).
    assert vllm["script"]["resources"] == {
        "limits": {"cpu": "8", "memory": "32Gi", "amd.com/gpu": "1"},
        "requests": {"cpu": "2", "memory": "16Gi"},
    }
    assert vllm["activeDeadlineSeconds"] == 6 * 3600
    assert vllm["script"]["image"] == "ghcr.io/daviestechlabs/llm-workflows:0.1.0-vllm-rocm"
    for name in ("plan", "merge", "infer-shard-openai", "infer-shard-transformers"):
        assert "nodeSelector" not in templates[name] and "tolerations" not in templates[name]
        assert "amd.com/gpu" not in templates[name]["script"]["resources"]["limits"], name
        assert templates[name]["script"]["image"] == default_settings.component_image
    # transformers holds its model in the pod's memory; an openai shard only sends requests.
    assert templates["infer-shard-transformers"]["script"]["resources"]["requests"] == {
        "cpu": "1",
        "memory": "4Gi",
    }
    assert templates["infer-shard-openai"]["script"]["resources"]["limits"] == {
        "cpu": "1",
        "memory": "2Gi",
    }


def test_credentials_come_from_secrets_never_values(clean_env: None) -> None:
    from components.settings import Settings

    settings = Settings(
        s3_access_key="AKIA-LITERAL",
        s3_secret_key="literal-secret",
        s3_credentials_secret="mc",
        llm_api_key="sk-literal",
        llm_credentials_secret="llm",
    )
    document = render_template(NAME, settings)
    text = yaml.safe_dump(document)
    for literal in ("AKIA-LITERAL", "literal-secret", "sk-literal"):
        assert literal not in text
    templates = templates_by_name(document)
    for name in ("plan", "merge", *(f"infer-shard-{e}" for e in ENGINES)):
        env = {e["name"]: e for e in templates[name]["script"]["env"]}
        for key in ("LLMW_S3_ACCESS_KEY", "LLMW_S3_SECRET_KEY"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"key": key, "name": "mc"}, name
        # Only the openai shards get the endpoint's key, and only if the Secret has one.
        if name == "infer-shard-openai":
            reference = env["LLMW_LLM_API_KEY"]["valueFrom"]["secretKeyRef"]
            assert reference == {"key": "LLMW_LLM_API_KEY", "name": "llm", "optional": True}
        else:
            assert "LLMW_LLM_API_KEY" not in env, name


def test_openai_shards_keep_their_secret_when_placed(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Placing the openai shards (here: pinned to elminster's CPU) adds a node, never drops the
    endpoint's key."""
    from components.settings import Settings

    job = JOBS[NAME]
    pinned = GpuNeed(framework="transformers", gpu=False, node="elminster")
    needs = {**job.step_needs, shard_step("openai"): pinned}
    monkeypatch.setitem(JOBS, NAME, dataclasses.replace(job, step_needs=needs))
    templates = templates_by_name(render_template(NAME, Settings(llm_credentials_secret="llm")))
    openai = templates["infer-shard-openai"]
    assert openai["nodeSelector"] == {"kubernetes.io/hostname": "elminster"}
    env = {e["name"]: e for e in openai["script"]["env"]}
    reference = env["LLMW_LLM_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert reference == {"key": "LLMW_LLM_API_KEY", "name": "llm", "optional": True}
    assert "LLMW_S3_ACCESS_KEY" in env
