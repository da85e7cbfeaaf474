"""An ingestion run's listing: the plan step lists the source once and writes what it found where
the run's other steps read it, a local path or ``s3://`` (``components.storage.objects``, as batch
inference passes its shard reports). Each shard ingests its slice of it; the report step prunes
against the whole of it. Nothing after the plan lists the source again.

The file is named by the sha256 of its bytes, ``<base>/document-ingestion/listings/<sha256>.json``
(``base``: ``LLMW_RUN_DATA_URI``; compiled pipelines set ``LLMW_CLUSTER_RUN_DATA_URI``'s value).
A rerun over an unchanged source, or two runs over the same source at once, write the same bytes
under the same name; runs whose listings differ never share a file. A reader checks the bytes
against the name, so a listing caught half-written or altered fails the step (which retries)
rather than ingesting part of the source.

Format (JSON, keys sorted)::

    {"documents": [{"name": "guide/intro.md", "size": 1234, "skip_reason": null,
                    "uri": "file:///data/docs/guide/intro.md"}, ...],
     "root_uri": "file:///data/docs/", "version": 1}

``documents`` in the source's listing order; ``name`` is the path relative to the source,
``skip_reason`` says why a listed document will not be ingested (its type, its size; for a
folder's symlinks, FIFOs and sockets, what it is: ``components.ingest.local_files``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from components.ids import Shard, doc_id_for, sha256_hex
from components.ingest.sources import DocumentRef, DocumentSource
from components.storage.objects import is_s3, read_text, write_text

if TYPE_CHECKING:
    from components.settings import Settings

VERSION = 1
FOLDER = "document-ingestion/listings"
_NAME = re.compile(r"^[0-9a-f]{64}\.json$")


class ListingError(ValueError):
    """A listing that is not what its name says, or that belongs to another source."""


@dataclass(frozen=True)
class Listing:
    """Every document a source held when the plan step listed it."""

    root_uri: str
    documents: tuple[DocumentRef, ...]

    @classmethod
    def of(cls, source: DocumentSource) -> Listing:
        return cls(source.root_uri, tuple(source.list()))

    def slice(self, shard: Shard) -> tuple[DocumentRef, ...]:
        """Shard ``I/N``'s documents: the I-th of N contiguous runs (sizes differ by 1 at most)."""
        count = len(self.documents)
        start = shard.index * count // shard.count
        return self.documents[start : (shard.index + 1) * count // shard.count]

    def doc_ids(self) -> set[str]:
        return {doc_id_for(ref.uri) for ref in self.documents}

    def to_json(self) -> str:
        data = {
            "version": VERSION,
            "root_uri": self.root_uri,
            "documents": [asdict(ref) for ref in self.documents],
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Listing:
        data = json.loads(text)
        if data.get("version") != VERSION:
            raise ListingError(f"listing version {data.get('version')!r}, expected {VERSION}")
        refs = tuple(DocumentRef(**ref) for ref in data["documents"])
        return cls(data["root_uri"], refs)


def run_data_base(settings: Settings) -> str:
    """Where a run's steps leave data for each other (``LLMW_RUN_DATA_URI``), without a trailing
    slash; a local base is made absolute, so that steps in other working folders find it."""
    base = settings.run_data_uri
    if not is_s3(base):
        base = str(Path(base).expanduser().resolve())
    return base.rstrip("/")


def listing_uri(text: str, settings: Settings) -> str:
    """Where a listing of these bytes lives: under the settings' run data, named by its hash."""
    return f"{run_data_base(settings)}/{FOLDER}/{sha256_hex(text)}.json"


def write_listing(listing: Listing, settings: Settings) -> str:
    """Write ``listing`` (once: an identical local file is left alone); returns its URI."""
    text = listing.to_json()
    uri = listing_uri(text, settings)
    if not is_s3(uri) and _same_file(Path(uri), text):
        return uri  # rewriting would truncate it under a concurrent run's reader
    write_text(uri, text, settings)
    return uri


def read_listing(uri: str, settings: Settings, root_uri: str | None = None) -> Listing:
    """The listing at ``uri``, checked against its name (and against the source's ``root_uri``
    when given); ListingError when it does not match."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    if not _NAME.match(name):
        raise ListingError(f"{uri} is not a listing (expected <sha256>.json)")
    text = read_text(uri, settings)
    if sha256_hex(text) != name.removesuffix(".json"):
        raise ListingError(f"{uri}: content does not match its name (half-written or altered)")
    listing = Listing.from_json(text)
    if root_uri is not None and listing.root_uri != root_uri:
        raise ListingError(f"{uri} lists {listing.root_uri}, not this run's source {root_uri}")
    return listing


def _same_file(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except FileNotFoundError:
        return False
