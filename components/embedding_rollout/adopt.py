"""Adopt a plain chunk collection (made before aliases) as generation 0 behind an alias.

Milvus can't create an alias named like an existing collection, nor rename a collection onto an
alias's name (both seen on Milvus Lite 3.2: "alias 'documents' conflicts with an existing
collection"). So the plain ``documents`` and its manifest ``documents_documents`` are renamed to
``documents__<model slug>__0`` and ``documents__<model slug>__0_documents`` (``rename_collection``
changes only Milvus's metadata: no row is copied), its properties record it as generation 0,
and the alias ``documents`` is created pointing at it. Readers addressing ``documents`` then read
the same rows through the alias.

Between the rename and the alias, the name ``documents`` addresses nothing: on Milvus Lite
nobody else can have the database open then (one process per file); on a server a search in
that instant fails once. Each step is checked before it is taken, so a run that crashes half way
through is finished by the next one.
"""

from __future__ import annotations

import time
from typing import Any

from components.ingest.generations import (
    READY,
    Generation,
    alias_target,
    generation_name,
    generations,
    read_generation,
)
from components.storage.milvus import MANIFEST_SUFFIX
from components.storage.milvus_schema import SchemaMismatchError, check_chunk_schema


def adopt_plain_collection(
    client: Any, uri: str, alias: str, model: str, dimension: int
) -> Generation | None:
    """Make the plain collection ``alias`` generation 0 of the alias ``alias``, recorded as
    embedded with ``model``; also finish an adoption a crash interrupted. Returns that
    generation, or None when there is nothing to adopt."""
    if alias_target(client, alias) is not None:
        return None
    if client.has_collection(alias):
        name = generation_name(alias, model, 0)
        _check_plain(client, uri, alias, model, dimension)
        properties = Generation(
            name=name,
            alias=alias,
            number=0,
            model=model,
            dimension=dimension,
            fingerprint=_row_fingerprint(client, alias),
            state=READY,
            created_at=int(time.time()),
            extra={"adopted_from": alias, "adopted_at": str(int(time.time()))},
        ).properties()
        client.alter_collection_properties(alias, properties=properties)
        _rename_manifest(client, alias, name)
        client.rename_collection(alias, name)
    else:
        orphans = [g for g in generations(client, alias) if g.number == 0]
        if not orphans:
            return None
        name = orphans[0].name  # renamed by a run that stopped before the alias
        _rename_manifest(client, alias, name)
    client.create_alias(name, alias)
    return read_generation(client, name)


def _check_plain(client: Any, uri: str, alias: str, model: str, dimension: int) -> None:
    try:
        check_chunk_schema(client, alias, uri, dimension)
    except SchemaMismatchError as exc:
        raise SchemaMismatchError(
            f"can't adopt {alias!r} as generation 0 recorded as embedded with {model!r} "
            f"(LLMW_EMBEDDING_MODEL): {exc} Set LLMW_EMBEDDING_MODEL to the model it was built "
            "with for the first rollout."
        ) from None


def _rename_manifest(client: Any, alias: str, name: str) -> None:
    plain, renamed = alias + MANIFEST_SUFFIX, name + MANIFEST_SUFFIX
    if client.has_collection(plain) and not client.has_collection(renamed):
        client.rename_collection(plain, renamed)


def _row_fingerprint(client: Any, collection: str) -> str:
    """The pipeline fingerprint one of its rows carries ("" for an empty collection)."""
    client.load_collection(collection)
    rows = client.query(collection, filter="", output_fields=["pipeline_fingerprint"], limit=1)
    return str(rows[0]["pipeline_fingerprint"]) if rows else ""
