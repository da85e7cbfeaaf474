"""Ingestion benchmark: `make bench` (or `python -m bench.ingest [--docs N] [--scale S]`).

Prints, from one run, side by side for torch fp32 and the default embedding runtime (the
fastest backend and precision that passes the export quality gate, `llmw embeddings default`,
exported before the clock starts):
- end-to-end chunks/s of a first ingest of an N-document corpus (five types), and the ratio to
  the ceiling: the same chunk texts through torch fp32 ``encode`` alone, same batch size
  (torch: target >= 0.8; the default: goal >= 1.8);
- recall@5 and MRR@10 of searches through Milvus on a labelled query set built from the corpus
  (the default: within one point of torch fp32);
- an unchanged rerun's time / the first run's time (target <= 0.02);
- peak RSS of the ingest process (the default within 10 % of torch), and with ``--scale`` S > 0
  the default's at S x the corpus and the ratio to 1x (target <= 1.2).

Each ingest runs in a fresh process so its peak RSS is its own, against a Milvus Lite server in
a process of its own (`milvus-lite server`, the production shape: Milvus is a server). Milvus
Lite 3 embedded in the ingest process would keep the collection in that process's memory, so the
RSS would measure the database, not the ingestion. The model is loaded before the clock starts
in every run, so the times compare ingestion, not start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS_CACHE = REPO / "bench" / ".corpus"
_LISTEN = ("--host", "127.0.0.1", "--port")


def measure(source: str, milvus_uri: str, with_ceiling: bool, queries: str) -> dict[str, Any]:
    """Runs in the child process: first ingest, unchanged rerun, the labelled queries, and
    optionally the torch fp32 encode ceiling (the embedder is LLMW_EMBEDDING_BACKEND's)."""
    from components.ingest.embedders import make_embedder
    from components.ingest.models import IngestParams
    from components.ingest.run import ingest
    from components.settings import Settings

    settings = Settings(milvus_uri=milvus_uri)
    embedder = make_embedder(settings)
    embedder.embed(["warm up"])
    params = IngestParams(source=source)

    first = ingest(params, settings, embedder=embedder)
    rerun = ingest(params, settings, embedder=embedder)
    result: dict[str, Any] = {
        "runtime": f"{getattr(embedder, 'backend', 'torch')} "
        f"{getattr(embedder, 'precision', 'fp32')}",
        "documents": first.documents.seen,
        "failed": first.documents.failed,
        "chunks": first.chunks,
        "first_s": first.seconds,
        "rerun_s": rerun.seconds,
        "rerun_unchanged": rerun.documents.unchanged,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    if queries:
        result.update(_retrieval(embedder, milvus_uri, queries))
    if with_ceiling:
        texts = _chunk_texts(milvus_uri)
        started = time.perf_counter()
        embedder.embed(texts)  # same model object, same batch size as the run used
        result["ceiling_s"] = time.perf_counter() - started
        result["ceiling_chunks"] = len(texts)
    return result


def _retrieval(embedder: Any, milvus_uri: str, queries: str) -> dict[str, float]:
    """recall@5 and MRR@10 of dense searches through Milvus on the labelled queries."""
    from components.ingest.retrieval_eval import evaluate, read_query_set
    from components.storage.milvus import ChunkStore

    labelled = read_query_set(queries)
    store = ChunkStore(milvus_uri, "documents")
    store.open_existing()
    try:

        def retrieve(query: str, k: int) -> list[str]:
            hits = store.search(embedder.embed([query])[0], k * 4)
            return [hit.source_uri for hit in hits]

        at_5, at_10 = evaluate(retrieve, labelled, k=5), evaluate(retrieve, labelled, k=10)
    finally:
        store.close()
    return {"recall_at_5": at_5.recall, "mrr_at_10": at_10.mrr, "queries": at_5.queries}


def _chunk_texts(milvus_uri: str) -> list[str]:
    from components.storage.milvus import ChunkStore

    store = ChunkStore(milvus_uri, "documents")
    store.open_existing()
    iterator = store.client.query_iterator(
        "documents", batch_size=2000, filter="", output_fields=["text", "doc_id", "chunk_index"]
    )
    rows: list[dict[str, Any]] = []
    while batch := iterator.next():
        rows.extend(batch)
    iterator.close()
    store.close()
    rows.sort(key=lambda r: (r["doc_id"], r["chunk_index"]))  # document order, as ingested
    return [r["text"] for r in rows]


def _corpus(n_docs: int) -> Path:
    from bench.corpus import build_corpus

    folder = CORPUS_CACHE / f"docs-{n_docs}"
    marker = folder / ".complete"
    if not marker.exists():
        started = time.perf_counter()
        build_corpus(folder, n_docs)
        marker.write_text("ok")
        print(f"built {n_docs}-document corpus in {time.perf_counter() - started:.0f} s")
    return folder


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout_s: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"Milvus Lite server did not listen on {port}")


def _run_child(
    source: Path, backend: str, with_ceiling: bool = False, queries: Path | None = None
) -> dict[str, Any]:
    """One measured ingest in a fresh process with LLMW_EMBEDDING_BACKEND=backend."""
    milvus_lite = Path(sys.executable).parent / "milvus-lite"
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        server = subprocess.Popen(
            [milvus_lite, "server", "--data-dir", f"{tmp}/milvus", *_LISTEN, str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port)
            uri = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "bench.ingest", "--child", str(source), uri]
            cmd += ["--ceiling"] if with_ceiling else []
            cmd += ["--queries-file", str(queries)] if queries else []
            env = {**os.environ, "LLMW_EMBEDDING_BACKEND": backend}
            done = subprocess.run(
                cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        if done.returncode != 0:
            raise SystemExit(f"benchmark child failed:\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{source.name} ({backend}): {result}", flush=True)
        return result


def _default_runtime() -> None:
    """Export and gate the default runtime now (once; cached), so no child pays for it."""
    done = subprocess.run(
        [sys.executable, "-m", "llmw.cli", "embeddings", "default"], cwd=REPO, check=False
    )
    if done.returncode != 0:
        raise SystemExit("llmw embeddings default failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300, help="documents at 1x (default 300)")
    parser.add_argument("--scale", type=int, default=10, help="the large corpus, x1 (0: none)")
    parser.add_argument("--queries", type=int, default=200, help="labelled queries (200)")
    parser.add_argument(
        "--child", nargs=2, metavar=("SOURCE", "MILVUS_URI"), help=argparse.SUPPRESS
    )
    parser.add_argument("--ceiling", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--queries-file", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        source, uri = args.child
        print(json.dumps(measure(source, uri, args.ceiling, args.queries_file)))
        return

    from bench.embedding_rollout import labelled_queries

    _default_runtime()
    docs = _corpus(args.docs)
    dest = docs.parent / f"queries-{args.docs}-{args.queries}.jsonl"
    queries = labelled_queries(args.docs, docs, dest, args.queries)
    torch = _run_child(docs, "torch", with_ceiling=True, queries=queries)
    best = _run_child(docs, "auto", queries=queries)
    large = _run_child(_corpus(args.docs * args.scale), "auto") if args.scale > 0 else None
    _print(torch, best, large, args.scale)


def _print(
    torch: dict[str, Any], best: dict[str, Any], large: dict[str, Any] | None, scale: int
) -> None:
    from rich.console import Console
    from rich.table import Table

    ceiling = torch["ceiling_chunks"] / torch["ceiling_s"]
    table = Table(title="Ingestion benchmark")
    for column in ("figure", "torch fp32", best["runtime"], "target"):
        table.add_column(column)
    for row in _rows(torch, best, ceiling):
        table.add_row(*row)
    if large is not None:
        for row in _large_rows(best, large, scale):
            table.add_row(*row)
    Console().print(table)


def _rows(torch: dict[str, Any], best: dict[str, Any], ceiling: float) -> list[tuple[str, ...]]:
    def e2e(r: dict[str, Any]) -> float:
        return float(r["chunks"] / r["first_s"])

    def both(key: str, fmt: str) -> tuple[str, str]:
        return format(torch[key], fmt), format(best[key], fmt)

    def rerun(r: dict[str, Any]) -> str:
        return f"{r['rerun_s'] / r['first_s']:.4f}"

    rss = best["peak_rss_mb"] / torch["peak_rss_mb"]
    return [
        (
            "corpus (1x)",
            f"{torch['documents']} docs, {torch['chunks']} chunks",
            f"{best['documents']} docs, {best['chunks']} chunks",
            "",
        ),
        ("end-to-end chunks/s", f"{e2e(torch):.1f}", f"{e2e(best):.1f}", ""),
        ("ceiling: torch fp32 encode alone, chunks/s", f"{ceiling:.1f}", "", ""),
        (
            "end-to-end / torch fp32 ceiling",
            f"{e2e(torch) / ceiling:.3f}",
            f"{e2e(best) / ceiling:.3f}",
            ">= 0.8 / goal >= 1.8",
        ),
        (
            f"recall@5 ({torch['queries']} labelled queries)",
            *both("recall_at_5", ".3f"),
            f">= {torch['recall_at_5'] - 0.01:.3f}",
        ),
        ("MRR@10", *both("mrr_at_10", ".3f"), f">= {torch['mrr_at_10'] - 0.01:.3f}"),
        ("first run s", *both("first_s", ".2f"), ""),
        ("unchanged rerun / first", rerun(torch), rerun(best), "<= 0.02"),
        (
            "peak RSS MB (main / partition workers)",
            f"{torch['peak_rss_mb']:.0f} / {torch['worker_peak_rss_mb']:.0f}",
            f"{best['peak_rss_mb']:.0f} / {best['worker_peak_rss_mb']:.0f}",
            "",
        ),
        ("peak RSS / torch's (main)", "1.000", f"{rss:.3f}", "<= 1.10"),
        ("failed documents", str(torch["failed"]), str(best["failed"]), "0"),
    ]


def _large_rows(best: dict[str, Any], large: dict[str, Any], scale: int) -> list[tuple[str, ...]]:
    return [
        (f"corpus ({scale}x)", "", f"{large['documents']} docs, {large['chunks']} chunks", ""),
        (f"end-to-end chunks/s at {scale}x", "", f"{large['chunks'] / large['first_s']:.1f}", ""),
        (
            f"peak RSS {scale}x / 1x (main)",
            "",
            f"{large['peak_rss_mb'] / best['peak_rss_mb']:.3f}",
            "<= 1.2",
        ),
        (f"failed documents ({scale}x)", "", str(large["failed"]), "0"),
    ]


if __name__ == "__main__":
    main()
