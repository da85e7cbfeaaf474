"""Embedding rollout under a search stream: `python -m bench.embedding_rollout [--documents N]`.

Builds an N-document corpus (``bench.corpus``) and a labelled query set from it, starts a
Milvus Lite server (`milvus-lite server`, as ``bench.ingest`` does: one process owns the
database, as a Milvus server would, so readers in other processes can search it), ingests the
corpus with MiniLM (generation 1 behind the alias ``documents``), then runs a full ``rollout
embeddings`` to the projected MiniLM (128-d, the one the tests build) in this process while a
searcher process sends one query after another through the alias. The searcher resolves the
alias and the model recorded on its collection for every query, as ``llmw search`` does (its
two embedders are loaded before the clock starts: the figures are search, not model loading).

Prints one table: searches before and during the rollout, how many failed or returned
nothing (goal 0), p50/p99 search latency before the rollout vs during its bulk ingest (its
start to the last document built), and the gate's recall@5/MRR@5, old and new side by side.
The gate's thresholds are wide open so the switch happens; the table says whether the default
gate would have passed.
Both processes share this machine's CPUs: latency during the bulk ingest includes the
contention with the rollout's own embedding, as it would on one small server.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ALIAS = "documents"
QUERIES = 40


def search_stream(uri: str, queries_path: str, preload: str) -> None:
    """The searcher (a child process): query through the alias until stdin closes; one JSON
    line per query on stdout: [unix time, ok, hits, latency ms, collection, error]."""
    import threading

    from components.ingest.embedders import make_embedder
    from components.ingest.generations import collection_embedder
    from components.settings import Settings
    from components.storage.milvus import ChunkStore

    settings = Settings(milvus_uri=uri, collection=ALIAS)
    cache: dict[str, Any] = {}

    def cached(configured: Settings) -> Any:  # one embedder per model, loaded once
        if configured.embedding_model not in cache:
            cache[configured.embedding_model] = make_embedder(configured)
        return cache[configured.embedding_model]

    cached(settings.model_copy(update={"embedding_model": preload}))  # the rollout's model
    queries = [json.loads(line)["query"] for line in Path(queries_path).read_text().splitlines()]
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    index = 0
    while not stop.is_set():
        query, index = queries[index % len(queries)], index + 1
        started = time.perf_counter()
        collection, error, hits = "", "", 0
        try:
            store = ChunkStore(uri, ALIAS, create=False)
            try:
                store.open_existing()
                collection = store.collection
                embedder = collection_embedder(store, None, settings, factory=cached)
                hits = len(store.search(embedder.embed([query])[0], 5))
            finally:
                store.close()
        except Exception as exc:  # a failed search is a figure, not the end of the stream
            error = f"{type(exc).__name__}: {exc}"[:200]
        latency = (time.perf_counter() - started) * 1000
        row = [time.time(), not error and hits > 0, hits, latency, collection, error]
        print(json.dumps(row), flush=True)


def labelled_queries(n_docs: int, docs: Path, dest: Path, count: int = QUERIES) -> Path:
    """Queries cut from the corpus: 12 words from the middle of a paragraph of a document;
    relevant: every document holding that paragraph (the corpus reuses README sections)."""
    from bench.corpus import TYPES, _document, source_sections

    pool, rng = source_sections(), random.Random(0)
    documents = [_document(pool, rng, index) for index in range(n_docs)]  # as build_corpus
    texts = ["\n\n".join(text for _, text in sections) for _, sections in documents]
    uris = [
        (docs / f"doc-{i:05d}{TYPES[i % len(TYPES)]}").resolve().as_uri() for i in range(n_docs)
    ]
    picker, lines, seen = random.Random(13), list[str](), set[str]()
    while len(lines) < count and len(seen) < 10 * count:
        sections = documents[picker.randrange(n_docs)][1]
        paragraphs = [p for _, text in sections for p in text.split("\n\n")]
        paragraph = picker.choice(paragraphs)
        words = paragraph.split()
        if len(words) < 20 or paragraph in seen:
            seen.add(paragraph)
            continue
        seen.add(paragraph)
        start = picker.randrange(0, len(words) - 12)
        relevant = [uri for uri, text in zip(uris, texts, strict=True) if paragraph in text]
        lines.append(
            json.dumps({"query": " ".join(words[start : start + 12]), "relevant": relevant})
        )
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    from bench.ingest import _free_port, _wait_for_port

    port = _free_port()
    command = [str(Path(sys.executable).parent / "milvus-lite"), "server"]
    server = subprocess.Popen(
        [*command, "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port)
    return server, f"http://127.0.0.1:{port}"


def run_rollout(uri: str, docs: Path, queries: Path, model: str) -> dict[str, Any]:
    """The ingest (generation 1), then the rollout under the search stream; timings."""
    from components.embedding_rollout.models import RolloutParams
    from components.embedding_rollout.rollout import rollout_embeddings
    from components.ingest.models import IngestParams
    from components.ingest.run import ingest
    from components.settings import Settings

    settings = Settings(milvus_uri=uri, collection=ALIAS, partition_workers=0)
    first = ingest(IngestParams(source=str(docs)), settings)
    ticks: list[float] = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "bench.embedding_rollout", "--searcher", uri, str(queries)]
    command.append(model)
    searcher = subprocess.Popen(
        command, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert searcher.stdout is not None and searcher.stdin is not None
        for _ in range(3):  # the searcher is up and both of its loads are behind it
            searcher.stdout.readline()
        warm = time.time()
        time.sleep(10)  # the "before" window
        # Thresholds wide open so the switch always happens (what is measured is the stream
        # through it); the table says whether the default gate (drops <= 0.05) would pass.
        params = RolloutParams(
            model=model,
            queries=str(queries),
            milvus_uri=uri,
            top_k=5,
            max_recall_drop=1.0,
            max_mrr_drop=1.0,
        )
        started = time.time()
        report = rollout_embeddings(params, settings, progress=lambda *_: ticks.append(time.time()))
        ended = time.time()
        time.sleep(5)  # and a few seconds after the switch
    finally:
        out = searcher.communicate(input="", timeout=120)[0]  # EOF on stdin: it stops
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("[")]
    return {
        "documents": first.documents.new,
        "chunks": first.chunks,
        "warm": warm,
        "rollout": (started, ended),
        "bulk": (started, ticks[-1]) if ticks else (started, ended),  # to its last document
        "rows": rows,
        "report": report,
    }


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def figures(result: dict[str, Any]) -> list[tuple[str, str]]:
    rows = result["rows"]
    (start, end), (bulk_start, bulk_end) = result["rollout"], result["bulk"]
    before = [r for r in rows if result["warm"] <= r[0] < start]
    during = [r for r in rows if start <= r[0] <= end]
    bulk = [r[3] for r in rows if bulk_start <= r[0] <= bulk_end]
    failed = [r for r in rows if not r[1]]
    report = result["report"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        ("corpus", f"{result['documents']} documents, {result['chunks']} chunks"),
        ("rollout", f"{report.outcome}: {report.previous} -> {report.live}"),
        ("rollout seconds (bulk ingest)", f"{end - start:.1f} ({bulk_end - bulk_start:.1f})"),
        ("searches before / during / all", f"{len(before)} / {len(during)} / {len(rows)}"),
        ("failed or empty (goal 0)", str(len(failed))),
        ("collections served", ", ".join(sorted({r[4] for r in rows if r[4]}))),
        (
            "p50 ms before / bulk ingest",
            f"{ms(percentile([r[3] for r in before], 0.5))} / {ms(percentile(bulk, 0.5))}",
        ),
        (
            "p99 ms before / bulk ingest",
            f"{ms(percentile([r[3] for r in before], 0.99))} / {ms(percentile(bulk, 0.99))}",
        ),
    ]
    for cells in (report.gate.get("table") or [])[1:]:
        lines.append((f"gate {cells[0]} (old / new)", " / ".join(cells[1:3])))
    drops = [_drop(cells) for cells in (report.gate.get("table") or [])[1:3]]
    lines.append(("default gate (drops <= 0.05)", "pass" if max(drops) <= 0.05 else "fail"))
    lines.extend(("failure", r[5]) for r in failed[:3])
    return lines


def _drop(cells: list[str]) -> float:
    try:
        return float(cells[1]) - float(cells[2])
    except (ValueError, IndexError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=60, help="corpus size (default 60)")
    parser.add_argument("--searcher", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.searcher:
        search_stream(*options.searcher)
        return 0
    from bench.ingest import _corpus
    from testing.embedding_models import build_projected_minilm

    docs = _corpus(options.documents)
    with tempfile.TemporaryDirectory(prefix="llmw-bench-") as tmp:
        queries = labelled_queries(options.documents, docs, Path(tmp) / "queries.jsonl")
        model = str(build_projected_minilm(Path(tmp) / "projected128"))
        server, uri = start_server(Path(tmp) / "milvus")
        try:
            result = run_rollout(uri, docs, queries, model)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print_table(figures(result))
    return 0


def print_table(lines: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Embedding rollout under a search stream (MiniLM -> projected MiniLM)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in lines:
        table.add_row(name, value)
    Console(width=120).print(table)


if __name__ == "__main__":
    raise SystemExit(main())
