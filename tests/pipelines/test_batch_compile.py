"""Compiling the batch-inference pipeline: one branch per engine, each a ParallelFor of its
placed shard task and a merge with Metrics and Markdown; secrets; the local variant."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster.placement import GpuNeed
from components.inference.models import shard_step
from components.inference.steps import ENGINE_NEEDS
from components.registry import JOBS
from pipelines.common import LOCAL_SHARD_PARALLELISM
from pipelines.compiler import check_ir, compile_text
from pipelines.registry import get_pipeline, pipeline_arguments

NAME = "batch-inference"
JOB = JOBS[NAME]


def documents(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = list(yaml.safe_load_all(text))
    return spec, platform


def shard_executor(text: str, engine: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = documents(text)
    label = f"exec-infer-shard-{engine}"
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return spec["deploymentSpec"]["executors"][label]["container"], kubernetes[label]


def branches(spec: Any) -> dict[str, Any]:
    """engine -> the component of its branch (the condition group holding its shard task)."""
    found = {}
    for component in spec.components.values():
        for task in component.dag.tasks.values():
            ref = task.component_ref.name
            if ref.startswith("comp-condition-") and not ref.startswith("comp-condition-branches"):
                loop = next(
                    t
                    for t in spec.components[ref].dag.tasks.values()
                    if t.HasField("iterator_policy")
                )
                (shard,) = spec.components[loop.component_ref.name].dag.tasks
                found[shard.removeprefix("infer-shard-")] = (task, spec.components[ref], loop)
    return found


def test_parameters_are_the_jobs(default_settings: Any) -> None:
    spec = check_ir(compile_text(NAME, default_settings), NAME)
    assert spec.pipeline_info.name == NAME
    # The job's parameters, and the run's trace context (set by llmw, never by a request).
    expected = [*JOBS[NAME].parameter_names(), "traceparent"]
    assert sorted(spec.root.input_definitions.parameters) == sorted(expected)
    assert "shard" not in spec.root.input_definitions.parameters
    assert pipeline_arguments(NAME, {"input": "s3://b/in.jsonl", "output": "o", "model": "m"}) == {
        "input": "s3://b/in.jsonl",
        "output": "o",
        "engine": "transformers",
        "model": "m",
        "concurrency": 8,
        "max_tokens": 64,
        "temperature": 0.0,
        "batch_size": 8,
        "shards": 1,
    }  # template and id_column unset: the pipeline's "" defaults apply


def test_one_branch_per_engine_each_a_parallel_for_and_a_merge(default_settings: Any) -> None:
    spec = check_ir(compile_text(NAME, default_settings), NAME)
    assert set(spec.root.dag.tasks) == {"plan-batch", "condition-branches-1"}
    found = branches(spec)
    assert sorted(found) == sorted(JOB.engines) == sorted(ENGINE_NEEDS)
    conditions = {engine: task.trigger_policy.condition for engine, (task, _, _) in found.items()}
    assert "== 'vllm'" in conditions["vllm"] and "== 'openai'" in conditions["openai"]
    assert "!(" in conditions["transformers"]  # the Else branch
    for engine, (_, branch, loop) in found.items():
        assert loop.iterator_policy.parallelism_limit == JOB.shard_parallelism == 4
        assert loop.parameter_iterator.items.input_parameter == "pipelinechannel--plan-batch-Output"
        (merge,) = [t for name, t in branch.dag.tasks.items() if name.startswith("merge")]
        # The merge collects this branch's shard reports, and gets the planned shards.
        collected = merge.inputs.parameters["shard_reports"].task_output_parameter
        assert collected.producer_task.startswith("for-loop-"), engine
        assert merge.inputs.parameters["planned"].component_input_parameter
        outputs = spec.components[merge.component_ref.name].output_definitions.artifacts
        assert outputs["metrics"].artifact_type.schema_title == "system.Metrics"
        assert outputs["summary"].artifact_type.schema_title == "system.Markdown"
        # The output stands in the UI's lineage as a Dataset.
        assert outputs["results"].artifact_type.schema_title == "system.Dataset"
        assert not merge.caching_options.enable_cache
        assert merge.retry_policy.max_retry_count == JOB.retries.finish.limit
    # The pipeline's output is the merge that ran (dsl.OneOf over the branches).
    output = spec.root.dag.outputs.parameters["Output"].value_from_parameter
    assert output.producer_subtask == "condition-branches-1"
    assert "oneof" in output.output_parameter_key


def test_vllm_shards_go_to_khelben_on_amd_gpu(default_settings: Any) -> None:
    container, config = shard_executor(compile_text(NAME, default_settings), "vllm")
    assert config["nodeSelector"] == {"labels": {"kubernetes.io/hostname": "khelben"}}
    assert config["tolerations"] == [
        {"effect": "NoSchedule", "key": "dedicated", "operator": "Equal", "value": "vllm"}
    ]
    accelerator = container["resources"]["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("amd.com/gpu", "1")
    # This project over vLLM for ROCm (the inventory's llmw-vllm), not the upstream server image.
    assert container["image"] == "ghcr.io/daviestechlabs/llm-workflows:0.1.0-vllm-rocm"


@pytest.mark.parametrize("engine", ["transformers", "openai"])
def test_cpu_engines_ask_for_no_gpu_and_no_node(default_settings: Any, engine: str) -> None:
    container, config = shard_executor(compile_text(NAME, default_settings), engine)
    assert "accelerator" not in container["resources"]
    assert "nodeSelector" not in config and "tolerations" not in config
    # openai: the component image; transformers: the inventory's CPU image for it (the same).
    assert container["image"] == default_settings.component_image


def test_secrets_never_values_and_the_component_image(clean_env: None) -> None:
    from components.settings import Settings

    literal: dict[str, Any] = {
        "s3_access_key": "AKIA-literal",
        "s3_secret_key": "literal-secret",
        "llm_api_key": "sk-literal",
    }
    settings = Settings(
        **literal,
        s3_credentials_secret="team-minio",
        llm_credentials_secret="team-llm",
        component_image="registry.lab/llmw:t",
    )
    text = compile_text(NAME, settings)
    for value in literal.values():
        assert value not in text
    spec, platform = documents(text)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"])
    for label, config in executors.items():
        mounted, *llm = config["secretAsEnv"]
        assert mounted["secretName"] == "team-minio", label
        assert {k["envVar"] for k in mounted["keyToEnv"]} == {
            "LLMW_S3_ACCESS_KEY",
            "LLMW_S3_SECRET_KEY",
        }
        # Only the openai shards get the endpoint's key, and only if the Secret has one.
        if label == "exec-infer-shard-openai":
            (key,) = llm
            assert key["secretName"] == "team-llm" and key["optional"] is True
            assert key["keyToEnv"] == [
                {"secretKey": "LLMW_LLM_API_KEY", "envVar": "LLMW_LLM_API_KEY"}
            ]
        else:
            assert llm == [], label
    for label, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        # The image's own code, by the function's name (one function per engine's shard).
        assert container["command"] == ["python3", "-m", "kfp.dsl.executor_main"], label
        function = re.sub(r"-[0-9]+$", "", label.removeprefix("exec-")).replace("-", "_")
        assert container["args"][-1] == function, label  # exec-merge-2: merge, once a branch
        if label not in ("exec-infer-shard-vllm", "exec-infer-shard-transformers"):
            assert container["image"] == "registry.lab/llmw:t", label


@pytest.mark.parametrize(
    ("engine", "memory", "timeout_s"),
    [("vllm", "16Gi", 6 * 3600), ("transformers", "4Gi", 4 * 3600), ("openai", "512Mi", 3600)],
)
def test_each_engines_shards_get_their_profile(
    default_settings: Any, engine: str, memory: str, timeout_s: int
) -> None:
    container, config = shard_executor(compile_text(NAME, default_settings), engine)
    assert container["resources"]["resourceMemoryRequest"] == memory
    assert config["activeDeadlineSeconds"] == str(timeout_s)


def test_every_step_has_requests_and_limits(default_settings: Any) -> None:
    spec, platform = documents(compile_text(NAME, default_settings))
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for label, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"]["resources"]
        for field in ("CpuRequest", "CpuLimit", "MemoryRequest", "MemoryLimit"):
            assert resources[f"resource{field}"], (label, field)
        assert int(kubernetes[label]["activeDeadlineSeconds"]) > 0, label


def test_openai_shards_keep_their_secret_when_placed(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Placing the openai shards (here: pinned to elminster's CPU) adds a node, never drops the
    endpoint's key."""
    from components.settings import Settings

    pinned = GpuNeed(framework="transformers", gpu=False, node="elminster")
    needs = {**JOB.step_needs, shard_step("openai"): pinned}
    monkeypatch.setitem(JOBS, NAME, dataclasses.replace(JOB, step_needs=needs))
    text = compile_text(NAME, Settings(llm_credentials_secret="team-llm"))
    _, config = shard_executor(text, "openai")
    assert config["nodeSelector"] == {"labels": {"kubernetes.io/hostname": "elminster"}}
    mounted = {s["secretName"]: s for s in config["secretAsEnv"]}
    assert mounted["team-llm"]["keyToEnv"] == [
        {"secretKey": "LLMW_LLM_API_KEY", "envVar": "LLMW_LLM_API_KEY"}
    ]
    assert mounted["team-llm"]["optional"] is True


