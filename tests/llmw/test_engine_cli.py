"""`llmw compile`, `run`, `submit`, `status`: one front for both engines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testing.documents import topic, write_broken, write_document
from tests.batch_runs import two_shard_job
from tests.llmw.test_ingest_cli import llmw

LOCAL_ENGINES = ("kfp-local", "argo-local")


def test_compile_writes_every_pipeline_identically_from_any_folder(tmp_path: Path) -> None:
    # The pinned schemas ship in the package: no LLMW_SCHEMAS_DIR, and a folder of its own.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = llmw("compile", "--out", str(tmp_path / "a"), cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_file())
    assert names == [
        "batch-inference.argo.yaml",
        "batch-inference.kfp.yaml",
        "document-ingestion.argo.yaml",
        "document-ingestion.kfp.yaml",
        "document-removal.argo.yaml",
        "document-removal.kfp.yaml",
        "model-rollout.argo.yaml",
        "model-rollout.kfp.yaml",
        "workflows-rbac.k8s.yaml",  # the templates' ServiceAccounts and Roles
    ]
    names.append("bridge/bridge.k8s.yaml")  # the NATS bridge's manifests
    names.append("serving/ai-inference.rayservice.yaml")  # the cluster's RayService
    sensors = sorted(p.name for p in (tmp_path / "a" / "sensors").iterdir())
    assert {"llmw-minio.eventsource.yaml", "document-created.sensor.yaml", "rbac.k8s.yaml"} <= set(
        sensors
    )
    names += [f"sensors/{name}" for name in sensors]
    second = llmw("compile", "--out", str(tmp_path / "b"))
    assert second.returncode == 0
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_compile_without_the_pinned_schemas_writes_nothing(tmp_path: Path) -> None:
    result = llmw(
        "compile",
        "--out",
        str(tmp_path / "out"),
        env={"LLMW_SCHEMAS_DIR": str(tmp_path / "nowhere")},
    )
    assert result.returncode == 2
    assert "nowhere" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unknown_pipelines_and_parameters_are_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    unknown = llmw(
        "submit",
        "ingest-everything",
        "--engine",
        "kfp",
        "-p",
        "source=x",
        env={"LLMW_KFP_HOST": "http://127.0.0.1:9"},
    )
    assert unknown.returncode == 2
    registered = (
        "(registered: batch-inference, document-ingestion, document-removal, model-rollout)"
    )
    assert f"unknown pipeline 'ingest-everything' {registered}" in unknown.stderr

    bad = llmw(
        "submit",
        "document-ingestion",
        "--engine",
        "argo",
        "-p",
        "source=x",
        "-p",
        "image=evil:latest",
        "-p",
        "prune=perhaps",
        env={"LLMW_ARGO_HOST": "http://127.0.0.1:9"},
    )
    assert bad.returncode == 2
    assert "unknown parameter 'image'" in bad.stderr
    assert "prune" in bad.stderr
    assert "(parameters: source, collection, milvus_uri, prune)" in bad.stderr

    malformed = llmw("run", "document-ingestion", "-p", "source")
    assert malformed.returncode == 2 and "not KEY=VALUE" in malformed.stderr


def test_submit_reports_an_unreachable_server_clearly() -> None:
    result = llmw(
        "submit",
        "document-ingestion",
        "--engine",
        "kfp",
        "-p",
        "source=s3://docs/x",
        env={"LLMW_KFP_HOST": "http://127.0.0.1:9"},
    )
    assert result.returncode == 1
    assert "127.0.0.1:9" in result.stderr


def test_both_local_engines_leave_what_llmw_ingest_leaves(tmp_path: Path) -> None:
    """The sample corpus through `llmw run` on each local engine and through `llmw ingest`."""
    from tests.conftest import EXAMPLE_DOCS
    from tests.milvus_rows import read_manifest, read_rows

    uris = {name: str(tmp_path / f"{name}.db") for name in ("ingest", "kfp", "argo")}
    env = {"LLMW_PARTITION_WORKERS": "0"}
    done = llmw("ingest", str(EXAMPLE_DOCS), "--milvus-uri", uris["ingest"], "--json", env=env)
    assert done.returncode == 0, done.stderr
    for engine, name in (("kfp-local", "kfp"), ("argo-local", "argo")):
        ran = llmw(
            "run",
            "document-ingestion",
            "--engine",
            engine,
            "-p",
            f"source={EXAMPLE_DOCS}",
            "-p",
            f"milvus_uri={uris[name]}",
            env=env,
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert '"new": 12' in ran.stdout
    expected_rows, expected_manifest = read_rows(uris["ingest"]), read_manifest(uris["ingest"])
    assert len(expected_rows) > 12
    for name in ("kfp", "argo"):
        assert read_rows(uris[name]) == expected_rows, name
        assert read_manifest(uris[name]) == expected_manifest, name


def run_here(
    pipeline: str, engine: str, params: dict[str, Any], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``llmw run`` in ``cwd`` (its .llmw folder lands there), partitioning inline."""
    args = [arg for key, value in params.items() for arg in ("-p", f"{key}={value}")]
    env = {"LLMW_PARTITION_WORKERS": "0"}
    return llmw("run", pipeline, "--engine", engine, *args, env=env, cwd=cwd)


