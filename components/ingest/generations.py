"""Chunk collections as generations behind a Milvus alias (blue/green embedding models).

Readers address an alias (``documents`` by default). The rows live in a generation, a chunk
collection named ``<alias>__<model slug>__<n>`` with its own manifest
``<alias>__<model slug>__<n>_documents``. Each generation records on its collection properties
(``llmw.*``, see ``Generation``) the alias it belongs to, its number, the embedding model and
dimension, the pipeline fingerprint, its state and the sources ingested into it; whoever writes or
searches it embeds with that model.

The first ingest into a database holding neither the name nor its manifest creates generation 1
and the alias. A plain collection named like the alias (made before aliases) keeps working as it
is; ``components.embedding_rollout.adopt`` turns it into generation 0 behind the alias.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from components.ids import pipeline_fingerprint
from components.ingest.embedders import runtime_fields
from components.storage.milvus import MANIFEST_SUFFIX, ChunkStore, SchemaMismatchError

if TYPE_CHECKING:
    from components.ingest.embedders import Embedder
    from components.settings import Settings

    EmbedderFactory = Callable[[Settings], Embedder]

PREFIX = "llmw."
# A generation's states: filled and usable (live or kept for rollback), being filled by a
# rollout (a rerun resumes it), or kept after it failed its gate (--keep-failed).
READY = "ready"
BUILDING = "building"
FAILED = "failed"
SLUG_MAX = 32


class ModelUnavailableError(ValueError):
    """The embedding model a collection was built with can't be loaded here."""


@dataclass(frozen=True)
class Generation:
    """What a generation records about itself (its collection's ``llmw.*`` properties)."""

    name: str
    alias: str
    number: int
    model: str
    dimension: int
    fingerprint: str = ""
    state: str = READY
    created_at: int = 0
    sources: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)  # other llmw.* keys (gate, adopted…)

    def properties(self) -> dict[str, str]:
        values = {
            "alias": self.alias,
            "generation": str(self.number),
            "model": self.model,
            "dimension": str(self.dimension),
            "fingerprint": self.fingerprint,
            "state": self.state,
            "created_at": str(self.created_at),
            "sources": json.dumps(list(self.sources)),
            **self.extra,
        }
        return {PREFIX + key: value for key, value in values.items()}

    @classmethod
    def parse(cls, name: str, properties: dict[str, str]) -> Generation | None:
        """The generation these properties describe; None for a collection without them."""
        values = {k[len(PREFIX) :]: v for k, v in properties.items() if k.startswith(PREFIX)}
        if "alias" not in values or "model" not in values:
            return None
        known = {"alias", "generation", "model", "dimension", "fingerprint", "state"}
        return cls(
            name=name,
            alias=values["alias"],
            number=int(values.get("generation") or 0),
            model=values["model"],
            dimension=int(values.get("dimension") or 0),
            fingerprint=values.get("fingerprint", ""),
            state=values.get("state", READY),
            created_at=int(values.get("created_at") or 0),
            sources=tuple(json.loads(values.get("sources") or "[]")),
            extra={k: v for k, v in values.items() if k not in known | {"created_at", "sources"}},
        )


def model_slug(model: str) -> str:
    """A model's name as a collection name part: its last path part, lower case, [a-z0-9_]."""
    last = PurePosixPath(model.rstrip("/")).name or model
    slug = re.sub(r"[^a-z0-9]+", "_", last.lower()).strip("_")
    return slug[:SLUG_MAX].strip("_") or "model"


def generation_name(alias: str, model: str, number: int) -> str:
    return f"{alias}__{model_slug(model)}__{number}"


def read_generation(client: Any, name: str) -> Generation | None:
    """The generation ``name`` records, or None (a plain collection, or none at all)."""
    if not client.has_collection(name):
        return None
    description = client.describe_collection(name)
    properties = {str(k): str(v) for k, v in (description.get("properties") or {}).items()}
    return Generation.parse(description.get("collection_name", name), properties)


def alias_target(client: Any, alias: str) -> str | None:
    """The collection ``alias`` points at, or None when it is not an alias."""
    if alias not in (client.list_aliases().get("aliases") or []):
        return None
    return str(client.describe_alias(alias)["collection_name"])


def generations(client: Any, alias: str) -> list[Generation]:
    """Every generation of ``alias`` in the database, by number."""
    pattern = re.compile(re.escape(alias) + r"__[a-z0-9_]+__\d+")
    found = []
    for name in client.list_collections():
        if pattern.fullmatch(name):
            generation = read_generation(client, name)
            if generation is not None and generation.alias == alias:
                found.append(generation)
    return sorted(found, key=lambda g: g.number)


def next_number(existing: list[Generation]) -> int:
    return max((g.number for g in existing), default=0) + 1


