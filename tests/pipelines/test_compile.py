"""Compiling the KFP pipelines: goldens, determinism, secrets, placement, strict IR checks."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.registry import JOBS
from pipelines.common import LOCAL_SHARD_PARALLELISM
from pipelines.compiler import (
    PipelineSpecError,
    check_ir,
    compile_all,
    compile_pipeline,
    compile_text,
)
from pipelines.registry import PIPELINES, pipeline_arguments

NAME = "document-ingestion"
JOB = JOBS[NAME]


def documents(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = list(yaml.safe_load_all(text))
    return spec, platform


def test_registry_maps_every_job() -> None:
    assert set(PIPELINES) == set(JOBS)


@pytest.mark.parametrize("name", sorted(JOBS))
def test_compile_matches_golden(name: str, default_settings: Any, golden: Any) -> None:
    golden(f"kfp/{name}.kfp.yaml", compile_text(name, default_settings))


def test_compile_twice_is_byte_identical(default_settings: Any, tmp_path: Path) -> None:
    first = compile_all(tmp_path / "a", default_settings)
    second = compile_all(tmp_path / "b", default_settings)
    assert [p.name for p in first] == [f"{name}.kfp.yaml" for name in sorted(JOBS)]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_secrets_come_from_kubernetes_secrets_never_values(clean_env: None) -> None:
    from components.settings import Settings

    literal: dict[str, Any] = {
        "s3_access_key": "AKIA-literal-access-key",
        "s3_secret_key": "literal-s3-secret-value",
        "milvus_token": "root:literal-milvus-token",
        "kfp_token": "literal-kfp-token",
        "embedding_api_key": "literal-embedding-key",
    }
    settings = Settings(
        **literal,
        s3_credentials_secret="team-minio",
        milvus_credentials_secret="team-milvus",
    )
    text = compile_text(NAME, settings)
    for value in literal.values():
        assert value not in text
    _, platform = documents(text)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-plan", "exec-ingest-shard", "exec-report"}
    for label, config in executors.items():
        mounted = {s["secretName"]: s for s in config["secretAsEnv"]}
        s3 = mounted["team-minio"]
        assert {(k["secretKey"], k["envVar"]) for k in s3["keyToEnv"]} == {
            ("LLMW_S3_ACCESS_KEY", "LLMW_S3_ACCESS_KEY"),
            ("LLMW_S3_SECRET_KEY", "LLMW_S3_SECRET_KEY"),
        }
        if label == "exec-plan":  # listing needs MinIO only
            assert "team-milvus" not in mounted
        else:
            milvus = mounted["team-milvus"]
            assert milvus["keyToEnv"] == [
                {"envVar": "LLMW_MILVUS_TOKEN", "secretKey": "LLMW_MILVUS_TOKEN"}
            ]
            assert milvus["optional"] is True


def test_pipeline_shape_caching_and_retries(default_settings: Any) -> None:
    spec = check_ir(compile_text(NAME, default_settings), NAME)
    assert spec.pipeline_info.name == NAME
    # The job's parameters, and the run's trace context (set by llmw, never by a request).
    expected = [*JOBS[NAME].parameter_names(), "traceparent"]
    assert sorted(spec.root.input_definitions.parameters) == sorted(expected)
    tasks = spec.root.dag.tasks
    assert set(tasks) == {"plan", "for-loop-1", "report"}
    loop = tasks["for-loop-1"]
    assert loop.iterator_policy.parallelism_limit == JOB.shard_parallelism == 4
    assert loop.parameter_iterator.items.input_parameter == "pipelinechannel--plan-Output"
    shard = spec.components["comp-for-loop-1"].dag.tasks["ingest-shard"]
    everything = {
        "plan": (tasks["plan"], JOB.retries.plan),
        "ingest": (shard, JOB.retries.shard),
        "report": (tasks["report"], JOB.retries.finish),
    }
    for step, (task, policy) in everything.items():
        assert not task.caching_options.enable_cache, step
        # The job's retry policy, as KFP's.
        retry = task.retry_policy
        assert retry.max_retry_count == policy.limit, step
        assert retry.backoff_duration.seconds == policy.backoff_s, step
        assert retry.backoff_factor == policy.factor, step
        assert retry.backoff_max_duration.seconds == policy.max_backoff_s, step
    # Each shard gets its spec's fields from the loop item: its I/N and the listing's URI.
    inputs = shard.inputs.parameters
    for field in ("shard", "listing"):
        assert inputs[field].parameter_expression_selector == f'parseJson(string_value)["{field}"]'
    # The report step gets the planned specs (the listing it prunes against).
    planned = tasks["report"].inputs.parameters["planned"].task_output_parameter
    assert (planned.producer_task, planned.output_parameter_key) == ("plan", "Output")
    report_outputs = spec.components["comp-report"].output_definitions.artifacts
    assert report_outputs["metrics"].artifact_type.schema_title == "system.Metrics"
    assert report_outputs["summary"].artifact_type.schema_title == "system.Markdown"
    # Each shard's report is an artifact (the UI's lineage), which the report step collects.
    shard_outputs = spec.components["comp-ingest-shard"].output_definitions
    assert shard_outputs.artifacts["shard_report"].artifact_type.schema_title == "system.Artifact"
    assert not shard_outputs.parameters  # nothing travels as a parameter
    shard_reports = tasks["report"].inputs.artifacts["shard_reports"]
    assert shard_reports.task_output_artifact.producer_task == "for-loop-1"
    assert "shard_reports" not in tasks["report"].inputs.parameters


def test_components_run_the_images_code_and_use_the_settings_image(clean_env: None) -> None:
    from components.settings import Settings

    settings = Settings(
        component_image="registry.lab/llmw:test",
        cluster_milvus_uri="http://m:1",
        cluster_run_data_uri="s3://team-runs/llmw",
    )
    spec, _ = documents(compile_text(NAME, settings))
    executors = spec["deploymentSpec"]["executors"]
    for label, executor in executors.items():
        container = executor["container"]
        if label != "exec-ingest-shard":  # the embedding step: the placement's image
            assert container["image"] == "registry.lab/llmw:test"
        # The image's own code, by the function's name: no source in the IR, no pip install.
        assert container["command"] == ["python3", "-m", "kfp.dsl.executor_main"], label
        assert container["args"] == [
            "--executor_input",
            "{{$}}",
            "--function_to_execute",
            label.removeprefix("exec-").replace("-", "_"),
        ]
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        if label == "exec-plan":  # it writes the listing where the run's other steps read it
            assert "LLMW_MILVUS_URI" not in env
            assert env["LLMW_RUN_DATA_URI"] == "s3://team-runs/llmw"
        else:
            assert env["LLMW_MILVUS_URI"] == "http://m:1"
            assert "LLMW_RUN_DATA_URI" not in env  # they get the listing's URI itself


def test_compile_pipeline_writes_the_named_file(default_settings: Any, tmp_path: Path) -> None:
    path = compile_pipeline(NAME, tmp_path / "out", default_settings)
    assert path == tmp_path / "out" / f"{NAME}.kfp.yaml"
    check_ir(path.read_text(), str(path))


def test_pipeline_arguments_drop_unset_values() -> None:
    assert pipeline_arguments(NAME, {"source": "s3://docs/a", "milvus_uri": None}) == {
        "source": "s3://docs/a",
        "collection": "documents",
        "prune": False,
    }


BROKEN = [
    ("pipelineInfo:", "pipelineInfoo:", 'no field named "pipelineInfoo"'),
    ("  name: document-ingestion\n", "  nmae: document-ingestion\n", "nmae"),
    ("        image: ", "        imagee: ", "imagee"),
    ("parameterType: LIST", "parameterType: LISTT", "LISTT"),
    ("          secretAsEnv:", "          secretAsEnvv:", "secretAsEnvv"),
    ("          name: comp-report\n", "          name: comp-reprot\n", "comp-reprot"),
]


@pytest.mark.parametrize(("old", "new", "named"), BROKEN, ids=[b[2] for b in BROKEN])
def test_broken_ir_is_refused_with_a_clear_error(
    default_settings: Any, old: str, new: str, named: str
) -> None:
    text = compile_text(NAME, default_settings)
    assert old in text
    broken = text.replace(old, new, 1)
    with pytest.raises(PipelineSpecError, match=named) as caught:
        check_ir(broken, "broken.kfp.yaml")
    assert str(caught.value).startswith("broken.kfp.yaml: ")


def test_ir_that_is_not_a_pipeline_is_refused() -> None:
    with pytest.raises(PipelineSpecError, match="not YAML"):
        check_ir("a: [", "x")
    with pytest.raises(PipelineSpecError, match="expected a mapping"):
        check_ir("- 1\n- 2\n", "x")
    with pytest.raises(PipelineSpecError, match="got 3 documents"):
        check_ir("a: 1\n---\nb: 2\n---\nc: 3\n", "x")


def shipped_inventory() -> dict[str, Any]:
    return yaml.safe_load((files("components.cluster") / "data" / "cluster.yaml").read_text())


def ingest_executor(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = documents(text)
    container = spec["deploymentSpec"]["executors"]["exec-ingest-shard"]["container"]
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return container, kubernetes["exec-ingest-shard"]


def test_embedding_step_is_placed_on_the_bge_node(default_settings: Any) -> None:
    text = compile_text(NAME, default_settings)
    container, config = ingest_executor(text)
    assert config["nodeSelector"] == {"labels": {"kubernetes.io/hostname": "drizzt"}}
    assert "tolerations" not in config  # drizzt has no taints
    assert container["resources"]["accelerator"]["resourceType"] == "amd.com/gpu"
    assert container["resources"]["accelerator"]["resourceCount"] == "1"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HSA_OVERRIDE_GFX_VERSION"] == "10.3.0"
    assert container["image"].endswith("-rocm")  # the project's ROCm build, from the inventory
    # Only the embedding step asks for a GPU or a node.
    spec, platform = documents(text)
    for label in ("exec-plan", "exec-report"):
        resources = spec["deploymentSpec"]["executors"][label]["container"]["resources"]
        assert "accelerator" not in resources
        assert (
            "nodeSelector"
            not in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][label]
        )


def test_every_step_has_requests_limits_and_a_timeout_from_its_profile(
    default_settings: Any,
) -> None:
    from components.orchestration.step_resources import step_resources

    spec, platform = documents(compile_text(NAME, default_settings))
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for step in ("plan", "ingest-shard", "report"):
        label = f"exec-{step}"
        wanted = step_resources(NAME, step, default_settings)
        resources = spec["deploymentSpec"]["executors"][label]["container"]["resources"]
        assert (
            resources["resourceCpuRequest"],
            resources["resourceCpuLimit"],
            resources["resourceMemoryRequest"],
            resources["resourceMemoryLimit"],
        ) == (wanted.cpu_request, wanted.cpu_limit, wanted.memory_request, wanted.memory_limit)
        assert kubernetes[label]["activeDeadlineSeconds"] == str(wanted.timeout_s)
    # The embedding step loads its model: the "model" profile, GBs of memory.
    shard = spec["deploymentSpec"]["executors"]["exec-ingest-shard"]["container"]["resources"]
    assert shard["resourceMemoryRequest"] == "4Gi"


def test_a_profile_in_the_settings_reaches_the_step(clean_env: None) -> None:
    from components.settings import Settings

    settings = Settings(
        step_profiles={"light": {"memory_limit": "3Gi", "timeout_s": 600}},
        step_profile_by_step={f"{NAME}/report": "model"},
    )
    spec, platform = documents(compile_text(NAME, settings))
    executors = spec["deploymentSpec"]["executors"]
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-plan"]["container"]["resources"]["resourceMemoryLimit"] == "3Gi"
    assert kubernetes["exec-plan"]["activeDeadlineSeconds"] == "600"
    assert executors["exec-report"]["container"]["resources"]["resourceMemoryLimit"] == "8Gi"


def test_a_quantity_kfp_refuses_names_the_step(clean_env: None) -> None:
    from components.settings import Settings

    # Kubernetes takes 1.5Gi; KFP's set_memory_limit takes whole numbers only.
    settings = Settings(step_profiles={"model": {"memory_limit": "1.5Gi", "memory_request": "1Gi"}})
    with pytest.raises(ValueError, match=f"^{NAME}/ingest-shard: .*memory"):
        compile_text(NAME, settings)


def test_placement_follows_a_replaced_inventory(clean_env: None, tmp_path: Path) -> None:
    from components.settings import Settings

    inventory = shipped_inventory()
    inventory["default_nodes"]["sentence-transformers"] = "elminster"
    elminster = next(n for n in inventory["nodes"] if n["name"] == "elminster")
    elminster["taints"] = [{"key": "gpu", "value": "nvidia", "effect": "NoSchedule"}]
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(inventory))

    text = compile_text(NAME, Settings(cluster_inventory=path))
    check_ir(text, "replaced")
    container, config = ingest_executor(text)
    assert config["nodeSelector"] == {"labels": {"kubernetes.io/hostname": "elminster"}}
    assert config["tolerations"] == [
        {"effect": "NoSchedule", "key": "gpu", "operator": "Equal", "value": "nvidia"}
    ]
    assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert "HSA_OVERRIDE_GFX_VERSION" not in {e["name"] for e in container["env"]}
    assert container["image"].endswith("-cuda")


def test_an_impossible_placement_fails_the_compile(clean_env: None, tmp_path: Path) -> None:
    from components.cluster.placement import PlacementError
    from components.settings import Settings

    inventory = shipped_inventory()
    for node in inventory["nodes"]:
        if node.get("gpu"):
            node["gpu"]["frameworks"].remove("sentence-transformers")
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(inventory))
    with pytest.raises(PlacementError, match="cannot place sentence-transformers"):
        compile_all(tmp_path / "out", Settings(cluster_inventory=path))
    assert not (tmp_path / "out").exists()


def test_local_variant_has_no_cluster_config(default_settings: Any, tmp_path: Path) -> None:
    from kfp import compiler

    from pipelines.registry import get_pipeline

    path = tmp_path / "local.yaml"
    pipeline = get_pipeline(NAME, default_settings, for_cluster=False)
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(path))
    text = path.read_text()
    spec = check_ir(text, "local")
    assert len(list(yaml.safe_load_all(text))) == 1  # no platform (Kubernetes) document
    for label, executor in spec.deployment_spec["executors"].items():
        container = executor["container"]
        assert "env" not in container and "resources" not in container, label
    loop = spec.root.dag.tasks["for-loop-1"]
    assert loop.iterator_policy.parallelism_limit == LOCAL_SHARD_PARALLELISM == 1
    for task in [spec.root.dag.tasks["plan"], spec.root.dag.tasks["report"]]:
        assert task.retry_policy.backoff_duration.seconds == 1  # locally a short backoff
