"""`llmw ingest` and `llmw search`: thin wrappers over components.ingest.run and .search."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from components.exit_codes import ingestion_status as exit_status
from components.exit_codes import removal_status
from llmw.progress import StatusLine, fail

if TYPE_CHECKING:
    from pydantic import ValidationError

    from components.ingest.models import IngestReport
    from components.storage.milvus import SearchHit

SourceArgument = Annotated[
    str | None, typer.Argument(help="A folder, a file, or s3://bucket/prefix.")
]
CollectionOption = Annotated[
    str | None, typer.Option("--collection", help="Milvus collection [default: documents]")
]
MilvusUriOption = Annotated[
    str | None,
    typer.Option("--milvus-uri", help="Milvus Lite file or server URL [default: LLMW_MILVUS_URI]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
RemoveOption = Annotated[
    list[str] | None,
    typer.Option(
        "--remove",
        metavar="URI",
        help="Remove this document's rows instead of ingesting: s3://bucket/key, file:///path "
        "or a path (repeatable; no SOURCE).",
    ),
]


def ingest(
    source: SourceArgument = None,
    collection: CollectionOption = None,
    milvus_uri: MilvusUriOption = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete documents that are gone from the source.")
    ] = False,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Glob of paths to take (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Glob of paths to leave (repeatable).")
    ] = None,
    remove: RemoveOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest documents (md, html, txt, pdf, docx) into Milvus, incrementally; or, with
    --remove, remove documents' rows by source URI (one not there is reported not found).

    Exit codes: 0 done (with --remove: each URI removed or not found); 3 some documents failed
    (the others are in); 4 prune refused; 2 bad input or configuration.
    """
    from pydantic import ValidationError

    from components.ingest.models import IngestParams
    from components.ingest.run import ingest as run_ingest
    from components.settings import get_settings
    from components.storage.milvus import SchemaMismatchError

    if remove is not None:
        others = {"SOURCE": source, "--prune": prune, "--include": include, "--exclude": exclude}
        _remove(remove, collection, milvus_uri, as_json, [k for k, v in others.items() if v])
        return
    if source is None:
        raise fail("missing SOURCE: a folder, a file, or s3://bucket/prefix (or --remove URI)")
    settings = get_settings()
    updates = {k: v for k, v in {"include": include, "exclude": exclude}.items() if v}
    if updates:
        settings = settings.model_copy(update=updates)
    try:
        params = IngestParams(
            source=source,
            collection=settings.collection if collection is None else collection,
            milvus_uri=milvus_uri,
            prune=prune,
        )
    except ValidationError as exc:
        raise fail(_validation_message(exc)) from None
    try:
        with StatusLine(enabled=sys.stderr.isatty()) as line:
            report = run_ingest(params, settings, progress=_OutcomeCounter(line).update)
    except (FileNotFoundError, ValueError, SchemaMismatchError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report.to_cli_json()))
    else:
        _print_report(report)
    status = exit_status(report.model_dump())  # the same as `llmw run document-ingestion`
    if status.code:
        raise fail(status.message or f"exit code {status.code}", status.code)


def _remove(
    uris: list[str],
    collection: str | None,
    milvus_uri: str | None,
    as_json: bool,
    also_given: list[str],
) -> None:
    """``llmw ingest --remove``: the ``document-removal`` job's step, its report on stdout.
    ``also_given``: the ingestion arguments given too, refused."""
    from pydantic import ValidationError

    from components.ingest.models import RemovalParams
    from components.ingest.removal import remove_documents
    from components.settings import get_settings
    from components.storage.milvus import SchemaMismatchError

    if also_given:
        raise fail(f"--remove takes no {', '.join(also_given)}: it removes the URIs it names")
    settings = get_settings()
    try:
        params = RemovalParams(
            uris=uris,
            collection=settings.collection if collection is None else collection,
            milvus_uri=milvus_uri,
        )
    except ValidationError as exc:
        raise fail(_validation_message(exc)) from None
    try:
        report = remove_documents(params, settings)
    except (ValueError, SchemaMismatchError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        for document in report.documents:
            removed = document.outcome == "removed"
            chunks = f" ({document.chunks} chunks)" if removed else ""
            typer.echo(f"{'removed' if removed else 'not found'}: {document.source_uri}{chunks}")
        typer.echo(f"{report.removed} removed, {report.not_found} not found in {report.collection}")
    status = removal_status(report.model_dump())  # the same as `llmw run document-removal`
    if status.code:
        raise fail(status.message or f"exit code {status.code}", status.code)


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOption = None,
    milvus_uri: MilvusUriOption = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=1000, help="Hits to return.")] = 5,
    hybrid: Annotated[
        bool, typer.Option("--hybrid", help="Fuse dense and BM25 keyword search (RRF).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Search the ingested chunks."""
    from components.ingest.search import search as run_search
    from components.storage.milvus import SchemaMismatchError

    if collection is not None and not collection.strip():
        raise fail("--collection is empty: name a collection (default: documents)")
    try:
        hits = run_search(
            query, collection=collection, milvus_uri=milvus_uri, top_k=top_k, hybrid=hybrid
        )
    except (ValueError, SchemaMismatchError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps([_hit_json(hit) for hit in hits]))
    else:
        _print_hits(query, hits)


def _hit_json(hit: SearchHit) -> dict[str, object]:
    return {
        "score": hit.score,
        "text": hit.text,
        "source_uri": hit.source_uri,
        "doc_id": hit.doc_id,
        "chunk_index": hit.chunk_index,
    }


def _validation_message(exc: ValidationError) -> str:
    errors = exc.errors()
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors) or str(exc)


class _OutcomeCounter:
    """Documents by outcome, shown on the status line as they finish."""

    def __init__(self, line: StatusLine) -> None:
        self.line = line
        self.counts: dict[str, int] = {}

    def update(self, outcome: str, ref: object) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.line.show(" · ".join(f"{k} {v}" for k, v in sorted(self.counts.items())))


def _print_report(report: IngestReport) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title="Ingestion summary", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, count in report.documents.model_dump().items():
        table.add_row(f"documents {name}", str(count))
    table.add_row("chunks written", str(report.chunks))
    table.add_row("seconds", f"{report.seconds:.1f}")
    table.add_row("chunks/s", f"{report.chunks_per_second:.1f}")
    console.print(table)
    for issue in report.failures:
        console.print(f"[red]failed[/red] {escape(issue.source_uri)}: {escape(issue.error)}")
    for issue in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {escape(issue.source_uri)}: {escape(issue.error)}")


def _print_hits(query: str, hits: list[SearchHit]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Search: {query}", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source")
    table.add_column("text")
    for rank, hit in enumerate(hits, 1):
        flat = " ".join(hit.text.split())  # a table cell reads better without PDF line breaks
        text = flat if len(flat) <= 300 else flat[:297] + "..."
        source = hit.source_uri.rsplit("/", 1)[-1]
        table.add_row(str(rank), f"{hit.score:.3f}", source, text)
    Console().print(table)
