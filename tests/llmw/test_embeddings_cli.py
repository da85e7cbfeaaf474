"""`llmw embeddings export|default`: bad input, a refusal with the table and nothing written,
an export loaded by path, the default, light imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from components.embedding_export.manifest import MANIFEST_NAME, read_manifest
from tests.conftest import REPO

HEAVY = ("torch", "openvino", "onnxruntime", "sentence_transformers", "pymilvus")


def llmw(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmw.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.parametrize("args", [["embeddings", "--help"], ["embeddings", "export", "--help"]])
def test_help_does_not_import_heavy_libraries(args: list[str]) -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from llmw.cli import app; "
        f"r = CliRunner().invoke(app, {args!r}); assert r.exit_code == 0, r.output; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--quantize", "int4"], "--quantize none|int8|bf16, not int4"),
        (["--backend", "tensorrt"], "--backend onnx|openvino"),
        (["--backend", "onnx", "--quantize", "bf16"], "no onnx bf16 export"),
    ],
)
def test_bad_options_are_refused_with_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    result = llmw("embeddings", "export", *args, "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_export_writes_a_folder_that_ingestion_loads_by_path(tmp_path: Path) -> None:
    out = tmp_path / "minilm-onnx-int8"
    result = llmw(
        "embeddings",
        "export",
        "--backend",
        "onnx",
        "--quantize",
        "int8",
        "--out",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["exported"] == str(out) and report["gate"]["passed"]
    assert [row[0] for row in report["gate"]["table"][1:3]] == ["recall@5", "MRR@10"]
    manifest = read_manifest(out)
    assert (manifest.backend, manifest.precision, manifest.quality.queries) == ("onnx", "int8", 158)

    search = llmw(
        "ingest",
        str(REPO / "examples" / "docs" / "milvus-rag.md"),
        "--milvus-uri",
        str(tmp_path / "m.db"),
        "--json",
        env={"LLMW_EMBEDDING_MODEL": str(out)},
    )
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)["chunks"] > 0


def test_a_refused_export_prints_the_table_exits_3_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm: Any
) -> None:
    from components.embedding_export import export as export_module
    from components.embedding_export import gate as gate_module
    from llmw.cli import app
    from tests.embedding_exports import scrambled_copy, small_gate_set

    broken = scrambled_copy(tmp_path / "scrambled")
    real_export = export_module.export_onnx
    monkeypatch.setattr(
        export_module, "export_onnx", lambda _src, out: real_export(str(broken), out)
    )
    gate_set = small_gate_set()
    monkeypatch.setattr(export_module, "shipped_gate_set", lambda: gate_set)
    monkeypatch.setattr(gate_module, "shipped_gate_set", lambda: gate_set)
    out = tmp_path / "refused"
    result = CliRunner().invoke(
        app, ["embeddings", "export", "--quantize", "none", "--out", str(out)]
    )
    assert result.exit_code == 3, result.output
    assert "| recall@5 | " in result.output and "Gate FAILED" in result.output
    assert "refused by the quality gate" in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".llmw-export-")]
    assert not (out / MANIFEST_NAME).exists()


def test_default_exports_the_fastest_gated_runtime_once(tmp_path: Path) -> None:
    env = {"LLMW_EMBEDDING_CACHE_DIR": str(tmp_path / "cache")}
    first = llmw("embeddings", "default", "--json", env=env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["choice"] == "openvino bf16" and report["refused"] == []
    assert read_manifest(Path(report["folder"])).quality.passed
    again = llmw("embeddings", "default", env=env)
    assert again.returncode == 0 and "default embedding runtime: openvino bf16" in again.stdout
    assert "exporting" not in again.stderr  # cached: no second export
