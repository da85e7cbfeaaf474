"""Retrieval evaluation: recall@k, MRR@k and latency over a labelled query set, and the gate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from components.ingest.retrieval_eval import (
    GateRow,
    GateThresholds,
    LabelledQuery,
    QuerySetError,
    RetrievalMetrics,
    evaluate,
    gate,
    parse_query_set,
    percentile,
    read_query_set,
    score,
)

A, B, C, D = (f"file:///docs/{name}.md" for name in "abcd")


def test_a_document_counts_once_at_its_best_rank_and_the_list_is_cut_at_k() -> None:
    query = LabelledQuery("q", (B, D))
    # Chunk hits: A twice, then B; D only beyond k documents.
    outcome = score(query, [A, A, B, C, D], k=3, latency_ms=1.0)
    assert outcome.retrieved == (A, B, C)
    assert outcome.recall == 0.5
    assert outcome.reciprocal_rank == 0.5
    missed = score(LabelledQuery("q", (D,)), [A, B, C, D], k=3, latency_ms=1.0)
    assert missed.recall == 0.0 and missed.reciprocal_rank == 0.0


def test_evaluate_averages_over_queries_and_measures_each_call() -> None:
    rankings = {"first": [A, B], "second": [C, A], "third": [D, D, D]}
    calls: list[tuple[str, int]] = []

    def retriever(query: str, k: int) -> list[str]:
        calls.append((query, k))
        time.sleep(0.02 if query == "third" else 0.0)
        return rankings[query]

    queries = [
        LabelledQuery("first", (A,)),  # rank 1
        LabelledQuery("second", (A, B)),  # A at rank 2, B missing
        LabelledQuery("third", (B,)),  # nothing
    ]
    metrics = evaluate(retriever, queries, k=2)
    assert calls[0] == ("first", 2) and len(calls) == 4  # one warm-up call, then each once
    assert metrics.recall == pytest.approx((1 + 0.5 + 0) / 3)
    assert metrics.mrr == pytest.approx((1 + 0.5 + 0) / 3)
    assert metrics.queries == 3 and metrics.k == 2
    assert metrics.latency_p95_ms >= 20 > metrics.latency_p50_ms
    assert [o.recall for o in metrics.outcomes] == [1.0, 0.5, 0.0]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile(values, 100) == 20.0
    assert percentile([], 95) == 0.0


def test_a_query_set_is_read_with_paths_relative_to_its_folder(tmp_path: Path) -> None:
    file = tmp_path / "sets" / "q.jsonl"
    file.parent.mkdir()
    rows = [
        {"query": "one", "relevant": ["s3://bucket/a.md", "s3://bucket/a.md"]},
        {"query": "two", "relevant": ["../docs/b.md"]},
    ]
    file.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    queries = read_query_set(file)
    assert queries == [
        LabelledQuery("one", ("s3://bucket/a.md",)),
        LabelledQuery("two", ((tmp_path / "docs" / "b.md").as_uri(),)),
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"query": "q", "relevant": ["a"]}\nnot json\n', "line 2: not JSON"),
        ('{"query": "", "relevant": ["a"]}\n', "line 1: 'query'"),
        ('{"query": "q", "relevant": []}\n', "line 1: 'relevant'"),
        ('{"query": "q", "relevant": "file:///a"}\n', "line 1: 'relevant'"),
        ('["q", ["a"]]\n', "line 1: expected an object"),
        ("\n\n", "holds no queries"),
    ],
)
def test_a_malformed_query_set_is_refused_naming_the_line(text: str, words: str) -> None:
    with pytest.raises(QuerySetError, match=words):
        parse_query_set(text, "q.jsonl")


def test_a_missing_query_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(QuerySetError, match="no such file"):
        read_query_set(tmp_path / "nothing.jsonl")


def metrics_with(recall: float, mrr: float, p95: float) -> RetrievalMetrics:
    return RetrievalMetrics(5, 1, recall, mrr, p95 / 2, p95, p95 / 2)


def test_the_gate_passes_within_the_thresholds_and_fails_beyond_them() -> None:
    old = metrics_with(0.90, 0.80, 10.0)
    within = gate(old, metrics_with(0.86, 0.76, 50.0), GateThresholds(0.05, 0.05), "old", "new")
    assert within.passed and within.reasons == ()
    recall_down = gate(old, metrics_with(0.84, 0.80, 5.0), GateThresholds(0.05, 0.05))
    assert not recall_down.passed
    assert [r.metric for r in recall_down.rows if not r.ok] == ["recall@5"]
    mrr_down = gate(old, metrics_with(0.90, 0.70, 5.0), GateThresholds(0.05, 0.05))
    assert [r.metric for r in mrr_down.rows if not r.ok] == ["MRR@5"]
    slow = gate(old, metrics_with(0.90, 0.80, 50.0), GateThresholds(0.05, 0.05, 20.0))
    assert [r.metric for r in slow.rows if not r.ok] == ["latency p95 ms"]
    check = GateRow("documents missing", 0, 2, "<= 0", False, digits=0)
    checked = gate(old, old, GateThresholds(), checks=[check])
    assert not checked.passed
    assert checked.reasons == ("documents missing 2 is not <= 0 (old: 0)",)


def test_the_gate_table_shows_both_sides_whether_it_passes_or_not() -> None:
    result = gate(
        metrics_with(0.9, 0.8, 10.0),
        metrics_with(0.5, 0.4, 12.0),
        GateThresholds(0.1, 0.1),
        "documents__minilm__1",
        "documents__other__2",
    )
    table = result.markdown()
    assert table.splitlines()[0] == (
        "| metric | documents__minilm__1 | documents__other__2 | change | limit | ok |"
    )
    assert "| recall@5 | 0.900 | 0.500 | -0.400 | >= 0.800 | NO |" in table
    assert "| latency p95 ms | 10.0 | 12.0 | +2.0 | - | yes |" in table
    assert "Gate FAILED: recall@5 0.500 is not >= 0.800" in table
    data = result.to_json()
    assert data["passed"] is False and data["old"]["recall"] == 0.9 and data["new"]["mrr"] == 0.4
