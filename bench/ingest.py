"""Ingestion benchmark: `make bench` (or `python -m bench.ingest [--docs N]`).

Prints, from one run, side by side:
- end-to-end chunks/s of a first ingest of an N-document corpus (five types);
- the ceiling: the same chunk texts through the same model's ``encode`` alone, same batch size,
  and the ratio end-to-end / ceiling (target >= 0.8);
- an unchanged rerun's time / the first run's time (target <= 0.02);
- peak RSS of the ingest process at 1x and 10x the corpus, and their ratio (target <= 1.2).

Each ingest runs in a fresh process so its peak RSS is its own, against a Milvus Lite server in
a process of its own (`milvus-lite server`, the production shape: Milvus is a server). Milvus
Lite 3 embedded in the ingest process would keep the collection in that process's memory, so the
RSS would measure the database, not the ingestion. The model is loaded before the clock starts
in both runs, so the times compare ingestion, not start-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS_CACHE = REPO / "bench" / ".corpus"


def measure(source: str, milvus_uri: str, with_ceiling: bool) -> dict[str, Any]:
    """Runs in the child process: first ingest, unchanged rerun, optionally the encode ceiling."""
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
        "documents": first.documents.seen,
        "failed": first.documents.failed,
        "chunks": first.chunks,
        "first_s": first.seconds,
        "rerun_s": rerun.seconds,
        "rerun_unchanged": rerun.documents.unchanged,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    if with_ceiling:
        texts = _chunk_texts(milvus_uri)
        started = time.perf_counter()
        embedder.embed(texts)  # same model object, same batch size as the run used
        result["ceiling_s"] = time.perf_counter() - started
        result["ceiling_chunks"] = len(texts)
    return result


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


def _run_child(source: Path, with_ceiling: bool) -> dict[str, Any]:
    milvus_lite = Path(sys.executable).parent / "milvus-lite"
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        server = subprocess.Popen(
            [
                str(milvus_lite),
                "server",
                "--data-dir",
                f"{tmp}/milvus",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port)
            cmd = [
                sys.executable,
                "-m",
                "bench.ingest",
                "--child",
                str(source),
                f"http://127.0.0.1:{port}",
            ]
            if with_ceiling:
                cmd.append("--ceiling")
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        finally:
            server.terminate()
            server.wait(timeout=30)
        if done.returncode != 0:
            raise SystemExit(f"benchmark child failed:\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{source.name}: {result}", flush=True)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300, help="documents at 1x (default 300)")
    parser.add_argument("--scale", type=int, default=10, help="the large corpus, x1 (default 10)")
    parser.add_argument(
        "--child", nargs=2, metavar=("SOURCE", "MILVUS_URI"), help=argparse.SUPPRESS
    )
    parser.add_argument("--ceiling", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.ceiling)))
        return

    small = _run_child(_corpus(args.docs), with_ceiling=True)
    large = _run_child(_corpus(args.docs * args.scale), with_ceiling=False)
    _print(small, large, args.scale)


def _print(small: dict[str, Any], large: dict[str, Any], scale: int) -> None:
    from rich.console import Console
    from rich.table import Table

    e2e = small["chunks"] / small["first_s"]
    ceiling = small["ceiling_chunks"] / small["ceiling_s"]
    rows = [
        ("corpus (1x)", f"{small['documents']} docs, {small['chunks']} chunks", ""),
        ("end-to-end chunks/s", f"{e2e:.1f}", ""),
        ("ceiling: encode alone chunks/s", f"{ceiling:.1f}", ""),
        ("end-to-end / ceiling", f"{e2e / ceiling:.3f}", ">= 0.8"),
        ("first run s", f"{small['first_s']:.2f}", ""),
        ("unchanged rerun s", f"{small['rerun_s']:.3f}", ""),
        ("rerun / first", f"{small['rerun_s'] / small['first_s']:.4f}", "<= 0.02"),
        (f"corpus ({scale}x)", f"{large['documents']} docs, {large['chunks']} chunks", ""),
        (
            "peak RSS 1x MB (main / partition workers)",
            f"{small['peak_rss_mb']:.0f} / {small['worker_peak_rss_mb']:.0f}",
            "",
        ),
        (
            f"peak RSS {scale}x MB (main / partition workers)",
            f"{large['peak_rss_mb']:.0f} / {large['worker_peak_rss_mb']:.0f}",
            "",
        ),
        (
            f"peak RSS {scale}x / 1x (main)",
            f"{large['peak_rss_mb'] / small['peak_rss_mb']:.3f}",
            "<= 1.2",
        ),
        (f"end-to-end chunks/s at {scale}x", f"{large['chunks'] / large['first_s']:.1f}", ""),
        ("failed documents (1x / 10x)", f"{small['failed']} / {large['failed']}", "0"),
    ]
    table = Table(title="Ingestion benchmark")
    for column in ("figure", "measured", "target"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
