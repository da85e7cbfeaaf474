"""`llmw compile`, `run`, `submit`, `status`: one front for both engines."""

from __future__ import annotations

from pathlib import Path

from tests.llmw.test_ingest_cli import llmw


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
    ]
    names.append("bridge/bridge.k8s.yaml")  # the NATS bridge's manifests
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
    registered = "(registered: batch-inference, document-ingestion)"
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
