"""`llmw collections`: the alias and its generations after an ingest and after a promoted
rollout, a plain collection made before aliases, a missing database. Milvus Lite holds a
database file per process, so every side (ingest, rollout, the command) runs in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.components.rollout_lab import Lab, make_lab, second_models_at
from tests.conftest import REPO
from tests.llmw.test_ingest_cli import llmw
from tests.llmw.test_rollout_embeddings_cli import INGEST_AND_ROLL_OUT

MINILM = "documents__all_minilm_l6_v2__1"
PLAIN_THEN_INGEST = """
import sys
from components.ingest.models import IngestParams
from components.ingest.run import ingest
from components.settings import get_settings
from components.storage.milvus import ChunkStore

store = ChunkStore(get_settings().milvus_uri, "documents")  # the layout before aliases
store.ensure(384)
store.close()
ingest(IngestParams(source=sys.argv[1]), get_settings())
"""


def env_of(lab: Lab, tmp_path: Path) -> dict[str, str]:
    return {
        "LLMW_MILVUS_URI": lab.uri,
        "LLMW_RUN_DATA_URI": str(tmp_path / "runs"),
        "LLMW_PARTITION_WORKERS": "0",
        "COLUMNS": "250",  # a wide terminal: rich shortens cells to fit 80 columns otherwise
    }


def python(code: str, *args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def collections(env: dict[str, str]) -> dict[str, Any]:
    result = llmw("collections", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def by_name(inventory: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in inventory["collections"]}


def test_after_an_ingest_the_alias_serves_generation_1(tmp_path: Path, make_settings: Any) -> None:
    lab = make_lab(tmp_path, make_settings, ingested=False)
    env = env_of(lab, tmp_path)
    ingested = llmw("ingest", str(lab.docs), "--json", env=env)
    assert ingested.returncode == 0, ingested.stderr

    inventory = collections(env)
    assert inventory["uri"] == lab.uri
    assert inventory["aliases"] == [{"alias": "documents", "collection": MINILM}]
    entry = by_name(inventory)[MINILM]
    assert list(by_name(inventory)) == [MINILM]  # no manifest, no lock listed
    assert entry["kind"] == "generation" and entry["live"] and entry["generation"] == 1
    assert entry["alias"] == "documents" and entry["state"] == "ready"
    assert entry["model"].endswith("all-MiniLM-L6-v2") and entry["dimension"] == 384
    assert entry["documents"] == len(lab.files) and entry["rows"] >= len(lab.files)
    assert entry["created_at"] > 1_700_000_000

    table = llmw("collections", env=env)  # a rich table on a terminal
    assert table.returncode == 0, table.stderr
    for words in ("alias", "documents", MINILM, "live", "384"):
        assert words in table.stdout, table.stdout


def test_after_a_promoted_rollout_two_generations_and_the_alias_on_the_new(
    tmp_path: Path, make_settings: Any
) -> None:
    models = second_models_at(tmp_path.parent)
    lab = make_lab(tmp_path, make_settings, ingested=False)
    env = env_of(lab, tmp_path)
    args = [str(lab.docs), "--model", models["projected"], "--queries", str(lab.queries)]
    python(INGEST_AND_ROLL_OUT, *args, env=env)

    inventory = collections(env)
    new = "documents__projected128__2"
    assert inventory["aliases"] == [{"alias": "documents", "collection": new}]
    entries = by_name(inventory)
    assert list(entries) == [new, MINILM]  # the live one first, then the one kept
    assert entries[new]["live"] and entries[new]["dimension"] == 128
    assert entries[new]["model"] == models["projected"] and entries[new]["generation"] == 2
    assert not entries[MINILM]["live"] and entries[MINILM]["dimension"] == 384
    assert entries[MINILM]["state"] == "ready"
    assert entries[new]["rows"] == entries[MINILM]["rows"] > 0
    assert entries[new]["documents"] == entries[MINILM]["documents"] == len(lab.files)

    table = llmw("collections", env=env)
    assert table.returncode == 0, table.stderr
    assert "kept" in table.stdout and "live" in table.stdout and "128" in table.stdout


def test_a_plain_collection_made_before_aliases_is_marked(
    tmp_path: Path, make_settings: Any
) -> None:
    lab = make_lab(tmp_path, make_settings, ingested=False)
    env = env_of(lab, tmp_path)
    python(PLAIN_THEN_INGEST, str(lab.docs), env=env)

    inventory = collections(env)
    assert inventory["aliases"] == []
    [entry] = inventory["collections"]
    assert entry["name"] == "documents" and entry["kind"] == "plain"
    assert entry["alias"] is None and entry["model"] is None and entry["dimension"] == 384
    assert entry["documents"] == len(lab.files) and entry["rows"] > 0

    table = llmw("collections", env=env)
    assert table.returncode == 0, table.stderr
    assert "made before aliases" in table.stdout


def test_a_missing_database_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "milvus.db"
    result = llmw("collections", "--milvus-uri", str(missing))
    assert result.returncode == 2, result.stderr
    assert f"no Milvus Lite database at {missing}; ingest first" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.exists()


@pytest.mark.parametrize("args", [["--help"], ["collections", "--help"]])
def test_help_names_the_command(args: list[str]) -> None:
    result = llmw(*args)
    assert result.returncode == 0, result.stderr
    assert "collections" in result.stdout
