"""Embedding backends on the packaged MiniLM: export to ONNX Runtime and OpenVINO, load, embed,
the quality gate refusing a broken export, the gated default, and the pipeline fingerprint."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.embedding_export import export as export_module
from components.embedding_export.export import (
    ExportRequest,
    GateRefusedError,
    build_export,
    publish,
)
from components.embedding_export.gate import GateSet
from components.embedding_export.manifest import (
    MANIFEST_NAME,
    ManifestError,
    file_digests,
    read_manifest,
)
from components.embedding_export.quantize import excluded_nodes
from components.ingest.embedders import make_embedder, runtime_fields
from components.ingest.run import ingest
from components.settings import Settings
from tests.embedding_exports import scrambled_copy, small_gate_set

MODEL = "all-MiniLM-L6-v2"
TEXTS = [
    "Milvus stores the chunks' embeddings and searches them by cosine similarity.",
    "The NATS bridge turns AI_PIPELINE messages into pipeline runs.",
    "Knead the dough, let it rise for an hour, then bake it until golden.",
    "drizzt runs the embeddings on an AMD Radeon 680M with ROCm.",
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def gate_set() -> GateSet:
    return small_gate_set()


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory, minilm: Any, gate_set: GateSet) -> Any:
    """onnx fp32, onnx int8 (dynamic) and openvino bf16 exports, made once for the module."""
    root = tmp_path_factory.mktemp("exports")
    # The gate has its own tests: here a 48-chunk set is too coarse to gate int8 on (one
    # query's rank moves MRR@10 by two points), so its thresholds are wide open.
    settings = Settings(embedding_gate_max_recall_drop=1.0, embedding_gate_max_mrr_drop=1.0)
    built = {}
    for backend, precision in (("onnx", "fp32"), ("onnx", "int8"), ("openvino", "bf16")):
        request = ExportRequest(MODEL, backend, precision)  # type: ignore[arg-type]
        outcome = build_export(request, root / f"{backend}-{precision}", settings, gate_set, minilm)
        built[(backend, precision)] = outcome
    return built


@pytest.mark.parametrize(
    ("backend", "precision", "min_cosine"),
    [("onnx", "fp32", 0.99999), ("onnx", "int8", 0.98), ("openvino", "bf16", 0.999)],
)
def test_an_export_loads_by_path_and_embeds_like_torch(
    exports: Any, minilm: Any, backend: str, precision: str, min_cosine: float
) -> None:
    outcome = exports[(backend, precision)]
    manifest = read_manifest(outcome.folder)  # verifies every file's checksum
    assert (manifest.backend, manifest.precision, manifest.source_model) == (
        backend,
        precision,
        MODEL,
    )
    assert manifest.files == file_digests(outcome.folder)
    assert manifest.quality.passed and manifest.quality.table[0][0] == "metric"
    assert {"recall_at_5", "recall_at_5_fp32", "mrr_at_10", "mean_cosine"} <= set(
        manifest.quality.figures
    )
    if precision == "int8":
        assert manifest.quantization is not None and manifest.quantization.mode == "dynamic"

    embedder = make_embedder(Settings(embedding_model=str(outcome.folder)))
    assert (embedder.name, embedder.dimension) == (MODEL, 384)
    assert runtime_fields(embedder) == {"backend": backend, "precision": precision}
    vectors = embedder.embed(TEXTS)
    expected = minilm.embed(TEXTS)
    for got, want in zip(vectors, expected, strict=True):
        assert math.isclose(math.sqrt(sum(x * x for x in got)), 1.0, rel_tol=1e-5)
        assert cosine(got, want) >= min_cosine
    # Batching sorts by length: the order of the answers is still the callers'.
    assert embedder.embed(TEXTS[::-1])[0] == pytest.approx(vectors[-1], abs=1e-5)


def test_an_export_runs_as_its_manifest_says_and_refuses_a_changed_file(
    exports: Any, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(exports[("onnx", "int8")].folder, copy)
    # The backend setting (placement's, per GPU stack) is for models that are not exports.
    loaded = make_embedder(Settings(embedding_model=str(copy), embedding_backend="openvino"))
    assert runtime_fields(loaded) == {"backend": "onnx", "precision": "int8"}
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ManifestError, match=r"model\.onnx: checksum differs"):
        make_embedder(Settings(embedding_model=str(copy)))


def test_the_gate_refuses_a_broken_export_with_the_table_and_writes_nothing(
    tmp_path: Path, minilm: Any, gate_set: GateSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.embedding_export.export import gate

    broken = scrambled_copy(tmp_path / "scrambled")
    real_export = export_module.export_onnx
    monkeypatch.setattr(
        export_module, "export_onnx", lambda _src, out: real_export(str(broken), out)
    )
    request = ExportRequest(MODEL, "onnx", "fp32")
    target = tmp_path / "out"
    with pytest.raises(GateRefusedError, match="refused by the quality gate: recall@5") as caught:
        build_export(request, target, Settings(), gate_set, minilm)
    assert not target.exists()
    result = caught.value.result
    rows = {row.metric: row for row in result.rows}
    assert rows["recall@5"].old - rows["recall@5"].new > 0.01
    assert rows["mean cosine to fp32"].new < 0.9
    assert result.markdown().startswith("| metric | fp32 (torch) | onnx fp32 |")

    # The thresholds are settings: wide open, the same broken export passes and is written.
    lenient = Settings(embedding_gate_max_recall_drop=1.0, embedding_gate_max_mrr_drop=1.0)
    outcome = build_export(request, target, lenient, gate_set, minilm)
    assert outcome.gate.passed and read_manifest(target).quality.passed
    assert not gate(target, outcome.manifest, minilm, gate_set, Settings()).passed


def test_exclusions_name_nodes_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    from components.embedding_export.onnx_export import export_onnx
    from components.ingest.embedders import resolve_model_path

    traced = export_onnx(resolve_model_path(MODEL), tmp_path / "fp32")
    attention = excluded_nodes(traced.path, ["attention"])
    assert len(attention) == 12  # two activation MatMuls in each of the six layers
    last = excluded_nodes(traced.path, ["last"])
    assert last and all("layer.5/" in name for name in last)
    with pytest.raises(ValueError, match=r"exclusion 'layer\.9' matches no node"):
        excluded_nodes(traced.path, ["layer.9"])


def test_static_int8_calibrates_on_a_corpus_with_exclusions(
    tmp_path: Path, minilm: Any, gate_set: GateSet
) -> None:
    from tests.conftest import EXAMPLE_DOCS

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("milvus-rag.md", "gitops-flux.md", "nats-ai-pipeline-stream.md"):
        shutil.copy(EXAMPLE_DOCS / name, corpus / name)
    request = ExportRequest(
        MODEL, "onnx", "int8", calibration=str(corpus), exclude=("attention", "last")
    )
    settings = Settings(embedding_gate_max_recall_drop=1.0, embedding_gate_max_mrr_drop=1.0)
    outcome = build_export(request, tmp_path / "static", settings, gate_set, minilm)
    quantization = outcome.manifest.quantization
    assert quantization is not None and quantization.mode == "static"
    assert quantization.calibration == str(corpus) and quantization.calibration_chunks >= 3
    assert quantization.excluded_nodes > 12  # attention's 12 MatMuls, and the last layer
    vectors = make_embedder(Settings(embedding_model=str(outcome.folder))).embed(TEXTS)
    assert all(cosine(a, b) > 0.8 for a, b in zip(vectors, minilm.embed(TEXTS), strict=True))


def fingerprints(uri: str) -> set[str]:
    """The pipeline fingerprints of the rows behind the alias ``documents``."""
    from components.storage.milvus import ChunkStore

    store = ChunkStore(uri, "documents")
    try:
        store.open_existing()
        store.client.load_collection(store.collection)
        rows = store.client.query(
            store.collection, filter="", output_fields=["pipeline_fingerprint"]
        )
        return {str(r["pipeline_fingerprint"]) for r in rows}
    finally:
        store.close()


def test_the_fingerprint_changes_with_the_backend(
    exports: Any, tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    from components.ingest.models import IngestParams
    from tests.conftest import EXAMPLE_DOCS

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("milvus-rag.md", "gitops-flux.md"):
        shutil.copy(EXAMPLE_DOCS / name, docs / name)
    settings = make_settings()
    params = IngestParams(source=str(docs))
    assert ingest(params, settings, embedder=minilm).documents.new == 2
    torch_prints = fingerprints(settings.milvus_uri)

    exported = make_embedder(Settings(embedding_model=str(exports[("onnx", "int8")].folder)))
    switched = ingest(params, settings, embedder=exported)
    assert switched.documents.unchanged == 0 and switched.chunks > 0  # every one re-embedded
    onnx_prints = fingerprints(settings.milvus_uri)
    assert len(torch_prints) == len(onnx_prints) == 1 and torch_prints != onnx_prints
    assert ingest(params, settings, embedder=exported).documents.unchanged == 2
    assert runtime_fields(minilm) == {}  # torch fp32: the fingerprint made before backends


def test_auto_exports_the_default_once_and_caches_it(
    tmp_path: Path, gate_set: GateSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.embedding_export import gate as gate_module
    from components.embedding_export.runtime import ExportedEmbedder

    monkeypatch.setattr(gate_module, "shipped_gate_set", lambda: gate_set)
    monkeypatch.setattr(export_module, "shipped_gate_set", lambda: gate_set)
    settings = Settings(
        embedding_backend="auto",
        embedding_cache_dir=tmp_path / "cache",
        embedding_gate_max_recall_drop=1.0,  # the mechanism here; the gate has its own tests
        embedding_gate_max_mrr_drop=1.0,
    )
    first = make_embedder(settings)
    assert isinstance(first, ExportedEmbedder)
    assert (first.backend, first.precision) == ("openvino", "bf16")  # the first candidate
    records = list((tmp_path / "cache").glob("*/choice-*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["choice"] == "openvino-bf16"

    def no_export(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("exported again")

    monkeypatch.setattr("components.embedding_export.resolve.build_export", no_export)
    again = make_embedder(settings)
    assert isinstance(again, ExportedEmbedder) and again.folder == first.folder
    # Any other model stays on torch under auto; torch never runs int8.
    with pytest.raises(ValueError, match="torch backend runs fp32 only"):
        make_embedder(
            settings.model_copy(
                update={"embedding_backend": "torch", "embedding_precision": "int8"}
            )
        )


def test_auto_falls_back_to_torch_when_every_candidate_is_refused(
    tmp_path: Path, minilm: Any, gate_set: GateSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.embedding_export.resolve import cached_embedder
    from components.ingest.embedders import SentenceTransformerEmbedder, resolve_model_path

    broken = scrambled_copy(tmp_path / "scrambled")
    real_export = export_module.export_onnx
    monkeypatch.setattr(
        export_module, "export_onnx", lambda _src, out: real_export(str(broken), out)
    )
    monkeypatch.setattr(export_module, "shipped_gate_set", lambda: gate_set)
    settings = Settings(embedding_backend="auto", embedding_cache_dir=tmp_path / "cache")
    source = Path(resolve_model_path(MODEL))
    embedder = cached_embedder(MODEL, source, [("onnx", "fp32")], settings)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    record = json.loads(next((tmp_path / "cache").glob("*/choice-*.json")).read_text())
    assert record["choice"] is None and "refused by the quality gate" in record["refused"][0]
    # A backend asked for by name is refused instead, with the gate's reasons.
    named = settings.model_copy(update={"embedding_backend": "onnx"})
    with pytest.raises(ValueError, match="refused by the quality gate"):
        cached_embedder(MODEL, source, [("onnx", "int8")], named)


def test_an_export_published_to_s3_loads_from_there(
    exports: Any, s3_settings: Any, tmp_path: Path
) -> None:
    from components.storage.s3 import minio_client

    minio_client(s3_settings).make_bucket("embedding-exports")
    where = publish(
        exports[("onnx", "int8")], "s3://embedding-exports/minilm/onnx-int8", s3_settings
    )
    assert where == "s3://embedding-exports/minilm/onnx-int8/"
    names = {
        o.object_name.rsplit("/", 1)[-1]
        for o in minio_client(s3_settings).list_objects("embedding-exports", recursive=True)
    }
    assert MANIFEST_NAME in names and "model.onnx" in names
    settings = s3_settings.model_copy(
        update={"embedding_model": where, "embedding_cache_dir": tmp_path / "cache"}
    )
    embedder = make_embedder(settings)
    assert (embedder.name, getattr(embedder, "backend", None)) == (MODEL, "onnx")
    assert len(embedder.embed(TEXTS[:1])[0]) == 384
