"""`llmw rollout embeddings`: a thin wrapper over components.embedding_rollout.rollout.

The function is registered on the `rollout` sub-app by llmw/rollout_commands.py.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from llmw.progress import StatusLine, fail

if TYPE_CHECKING:
    from components.embedding_rollout.models import RolloutReport

EXIT_PROMOTED = 0
EXIT_REFUSED = 2
EXIT_ROLLED_BACK = 3


ModelOption = Annotated[
    str, typer.Option("--model", help="The new embedding model (name or path).")
]
QueriesOption = Annotated[
    str,
    typer.Option(
        "--queries", help='Labelled query set, JSONL: {"query": …, "relevant": [source URI…]}.'
    ),
]
SourceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        help="What to ingest (repeatable) [default: the sources the live collection records]",
    ),
]
AliasOption = Annotated[
    str | None, typer.Option("--alias", help="The alias readers use [default: documents]")
]
MilvusUriOption = Annotated[
    str | None,
    typer.Option("--milvus-uri", help="Milvus Lite file or server URL [default: LLMW_MILVUS_URI]"),
]
TopKOption = Annotated[int, typer.Option("--top-k", min=1, max=100, help="k of recall@k, MRR@k.")]
RecallDropOption = Annotated[
    float, typer.Option("--max-recall-drop", min=0, max=1, help="Largest recall@k drop allowed.")
]
MrrDropOption = Annotated[
    float, typer.Option("--max-mrr-drop", min=0, max=1, help="Largest MRR@k drop allowed.")
]
P95Option = Annotated[
    float | None,
    typer.Option("--max-p95-ms", min=0, help="Highest p95 query latency allowed, in ms."),
]
KeepOption = Annotated[
    int, typer.Option("--keep", min=0, help="Previous generations kept for rollback.")
]
KeepFailedOption = Annotated[
    bool, typer.Option("--keep-failed", help="Keep a collection that failed its gate.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def rollout_embeddings_command(
    model: ModelOption,
    queries: QueriesOption,
    source: SourceOption = None,
    alias: AliasOption = None,
    milvus_uri: MilvusUriOption = None,
    top_k: TopKOption = 5,
    max_recall_drop: RecallDropOption = 0.05,
    max_mrr_drop: MrrDropOption = 0.05,
    max_p95_ms: P95Option = None,
    keep: KeepOption = 1,
    keep_failed: KeepFailedOption = False,
    as_json: JsonOption = False,
) -> None:
    """Roll a new embedding model out behind a Milvus alias: build the next collection with it
    (the live one serves meanwhile), gate it on a labelled query set (recall@k, MRR@k, latency,
    old and new side by side), then switch the alias at once, or roll back.

    Exit codes: 0 promoted; 3 gate failed, rolled back (the alias serves what it served); 2
    refused (bad input, a model not available here, another rollout in progress), nothing
    changed.
    """
    from pydantic import ValidationError

    from components.embedding_rollout.models import PROMOTED, RolloutParams
    from components.embedding_rollout.rollout import rollout_embeddings
    from components.settings import get_settings

    try:
        params = RolloutParams(
            model=model,
            queries=queries,
            sources=source or [],
            alias=alias,
            milvus_uri=milvus_uri,
            top_k=top_k,
            max_recall_drop=max_recall_drop,
            max_mrr_drop=max_mrr_drop,
            max_p95_latency_ms=max_p95_ms,
            keep=keep,
            keep_failed=keep_failed,
        )
        with StatusLine(enabled=sys.stderr.isatty()) as line:
            counter = _Counter(line)
            report = rollout_embeddings(params, get_settings(), progress=counter.update)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(errors, EXIT_REFUSED) from None
    except ValueError as exc:  # refusals: RolloutRefusedError, a query set, a model, a schema
        raise fail(" ".join(str(exc).split()), EXIT_REFUSED) from None
    if as_json:
        typer.echo(json.dumps(report.model_dump()))
    else:
        _print_report(report)
    if report.outcome != PROMOTED:
        reasons = "; ".join(report.gate.get("reasons", [])) or "the gate failed"
        raise fail(
            f"gate failed ({reasons}); rolled back: alias {report.alias!r} serves {report.live}",
            EXIT_ROLLED_BACK,
        )


class _Counter:
    """Documents ingested into the new collection, on the status line."""

    def __init__(self, line: StatusLine) -> None:
        self.line = line
        self.count = 0

    def update(self, outcome: str, ref: object) -> None:
        self.count += 1
        self.line.show(f"building the new collection: {self.count} documents")


def _print_report(report: RolloutReport) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(soft_wrap=True)
    console.print(f"old: {report.previous} ({escape(report.previous_model)})")
    resumed = " (resumed)" if report.resumed else ""
    console.print(
        f"new: {report.candidate} ({escape(report.model)}, {report.dimension}-d){resumed}"
    )
    if report.adopted:
        console.print(f"adopted the plain collection {report.alias} as {report.adopted}")
    build = report.build
    console.print(
        f"built: {build.new + build.changed} documents, {build.chunks} chunks; catch-up passes: "
        + ", ".join(f"{p.changes} changed" for p in report.catch_up)
    )
    lines: list[list[str]] = report.gate.get("table") or []
    if lines:
        table = Table(title=f"Gate (k={report.gate.get('k')})")
        for index, name in enumerate(["metric", "old", "new", *lines[0][3:]]):
            table.add_column(name, justify="left" if index == 0 else "right")
        for cells in lines[1:]:
            table.add_row(*(escape(c) for c in cells))
        console.print(table)
    outcome = "promoted" if report.outcome == "promoted" else "rolled back"
    console.print(f"{outcome}: alias {report.alias} -> {report.live}")
    if report.kept:
        console.print(f"kept for rollback: {', '.join(report.kept)}")
    if report.outcome != "promoted" and report.candidate not in report.dropped:
        console.print(f"kept the failed collection {report.candidate} (--keep-failed)")
    if report.dropped:
        console.print(f"dropped: {', '.join(report.dropped)}")
    if report.report_uri:
        console.print(f"report: {escape(report.report_uri)}")
