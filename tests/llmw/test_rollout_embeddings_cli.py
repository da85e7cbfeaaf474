"""`llmw rollout embeddings`: exit codes 0 promoted, 3 rolled back, 2 refused; the gate table;
`llmw search` through the alias after a switch. The command is registered on the `rollout`
sub-app elsewhere; here it runs through a one-command typer app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from llmw.rollout_embeddings import rollout_embeddings_command
from tests.components.rollout_lab import Lab, make_lab, second_models_at
from tests.conftest import REPO
from tests.llmw.test_ingest_cli import HEAVY, llmw

app = typer.Typer(add_completion=False)
app.command()(rollout_embeddings_command)


@pytest.fixture(scope="module")
def second_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return second_models_at(tmp_path_factory.getbasetemp())


@pytest.fixture
def lab(tmp_path: Path, make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    made = make_lab(tmp_path, make_settings)
    for name, value in (("MILVUS_URI", made.uri), ("RUN_DATA_URI", str(tmp_path / "runs"))):
        monkeypatch.setenv(f"LLMW_{name}", value)
    monkeypatch.setenv("LLMW_PARTITION_WORKERS", "0")
    from components.settings import get_settings

    get_settings.cache_clear()
    yield made
    get_settings.cache_clear()


def rollout(lab: Lab, model: str, *args: str) -> Any:
    return CliRunner().invoke(
        app, ["--model", model, "--queries", str(lab.queries), "--top-k", "3", *args]
    )


def test_help_loads_no_heavy_library() -> None:
    code = (
        "import sys, typer; from typer.testing import CliRunner; "
        "from llmw.rollout_embeddings import rollout_embeddings_command as c; "
        "app = typer.Typer(); app.command()(c); r = CliRunner().invoke(app, ['--help']); "
        "assert r.exit_code == 0 and '--max-recall-drop' in r.output, r.output; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_promoted_exits_0_with_the_report_as_json(lab: Lab, second_models: dict[str, str]) -> None:
    result = rollout(lab, second_models["projected"], "--json", "--keep", "0")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["outcome"] == "promoted" and report["live"] == "documents__projected128__2"
    assert report["dropped"] == ["documents__all_minilm_l6_v2__1"]
    assert report["gate"]["passed"] and report["gate"]["k"] == 3
    assert Path(report["report_uri"]).is_file()


def test_a_failed_gate_exits_3_prints_the_table_and_rolls_back(
    lab: Lab, second_models: dict[str, str]
) -> None:
    result = rollout(lab, second_models["scrambled"], "--max-recall-drop", "0.1")
    assert result.exit_code == 3, result.output
    assert "gate failed (recall@3" in result.stderr
    assert "rolled back: alias 'documents' serves documents__all_minilm_l6_v2__1" in result.stderr
    for words in ("recall@3", "MRR@3", "latency p95 ms", "documents__scrambled__2", ">= 0.900"):
        assert words in result.stdout, result.stdout
    assert lab.target() == "documents__all_minilm_l6_v2__1"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "/nowhere/model", "--queries", "QUERIES"], "'/nowhere/model'"),
        (["--model", "M", "--queries", "/nowhere/q.jsonl"], "/nowhere/q.jsonl: no such file"),
        (["--model", "M", "--queries", "QUERIES", "--alias", "bad-name"], "alias"),
        (["--model", "M", "--queries", "QUERIES", "--keep", "-1"], "--keep"),
        (["--queries", "QUERIES"], "--model"),
    ],
)
def test_refusals_exit_2_and_name_the_problem(lab: Lab, args: list[str], words: str) -> None:
    args = [str(lab.queries) if a == "QUERIES" else a for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert lab.target() == "documents__all_minilm_l6_v2__1"


# Ingest, then roll out through the command, in one process (Milvus Lite: one per database).
INGEST_AND_ROLL_OUT = """
import sys, typer
from components.ingest.models import IngestParams
from components.ingest.run import ingest
from components.settings import get_settings
from llmw.errors import run_cli
from llmw.rollout_embeddings import rollout_embeddings_command

ingest(IngestParams(source=sys.argv[1]), get_settings())
app = typer.Typer()
app.command()(rollout_embeddings_command)
sys.argv = ["llmw-rollout-embeddings", *sys.argv[2:]]
run_cli(app)
"""
MAKE_MODEL_UNAVAILABLE = """
import sys
from pymilvus import MilvusClient
client = MilvusClient(sys.argv[1])
client.alter_collection_properties(sys.argv[2], properties={"llmw.model": "/gone/model"})
"""


def test_search_after_a_switch_embeds_with_the_model_the_alias_points_to(
    tmp_path: Path, make_settings: Any, second_models: dict[str, str]
) -> None:
    lab = make_lab(tmp_path, make_settings, ingested=False)
    env = {
        "LLMW_MILVUS_URI": lab.uri,
        "LLMW_RUN_DATA_URI": str(tmp_path / "runs"),
        "LLMW_PARTITION_WORKERS": "0",
    }
    args = [str(lab.docs), "--model", second_models["projected"], "--queries", str(lab.queries)]
    rolled = subprocess.run(
        [sys.executable, "-c", INGEST_AND_ROLL_OUT, *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rolled.returncode == 0, rolled.stderr[-3000:]
    assert "promoted: alias documents -> documents__projected128__2" in rolled.stdout
    assert "| recall@5" not in rolled.stdout and "recall@5" in rolled.stdout  # a rich table

    # LLMW_EMBEDDING_MODEL still says MiniLM (384-d); the alias's collection holds 128-d vectors.
    found = llmw("search", "How is nigiri made?", "--json", "--top-k", "1", env=env)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["source_uri"].endswith("/sushi.txt")

    made = subprocess.run(
        [sys.executable, "-c", MAKE_MODEL_UNAVAILABLE, lab.uri, "documents__projected128__2"],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    refused = llmw("search", "How is nigiri made?", env=env)
    assert refused.returncode == 2, refused.stderr
    assert "'/gone/model'" in refused.stderr and "not available here" in refused.stderr
    assert "Traceback" not in refused.stderr
