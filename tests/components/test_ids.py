"""Deterministic ids, as DESIGN.md defines them."""

from __future__ import annotations

import hashlib
import uuid

from components.ids import chunk_key, doc_id_for, pipeline_fingerprint, stable_shard


def test_doc_id_is_uuid5_of_the_canonical_uri() -> None:
    uri = "s3://docs/homelab/nodes.md"
    assert doc_id_for(uri) == str(uuid.uuid5(uuid.NAMESPACE_URL, uri))
    assert doc_id_for(uri) != doc_id_for("s3://docs/homelab/nodes.pdf")


def test_chunk_key_formula() -> None:
    text_hash = hashlib.sha256(b"some text").hexdigest()
    expected = hashlib.sha256(f"d1|3|{text_hash}".encode()).hexdigest()
    assert chunk_key("d1", 3, "some text") == expected
    assert chunk_key("d1", 4, "some text") != expected


def test_fingerprint_is_order_independent_and_sensitive() -> None:
    a = pipeline_fingerprint(model="m", dimension=384, max_characters=1000)
    assert a == pipeline_fingerprint(max_characters=1000, dimension=384, model="m")
    assert a != pipeline_fingerprint(model="m", dimension=384, max_characters=999)


def test_stable_shards_cover_every_key_once() -> None:
    keys = [f"doc-{i}" for i in range(500)]
    shards = [stable_shard(k, 4) for k in keys]
    assert set(shards) == {0, 1, 2, 3}
    assert shards == [stable_shard(k, 4) for k in keys]