@pytest.mark.parametrize("engine", LOCAL_ENGINES)
def test_run_exits_3_when_documents_failed_and_stdout_is_the_report_alone(
    tmp_path: Path, engine: str
) -> None:
    docs = tmp_path / "docs"
    write_document(docs / "ok.md", "Ok", topic("ok"))
    write_broken(docs)  # three of them fail, one is skipped
    params = {"source": docs, "milvus_uri": tmp_path / "m.db"}
    ran = run_here("document-ingestion", engine, params, tmp_path)
    assert ran.returncode == 3, ran.stderr[-3000:]
    report = json.loads(ran.stdout)  # the report, nothing else: the engine's log is on stderr
    assert report["documents"]["failed"] == 3 and report["documents"]["new"] == 3
    assert ran.stderr.strip().splitlines()[-1] == (
        "error: 3 documents failed (every other document is in)"
    )
    assert "\x1b[" not in ran.stderr  # stderr is not a terminal: no colour codes
    if engine == "kfp-local":
        assert "Executing task 'plan'" in ran.stderr


@pytest.mark.parametrize("engine", LOCAL_ENGINES)
def test_run_of_a_missing_source_says_so_in_one_line_and_exits_2(
    tmp_path: Path, engine: str
) -> None:
    missing = tmp_path / "nowhere"
    ran = run_here("document-ingestion", engine, {"source": missing}, tmp_path)
    assert ran.returncode == 2, ran.stderr[-3000:]
    assert ran.stdout == ""
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith("error: document-ingestion")
    assert last.endswith(f"plan: bad input: source {missing} does not exist (exit code 2)") or (
        engine == "kfp-local"
        and last.endswith(f"plan: bad input: source {missing} does not exist (4 attempts)")
    ), last
    if engine == "argo-local":  # not retried: Argo's retryStrategy.expression says so
        attempts = list((tmp_path / ".llmw" / "argo-local").glob("*/nodes/*plan/attempt-*"))
        assert len(attempts) == 1


@pytest.mark.parametrize("engine", LOCAL_ENGINES)
def test_run_of_batch_inference_exits_3_while_a_row_has_an_error(
    tmp_path: Path, engine: str, tiny_lm: Path
) -> None:
    params, _ = two_shard_job(tmp_path, tiny_lm)
    ran = run_here("batch-inference", engine, {**params, "shards": 1}, tmp_path)
    assert ran.returncode == 3, ran.stderr[-3000:]
    assert json.loads(ran.stdout)["errors"] == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        "error: 1 row has an error in the output (every other row is in it)"
    )


def test_one_mapping_from_a_report_to_an_exit_code() -> None:
    """The jobs' reports mean the same exit codes on `llmw run` as on `llmw ingest`/`infer`."""
    from components import exit_codes
    from components.registry import get_job
    from llmw import infer_command, ingest_commands

    ingestion, batch = get_job("document-ingestion"), get_job("batch-inference")
    removal = get_job("document-removal")
    assert ingestion.exit_status is ingest_commands.exit_status is exit_codes.ingestion_status
    assert batch.exit_status is infer_command.exit_status is exit_codes.batch_status
    assert removal.exit_status is ingest_commands.removal_status is exit_codes.removal_status
    assert removal.exit_status({"removed": 0, "not_found": 2}) == exit_codes.ExitStatus(0)
    clean = {"documents": {"failed": 0}, "prune_error": None}
    assert ingestion.exit_status(clean) == exit_codes.ExitStatus(0)
    one = ingestion.exit_status({"documents": {"failed": 1}})
    assert one == exit_codes.ExitStatus(3, "1 document failed (every other document is in)")
    refused = ingestion.exit_status({"documents": {"failed": 2}, "prune_error": "refusing"})
    assert refused == exit_codes.ExitStatus(4, "refusing")  # as llmw ingest: prune first
    assert batch.exit_status({"errors": 0}) == exit_codes.ExitStatus(0)
    assert batch.exit_status({"errors": 2}).code == 3
