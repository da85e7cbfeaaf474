"""Ingestion parameters as `-p KEY=VALUE` gives them: an empty value is a value, refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.ingest.models import IngestParams
from components.registry import ParameterError, get_job, parse_assignments
from tests.llmw.test_ingest_cli import llmw


def test_an_empty_value_is_the_empty_string_not_json() -> None:
    assert parse_assignments(["source="]) == {"source": ""}
    assert parse_assignments(["source=", "prune=[1]"]) == {"source": "", "prune": [1]}
    assert parse_assignments(["a={}"]) == {"a": {}}
    with pytest.raises(ParameterError, match=r"parameter a: '\{' is not valid JSON"):
        parse_assignments(["a={"])


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_source_is_refused_by_the_model_naming_source(value: str) -> None:
    with pytest.raises(ParameterError) as refused:
        get_job("document-ingestion").validate({"source": value})
    assert "source: must not be empty" in str(refused.value)
    with pytest.raises(ValueError, match="must not be empty"):
        IngestParams(source=value)


def test_llmw_run_with_an_empty_source_exits_2_and_runs_nothing(tmp_path: Path) -> None:
    env = {"LLMW_RUN_DATA_URI": str(tmp_path / "runs"), "LLMW_MILVUS_URI": str(tmp_path / "m.db")}
    result = llmw(
        "run", "document-ingestion", "-p", "source=", "--engine", "kfp-local", env=env, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "source: must not be empty" in result.stderr
    assert "JSON" not in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing ran, nothing was written"
