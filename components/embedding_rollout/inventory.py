"""What a Milvus database holds: each alias and the collection it serves, the generations kept
behind it, and plain chunk collections made before aliases (``llmw collections``).

It reads what ``components.ingest.generations`` records (the ``llmw.*`` collection properties,
``list_aliases``/``describe_alias``) and counts rows; it never creates or changes anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from components.ingest.generations import Generation, read_generation
from components.storage.milvus import MANIFEST_SUFFIX
from components.storage.milvus_uri import check_uri

GENERATION = "generation"
PLAIN = "plain"  # a chunk collection made before aliases: no llmw.* properties
# Collections without an ``embedding`` field (the rollout lock) are not chunk collections: left out.


@dataclass(frozen=True)
class CollectionEntry:
    """One chunk collection (its manifest is counted as ``documents``, not listed)."""

    name: str
    kind: str  # GENERATION or PLAIN
    alias: str | None  # the alias a generation belongs to; None for a plain collection
    live: bool  # the alias points at it
    generation: int | None
    state: str | None  # ready, building, failed (generations only)
    model: str | None  # None for a plain collection (it records none)
    dimension: int | None
    rows: int | None  # chunks; None when they can't be counted
    documents: int | None  # rows of its manifest; None without one
    created_at: int | None  # Unix seconds


@dataclass(frozen=True)
class Inventory:
    uri: str
    aliases: dict[str, str]  # alias -> the collection it points at
    collections: list[CollectionEntry]  # by alias, live first, then generation; plain last

    def as_json(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "aliases": [
                {"alias": alias, "collection": target} for alias, target in self.aliases.items()
            ],
            "collections": [asdict(entry) for entry in self.collections],
        }


def read_inventory(uri: str, token: str | None = None) -> Inventory:
    """The inventory of the database at ``uri``; a Milvus Lite file that doesn't exist is a
    ``MilvusUriError`` ("…; ingest first"), never created."""
    from pymilvus import MilvusClient

    check_uri(uri, create=False)
    client = MilvusClient(uri=uri, token=token or "")
    try:
        return inventory_of(client, uri)
    finally:
        client.close()


def inventory_of(client: Any, uri: str) -> Inventory:
    names = set(client.list_collections())
    aliases = {
        str(alias): str(client.describe_alias(alias)["collection_name"])
        for alias in sorted(client.list_aliases().get("aliases") or [])
    }
    live = set(aliases.values())
    manifests = {n for n in names if n.endswith(MANIFEST_SUFFIX) and _chunks_of(n) in names}
    entries = []
    for name in sorted(names - manifests):
        entry = _entry(client, name, read_generation(client, name), name in live, names)
        if entry is not None:
            entries.append(entry)
    entries.sort(key=_order)
    return Inventory(uri=uri, aliases=aliases, collections=entries)


def _order(entry: CollectionEntry) -> tuple[int, str, int, int, str]:
    newest_first = -(entry.generation or 0)
    plain = int(entry.kind == PLAIN)
    return (plain, entry.alias or "", int(not entry.live), newest_first, entry.name)


def _chunks_of(manifest: str) -> str:
    return manifest[: -len(MANIFEST_SUFFIX)]


def _entry(
    client: Any, name: str, generation: Generation | None, live: bool, names: set[str]
) -> CollectionEntry | None:
    description = client.describe_collection(name)
    manifest = name + MANIFEST_SUFFIX
    documents = _count(client, manifest) if manifest in names else None
    if generation is None:
        if _dimension(description) is None:
            return None  # not a chunk collection (the rollout lock, another application's)
        return CollectionEntry(
            name=name,
            kind=PLAIN,
            alias=None,
            live=live,
            generation=None,
            state=None,
            model=None,
            dimension=_dimension(description),
            rows=_count(client, name),
            documents=documents,
            created_at=_created(description),
        )
    return CollectionEntry(
        name=name,
        kind=GENERATION,
        alias=generation.alias,
        live=live,
        generation=generation.number,
        state=generation.state,
        model=generation.model,
        dimension=generation.dimension or _dimension(description),
        rows=_count(client, name),
        documents=documents,
        created_at=generation.created_at or _created(description),
    )


def _dimension(description: dict[str, Any]) -> int | None:
    for field in description.get("fields") or []:
        if field.get("name") == "embedding":
            dim = (field.get("params") or {}).get("dim")
            return int(dim) if dim is not None else None
    return None


def _created(description: dict[str, Any]) -> int | None:
    """Milvus's own creation time: a hybrid timestamp, milliseconds in its upper bits."""
    stamp = description.get("created_timestamp")
    return (int(stamp) >> 18) // 1000 if stamp else None


def _count(client: Any, name: str) -> int | None:
    """Rows of ``name`` (``count(*)`` needs it loaded; a kept generation may not be)."""
    try:
        client.load_collection(name)
        result = client.query(name, filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])
    except Exception:
        try:
            return int(client.get_collection_stats(name)["row_count"])
        except Exception:
            return None
