"""`llmw collections`: a thin wrapper over components.embedding_rollout.inventory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from llmw.progress import fail

if TYPE_CHECKING:
    from components.embedding_rollout.inventory import Inventory

MilvusUriOption = Annotated[
    str | None,
    typer.Option("--milvus-uri", help="Milvus Lite file or server URL [default: LLMW_MILVUS_URI]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def collections_command(milvus_uri: MilvusUriOption = None, as_json: JsonOption = False) -> None:
    """List each alias and the collection it serves (model, dimension, rows, documents,
    created), the generations kept behind it for rollback, and plain collections made before
    aliases. Reads only: a Milvus Lite database that doesn't exist is refused, not created.

    JSON: {"uri", "aliases": [{"alias", "collection"}], "collections": [{"name", "kind"
    (generation|plain), "alias", "live", "generation", "state", "model", "dimension", "rows",
    "documents", "created_at"}]}.
    """
    from components.embedding_rollout.inventory import read_inventory
    from components.settings import get_settings

    settings = get_settings()
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    try:
        inventory = read_inventory(milvus_uri or settings.milvus_uri, token)
    except ValueError as exc:  # MilvusUriError: a missing database, a URI that can't work
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(inventory.as_json()))
    else:
        _print_table(inventory)


def _created(seconds: int | None) -> str:
    if not seconds:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _state(live: bool, state: str | None) -> str:
    """live (the alias serves it), kept (ready, for rollback), or its state (building…)."""
    if live:
        return "live"
    return "kept" if state == "ready" else state or "-"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def _print_table(inventory: Inventory) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(soft_wrap=True)
    if not inventory.collections:
        console.print(f"no collections in {escape(inventory.uri)}")
        return
    table = Table(title=f"Collections in {escape(inventory.uri)}")
    for index, name in enumerate(
        ["alias", "collection", "gen", "state", "model", "dim", "rows", "documents", "created"]
    ):
        table.add_column(name, justify="right" if index in (2, 5, 6, 7) else "left")
    for entry in inventory.collections:
        if entry.kind == "plain":
            alias, state = "-", "plain (made before aliases)"
        else:
            alias = entry.alias or "-"
            state = _state(entry.live, entry.state)
        table.add_row(
            escape(alias),
            escape(entry.name),
            _number(entry.generation),
            state,
            escape(entry.model or "-"),
            _number(entry.dimension),
            _number(entry.rows),
            _number(entry.documents),
            _created(entry.created_at),
        )
    console.print(table)