def test_placement_follows_a_replaced_inventory(clean_env: None, tmp_path: Path) -> None:
    from importlib.resources import files

    from components.settings import Settings

    inventory = yaml.safe_load((files("components.cluster") / "data" / "cluster.yaml").read_text())
    inventory["default_nodes"]["vllm"] = "elminster"
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(inventory))
    container, config = shard_executor(compile_text(NAME, Settings(cluster_inventory=path)), "vllm")
    assert config["nodeSelector"] == {"labels": {"kubernetes.io/hostname": "elminster"}}
    assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert container["image"] == "ghcr.io/daviestechlabs/llm-workflows:0.1.0-vllm-cuda"


def test_local_variant_has_no_cluster_config(default_settings: Any, tmp_path: Path) -> None:
    from kfp import compiler

    path = tmp_path / "local.yaml"
    pipeline = get_pipeline(NAME, default_settings, for_cluster=False)
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(path))
    text = path.read_text()
    spec = check_ir(text, "local")
    assert len(list(yaml.safe_load_all(text))) == 1  # no platform (Kubernetes) document
    for label, executor in spec.deployment_spec["executors"].items():
        container = executor["container"]
        assert "env" not in container and "resources" not in container, label
    for _, _, loop in branches(spec).values():
        assert loop.iterator_policy.parallelism_limit == LOCAL_SHARD_PARALLELISM
