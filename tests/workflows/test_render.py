"""Rendering the WorkflowTemplates: goldens, determinism, strict validation, placement, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.orchestration.schema_validation import SchemaViolationError, validate_document
from components.registry import JOBS, UnknownPipelineError
from workflows import render
from workflows.registry import TEMPLATES, template_arguments
from workflows.render import SCHEMA_FILE, render_all, render_template, render_text, to_yaml

NAME = "document-ingestion"
JOB = JOBS[NAME]
REPO = Path(__file__).resolve().parents[2]


def templates_by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in document["spec"]["templates"]}


def env_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in template["script"].get("env", [])}


def test_every_job_has_a_template() -> None:
    assert set(TEMPLATES) == set(JOBS)


@pytest.mark.parametrize("name", sorted(JOBS))
def test_golden(name: str, default_settings: Any, schemas_dir: Path, golden: Any) -> None:
    golden(f"argo/{name}.argo.yaml", render_text(name, default_settings, schemas_dir))


def test_render_all_is_byte_identical_across_runs(
    default_settings: Any, schemas_dir: Path, tmp_path: Path
) -> None:
    first = render_all(tmp_path / "a", default_settings, schemas_dir)
    second = render_all(tmp_path / "b", default_settings, schemas_dir)
    names = [f"{name}.argo.yaml" for name in sorted(JOBS)]
    assert [p.name for p in first] == [*names, render.RBAC_FILE]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    # The file is the document: YAML parses back to what Hera built.
    for path in first[:-1]:
        name = path.name.removesuffix(".argo.yaml")
        assert yaml.safe_load(path.read_text()) == render_template(name, default_settings)


def test_every_rendered_document_is_strictly_valid(
    default_settings: Any, schemas_dir: Path
) -> None:
    for name in sorted(JOBS):
        document = render_template(name, default_settings)
        assert validate_document(document, schemas_dir / SCHEMA_FILE) == []


def test_render_all_fails_loudly_and_writes_nothing_on_a_violation(
    default_settings: Any, schemas_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = render.render_template

    def misspelt(name: str, settings: Any = None) -> dict[str, Any]:
        document = real(name, settings)
        document["spec"]["templates"][0]["script"]["imagee"] = "oops"
        return document

    monkeypatch.setattr(render, "render_template", misspelt)
    with pytest.raises(SchemaViolationError, match=r"script\.imagee: additional property"):
        render_all(tmp_path / "out", default_settings, schemas_dir)
    assert not (tmp_path / "out").exists()


def test_a_missing_schema_is_named(default_settings: Any, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=SCHEMA_FILE):
        render_all(tmp_path / "out", default_settings, tmp_path / "no-schemas")


def test_unknown_template_lists_the_known_ones(default_settings: Any) -> None:
    with pytest.raises(UnknownPipelineError, match=NAME):
        render_template("no-such-pipeline", default_settings)


def test_shape_fan_out_retries_and_arguments(default_settings: Any) -> None:
    document = render_template(NAME, default_settings)
    spec = document["spec"]
    assert document["kind"] == "WorkflowTemplate"
    assert document["metadata"]["namespace"] == default_settings.argo_namespace == "ai-ml"
    assert spec["arguments"]["parameters"] == [
        {"description": "a folder, a file, or s3://bucket/prefix", "name": "source"},
        {"description": "Milvus collection", "name": "collection", "value": "documents"},
        {
            "description": "Milvus server URL; empty for the cluster's Milvus",
            "name": "milvus_uri",
            "value": "",
        },
        {
            "description": "delete documents that are gone from the source",
            "enum": ["false", "true"],
            "name": "prune",
            "value": "false",
        },
        {
            "description": "W3C traceparent of the request's trace (set by llmw; empty: untraced)",
            "name": "traceparent",
            "value": "",
        },
    ]
    templates = templates_by_name(document)
    main = templates[spec["entrypoint"]]
    assert main["parallelism"] == JOB.shard_parallelism == 4
    (plan,), (ingest,), (report,) = main["steps"]
    assert [plan["name"], ingest["name"], report["name"]] == ["plan", "ingest-shard", "report"]
    # Each shard gets its spec's fields: its I/N and the URI of the listing the plan wrote.
    assert ingest["withParam"] == "{{steps.plan.outputs.result}}"
    assert {"name": "shard", "value": "{{item.shard}}"} in ingest["arguments"]["parameters"]
    assert {"name": "listing", "value": "{{item.listing}}"} in ingest["arguments"]["parameters"]
    # Each shard leaves its report where its spec says, under the run's uid; the report step
    # reads them there: it gets only the planned specs (and the listing it prunes against).
    assert {"name": "report", "value": "{{item.report}}"} in ingest["arguments"]["parameters"]
    assert {"name": "run_id", "value": "{{workflow.uid}}"} in plan["arguments"]["parameters"]
    assert "shard_reports" not in {p["name"] for p in report["arguments"]["parameters"]}
    assert {
        "name": "planned",
        "value": "{{steps.plan.outputs.result}}",
    } in report["arguments"]["parameters"]
    # The job's retry policies, as Argo's.
    for name, policy in [
        ("plan", JOB.retries.plan),
        ("ingest-shard", JOB.retries.shard),
        ("report", JOB.retries.finish),
    ]:
        assert templates[name]["retryStrategy"] == {
            "backoff": {
                "cap": f"{policy.max_backoff_s}s",
                "duration": f"{policy.backoff_s}s",
                "factor": policy.factor,
            },
            "limit": policy.limit,
            # A failed container (evicted, preempted, a service that blinked), but not bad
            # input: a step refusing its input exits 2.
            "expression": "asInt(lastRetry.exitCode) != 2",
            "retryPolicy": "OnFailure",
        }, name
    assert templates["ingest-shard"]["retryStrategy"]["backoff"]["cap"] == "1800s"
    # Thin Hera runner steps calling the step functions, on the component image.
    for name, function in [("plan", "plan"), ("ingest-shard", "ingest_shard")]:
        script = templates[name]["script"]
        assert script["command"] == ["python"]
        assert script["args"] == [
            "-m",
            "hera.workflows.runner",
            "-e",
            f"workflows.ingestion:{function}",
        ]
        assert script["source"] == "{{inputs.parameters}}"
    assert templates["plan"]["script"]["image"] == default_settings.component_image
    # No exit handler: Argo keeps how the run ended (llmw status reads it there).
    assert "onExit" not in spec and "exit-handler" not in templates
    # The Markdown summary goes to MinIO under the workflow's name, as plain text.
    (artifact,) = templates["report"]["outputs"]["artifacts"]
    assert artifact["s3"] == {"key": "document-ingestion/{{workflow.name}}/summary.md"}
    assert artifact["archive"] == {"none": {}}


def test_gpu_placement_on_the_embedding_step_only(default_settings: Any) -> None:
    templates = templates_by_name(render_template(NAME, default_settings))
    ingest = templates["ingest-shard"]
    assert ingest["nodeSelector"] == {"kubernetes.io/hostname": "drizzt"}
    assert ingest["script"]["resources"] == {
        "limits": {"cpu": "4", "memory": "8Gi", "amd.com/gpu": "1"},
        "requests": {"cpu": "1", "memory": "4Gi"},
    }
    assert env_of(ingest)["HSA_OVERRIDE_GFX_VERSION"] == {
        "name": "HSA_OVERRIDE_GFX_VERSION",
        "value": "10.3.0",
    }
    assert ingest["script"]["image"].endswith("-rocm")
    for name in ("plan", "report"):
        assert "nodeSelector" not in templates[name]
        assert templates[name]["script"]["resources"] == {
            "limits": {"cpu": "1", "memory": "2Gi"},
            "requests": {"cpu": "250m", "memory": "512Mi"},
        }
        assert "HSA_OVERRIDE_GFX_VERSION" not in env_of(templates[name])


def test_placement_follows_the_inventory(clean_env: None, tmp_path: Path) -> None:
    from components.settings import Settings

    shipped = (
        Path(__file__).resolve().parents[2] / "components" / "cluster" / "data" / "cluster.yaml"
    )
    inventory = yaml.safe_load(shipped.read_text())
    inventory["default_nodes"]["sentence-transformers"] = "elminster"
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(inventory))
    templates = templates_by_name(render_template(NAME, Settings(cluster_inventory=path)))
    ingest = templates["ingest-shard"]
    assert ingest["nodeSelector"] == {"kubernetes.io/hostname": "elminster"}
    assert ingest["script"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "HSA_OVERRIDE_GFX_VERSION" not in env_of(ingest)
    assert ingest["script"]["image"].endswith("-cuda")


def test_credentials_come_from_secrets_never_values(clean_env: None) -> None:
    from components.settings import Settings

    literals = ["AKIA-LITERAL-ACCESS", "literal-s3-secret", "literal-milvus-token", "argo-tok"]
    settings = Settings(
        s3_access_key=literals[0],
        s3_secret_key=literals[1],
        milvus_token=literals[2],
        argo_token=literals[3],
        s3_credentials_secret="minio-creds",
        milvus_credentials_secret="milvus-creds",
        cluster_milvus_uri="http://milvus.example:19530",
    )
    document = render_template(NAME, settings)
    text = to_yaml(document)
    for literal in literals:
        assert literal not in text
    templates = templates_by_name(document)
    for name in ("plan", "ingest-shard", "report"):
        env = env_of(templates[name])
        for key in ("LLMW_S3_ACCESS_KEY", "LLMW_S3_SECRET_KEY"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"key": key, "name": "minio-creds"}
            assert "value" not in env[key]
    for name in ("ingest-shard", "report"):
        env = env_of(templates[name])
        assert env["LLMW_MILVUS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "key": "LLMW_MILVUS_TOKEN",
            "name": "milvus-creds",
            "optional": True,
        }
        assert env["LLMW_MILVUS_URI"]["value"] == "http://milvus.example:19530"
        assert "LLMW_RUN_DATA_URI" not in env  # they get the listing's URI itself
    assert "LLMW_MILVUS_URI" not in env_of(templates["plan"])
    # The plan writes the listing where the run's other steps read it.
    assert env_of(templates["plan"])["LLMW_RUN_DATA_URI"] == {
        "name": "LLMW_RUN_DATA_URI",
        "value": settings.cluster_run_data_uri,
    }


def test_template_arguments_are_checked_and_stringified() -> None:
    from components.registry import ParameterError

    assert template_arguments(NAME, {"source": "s3://docs/a", "prune": True}) == {
        "source": "s3://docs/a",
        "collection": "documents",
        "milvus_uri": "",
        "prune": "true",
    }
    with pytest.raises(ParameterError, match="unknown parameter 'colection'"):
        template_arguments(NAME, {"source": "x", "colection": "c"})


# Renders every registered template in a fresh interpreter and prints {name: YAML} as JSON.
RENDER_ALL = """
import json, sys
from components.registry import JOBS
from components.settings import Settings
from workflows.render import render_text

json.dump({n: render_text(n, Settings(), sys.argv[1]) for n in sorted(JOBS)}, sys.stdout)
"""


def render_in_a_fresh_process(schemas_dir: Path, hash_seed: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMW_")}
    env["PYTHONHASHSEED"] = hash_seed  # another iteration order of every set and dict of str
    result = subprocess.run(
        [sys.executable, "-c", RENDER_ALL, str(schemas_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rendered: dict[str, str] = json.loads(result.stdout)
    return rendered


def test_render_is_byte_identical_across_processes(
    default_settings: Any, schemas_dir: Path
) -> None:
    """Independent renders, in processes with different hash seeds and at different times, give
    the same bytes: nothing unordered (a set, a hash-ordered mapping) or of the moment (a
    timestamp, a random name) reaches the output."""
    first = render_in_a_fresh_process(schemas_dir, hash_seed="1")
    second = render_in_a_fresh_process(schemas_dir, hash_seed="2")
    assert sorted(first) == sorted(JOBS)
    for name in sorted(JOBS):
        assert first[name] == second[name], name
        assert first[name] == render_text(name, default_settings, schemas_dir), name
