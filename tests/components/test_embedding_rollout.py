"""Blue/green embedding collections: the first ingest behind the alias, a rollout that changes
model and dimension, one whose model retrieves badly, catch-up, retention, search through the
alias. Milvus Lite and real sentence-transformers models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.embedding_rollout.rollout import rollout_embeddings
from components.ingest.generations import ModelUnavailableError
from components.ingest.models import IngestParams
from components.ingest.run import ingest
from components.ingest.search import search
from tests.components.rollout_lab import Lab, params
from tests.milvus_rows import read_manifest, read_rows

GEN1 = "documents__all_minilm_l6_v2__1"
GEN2 = "documents__projected128__2"


def test_a_first_ingest_makes_generation_one_behind_the_alias(lab: Lab) -> None:
    assert lab.collections() == [GEN1, GEN1 + "_documents"]
    assert lab.target() == GEN1
    properties = lab.properties(GEN1)
    rows = read_rows(lab.uri)  # through the alias
    assert len(rows) == 12 and len(read_manifest(lab.uri)) == 12
    assert properties["llmw.model"] == "all-MiniLM-L6-v2"
    assert properties["llmw.dimension"] == "384"
    assert properties["llmw.alias"] == "documents"
    assert json.loads(properties["llmw.sources"]) == [lab.docs.resolve().as_uri() + "/"]
    stored = read_rows(lab.uri, GEN1)
    assert {r["pk"] for r in stored} == {r["pk"] for r in rows}
    again = ingest(IngestParams(source=str(lab.docs)), lab.settings)
    assert again.documents.unchanged == 12 and again.chunks == 0


def test_a_rollout_to_another_model_and_dimension_switches_the_alias(
    lab: Lab, second_models: dict[str, str]
) -> None:
    projected = second_models["projected"]
    report = rollout_embeddings(params(lab, projected), lab.settings)

    assert report.outcome == "promoted", report.table
    assert (report.previous, report.candidate, report.live) == (GEN1, GEN2, GEN2)
    assert lab.target() == GEN2
    properties = lab.properties(GEN2)
    assert properties["llmw.model"] == projected and properties["llmw.dimension"] == "128"
    assert properties["llmw.state"] == "ready"
    assert report.build.new == 12 and report.catch_up[0].changes == 0
    assert report.kept == [GEN1] and report.dropped == []
    assert report.gate["passed"] and report.gate["old"]["label"] == GEN1
    assert report.gate["new"]["recall"] >= 0.9
    assert "| recall@3 |" in report.table
    stored = json.loads(Path(str(report.report_uri)).read_text())
    assert stored["table"] == report.table and stored["outcome"] == "promoted"

    # Search through the alias embeds with the recorded 128-d model, though the settings still
    # name MiniLM (384-d): with MiniLM it would be refused for the dimension.
    hits = search("How do I fix a flat tyre on my bike?", settings=lab.settings, top_k=1)
    assert hits[0].source_uri.endswith("/bicycle.txt")
    # Ingest through the alias writes with the recorded model too: nothing to re-embed.
    again = ingest(IngestParams(source=str(lab.docs)), lab.settings)
    assert again.documents.unchanged == 12 and again.chunks == 0

    # Back to MiniLM: generation 3; keep 1 keeps generation 2 and drops generation 1.
    back = rollout_embeddings(params(lab, "all-MiniLM-L6-v2"), lab.settings)
    gen3 = "documents__all_minilm_l6_v2__3"
    assert back.outcome == "promoted" and lab.target() == gen3
    assert back.kept == [GEN2] and back.dropped == [GEN1]
    assert [c for c in lab.collections() if c.startswith("documents__")] == sorted(
        [GEN2, GEN2 + "_documents", gen3, gen3 + "_documents"]
    )


def test_keep_zero_drops_the_previous_generation(lab: Lab, second_models: dict[str, str]) -> None:
    report = rollout_embeddings(params(lab, second_models["projected"], keep=0), lab.settings)
    assert report.outcome == "promoted" and report.kept == [] and report.dropped == [GEN1]
    assert [c for c in lab.collections() if c.startswith("documents__")] == [
        GEN2,
        GEN2 + "_documents",
    ]


@pytest.mark.parametrize("keep_failed", [False, True])
def test_a_model_that_retrieves_badly_fails_the_gate_and_rolls_back(
    lab: Lab, second_models: dict[str, str], keep_failed: bool
) -> None:
    scrambled = second_models["scrambled"]
    report = rollout_embeddings(params(lab, scrambled, keep_failed=keep_failed), lab.settings)

    candidate = "documents__scrambled__2"
    assert report.outcome == "rolled_back"
    assert report.candidate == candidate and report.live == GEN1
    assert lab.target() == GEN1
    assert not report.gate["passed"]
    assert report.gate["new"]["recall"] < report.gate["old"]["recall"] - 0.05
    assert "| recall@3 |" in report.table and "NO |" in report.table
    stored = json.loads(Path(str(report.report_uri)).read_text())  # stored although it failed
    assert stored["outcome"] == "rolled_back" and stored["table"] == report.table
    if keep_failed:
        assert candidate in lab.collections()
        assert lab.properties(candidate)["llmw.state"] == "failed"
        assert json.loads(lab.properties(candidate)["llmw.gate"])["passed"] is False
        # The next rollout drops the failed generation left for inspection.
        later = rollout_embeddings(params(lab, second_models["projected"]), lab.settings)
        assert later.outcome == "promoted" and candidate in later.dropped
        assert later.candidate == "documents__projected128__3"
    else:
        assert candidate not in lab.collections() and report.dropped == [candidate]
    hits = search("Where are new stars born?", settings=lab.settings, top_k=1)
    assert hits[0].source_uri.endswith("/astronomy.txt")


def test_documents_changed_during_the_build_are_caught_up_before_the_switch(
    lab: Lab, second_models: dict[str, str]
) -> None:
    extra = lab.docs / "gardening.txt"
    extra.write_text("Gardening\n\nTomatoes need sun, water and a stake to climb.\n")
    ingest(IngestParams(source=str(lab.docs)), lab.settings)
    changed: list[str] = []

    def during_the_build(outcome: str, ref: Any) -> None:
        # The first document the bulk pass finished: change it, remove one, add one.
        if changed or outcome != "new" or ref.name == "gardening.txt":
            return
        path = lab.docs / ref.name
        path.write_text(path.read_text() + "\nCATCH-UP MARKER: written during the build.\n")
        extra.unlink()
        (lab.docs / "origami.txt").write_text("Origami\n\nFold a paper crane from a square.\n")
        changed.append(ref.uri)

    report = rollout_embeddings(
        params(lab, second_models["projected"]), lab.settings, progress=during_the_build
    )
    assert report.outcome == "promoted" and changed
    first = report.catch_up[0]
    assert (first.changed, first.new, first.deleted) == (1, 1, 1)
    assert report.catch_up[-1].changes == 0
    rows = read_rows(lab.uri)  # the live generation, through the alias
    texts = {r["source_uri"]: r["text"] for r in rows}
    assert "CATCH-UP MARKER" in texts[changed[0]]
    assert extra.resolve().as_uri() not in texts
    assert (lab.docs / "origami.txt").resolve().as_uri() in texts


def test_search_refuses_naming_the_recorded_model_when_it_is_not_here(lab: Lab) -> None:
    client = lab.client()
    client.alter_collection_properties(GEN1, properties={"llmw.model": "/nowhere/bge-small"})
    client.close()
    with pytest.raises(ModelUnavailableError) as refused:
        search("bread", settings=lab.settings)
    message = str(refused.value)
    assert "'/nowhere/bge-small'" in message and GEN1 in message and "'documents'" in message