def drop_generation(client: Any, name: str) -> None:
    """Drop a generation and its manifest (never the one an alias points at: callers check)."""
    for collection in (name, name + MANIFEST_SUFFIX):
        if client.has_collection(collection):
            client.drop_collection(collection)


def same_model(a: str, b: str) -> bool:
    """Whether two model names load the same model (a packaged short name and its path, too)."""
    if a == b:
        return True
    from components.ingest.embedders import resolve_model_path

    return resolve_model_path(a) == resolve_model_path(b)


def embedder_for(
    model: str, settings: Settings, factory: EmbedderFactory | None = None
) -> Embedder:
    """The embedder for ``model`` (settings say local or which endpoint), made by ``factory``
    (default: ``make_embedder``); a local model that can't be loaded is ModelUnavailableError
    naming it."""
    from components.ingest.embedders import make_embedder

    make = factory or make_embedder
    configured = settings.model_copy(update={"embedding_model": model})
    if settings.embedding_url:
        return make(configured)  # an endpoint that fails is a service, not the model
    try:
        return make(configured)
    except Exception as exc:
        reason = " ".join((str(exc) or type(exc).__name__).split())[:300]
        raise ModelUnavailableError(
            f"embedding model {model!r} is not available here ({reason})"
        ) from exc


def collection_embedder(
    store: ChunkStore,
    embedder: Embedder | None,
    settings: Settings,
    factory: EmbedderFactory | None = None,
) -> Embedder:
    """The embedder to search or write ``store.collection`` with: the model recorded on it
    (the configured one for a plain collection). A given ``embedder`` must be that model."""
    generation = read_generation(store.client, store.collection)
    named = f"collection {store.collection!r}" + (
        f" (alias {store.alias!r})" if store.alias else ""
    )
    if generation is None:
        return embedder or embedder_for(settings.embedding_model, settings, factory)
    if embedder is None:
        try:
            return embedder_for(generation.model, settings, factory)
        except ModelUnavailableError as exc:
            raise ModelUnavailableError(
                f"{named} was embedded with {generation.model!r}, which is not available "
                f"here: {exc}"
            ) from exc
    if not same_model(generation.model, embedder.name):
        raise SchemaMismatchError(
            f"{named} was embedded with {generation.model!r}, not {embedder.name!r}: mixing "
            "models in one collection would break search. Change models with `llmw rollout "
            "embeddings --model ...`."
        )
    return embedder


def open_generation(
    store: ChunkStore,
    embedder: Embedder | None,
    settings: Settings,
    fingerprint_fields: dict[str, Any],
    source_uri: str | None = None,
    factory: EmbedderFactory | None = None,
) -> tuple[Embedder, str]:
    """Make ``store`` ready for an ingest and return the embedder and pipeline fingerprint.

    A name that is neither a collection nor an alias (nor has a manifest) gets its first
    generation and the alias; an alias or a generation is written with its recorded model
    (``embedder``, when given, must be it); a plain collection as before. The fingerprint and
    ``source_uri`` are recorded on a generation."""
    fresh = store.alias is None and not store.exists()
    if fresh and not store.client.has_collection(store.manifest):
        embedder = embedder or embedder_for(settings.embedding_model, settings, factory)
        _first_generation(store, embedder)
    embedder = collection_embedder(store, embedder, settings, factory)
    store.ensure(embedder.dimension)
    fingerprint = pipeline_fingerprint(
        **fingerprint_fields,
        model=embedder.name,
        dimension=embedder.dimension,
        **runtime_fields(embedder),
    )
    generation = read_generation(store.client, store.collection)
    if generation is not None:
        update: dict[str, str] = {}
        if generation.fingerprint != fingerprint:
            update[PREFIX + "fingerprint"] = fingerprint
        if source_uri and source_uri not in generation.sources:
            update[PREFIX + "sources"] = json.dumps([*generation.sources, source_uri])
        if update:
            store.set_properties(update)
    return embedder, fingerprint


def _first_generation(store: ChunkStore, embedder: Embedder) -> None:
    """Create (or, after a crash before the alias, reuse) generation 1 and point the alias."""
    alias = store.collection
    existing = generations(store.client, alias)
    reusable = [g for g in existing if g.state == READY and same_model(g.model, embedder.name)]
    if reusable:
        store.retarget(reusable[-1].name)
        store.ensure(embedder.dimension)
    else:
        number = next_number(existing)
        generation = Generation(
            name=generation_name(alias, embedder.name, number),
            alias=alias,
            number=number,
            model=embedder.name,
            dimension=embedder.dimension,
            created_at=int(time.time()),
        )
        store.retarget(generation.name)
        store.ensure(embedder.dimension, generation.properties())
    try:
        store.client.create_alias(store.collection, alias)
    except Exception:
        target = alias_target(store.client, alias)  # another shard made it first
        if target is None:
            raise
        store.retarget(target)
    store.alias = alias
