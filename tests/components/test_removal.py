"""The document-removal step: a document's rows out of Milvus by its URI, the others left as they
are; idempotent; bad input refused (the model, and the engine steps' exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.ids import doc_id_for
from components.ingest.models import IngestParams, RemovalParams
from components.ingest.removal import canonical_uri, remove_documents
from components.ingest.run import ingest
from components.ingest.sources import open_source
from components.registry import ParameterError, get_job
from components.storage.milvus import ChunkStore
from tests.ingestion_runs import corpus
from tests.milvus_rows import read_manifest, read_rows

NAME = "document-removal"


@pytest.mark.parametrize(
    ("uris", "message"),
    [
        ([], "uris: must name at least one document"),
        ([""], "uris.0: must not be empty"),
        (["s3://b/docs/a.md", "   "], "uris.1: must not be empty"),
        (["http://host/a.md"], "uris.0: 'http://host/a.md' is not a document URI"),
        (["s3://bucket"], "names no object"),
        (["s3://bucket/"], "names no object"),
        (["s3://bucket/docs/"], "is a folder or prefix, not a document"),
        (["file://host/a.md"], "is not an absolute file URI"),
        (["file:///docs/"], "is a folder or prefix, not a document"),
        (["docs/"], "is a folder, not a document"),
        (["docs/.."], "is a folder, not a document"),
        (["docs/a\n.md"], "holds a control character"),
        ("s3://b/a.md", "uris: Input should be a valid list"),
    ],
)
def test_what_is_not_a_document_uri_is_refused_by_name(uris: Any, message: str) -> None:
    with pytest.raises(ParameterError) as refused:
        get_job(NAME).validate({"uris": uris})
    assert message in str(refused.value)
    assert "(parameters: uris, collection, milvus_uri)" in str(refused.value)


def test_document_uris_and_the_other_parameters_are_taken() -> None:
    uris = ["s3://docs/a.md", "file:///srv/docs/b%20c.md", "docs/c.txt", "/abs/d.pdf"]
    model = get_job(NAME).validate({"uris": uris, "milvus_uri": "m.db"})
    assert model.model_dump() == {"uris": uris, "collection": "documents", "milvus_uri": "m.db"}
    with pytest.raises(ParameterError, match="unknown parameter 'image'"):
        get_job(NAME).validate({"uris": uris, "image": "evil:latest"})
    with pytest.raises(ParameterError, match="collection"):
        get_job(NAME).validate({"uris": uris, "collection": "bad-name!"})


def test_a_uri_is_the_source_uri_ingestion_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real folder"
    (real / "sub").mkdir(parents=True)
    for name in ("a b.md", "sub/c.md"):
        (real / name).write_text("# x\n")
    (tmp_path / "link").symlink_to(real)  # a source given through a symlinked folder
    listed = {ref.name: ref.uri for ref in open_source(str(tmp_path / "link"), _settings()).list()}
    monkeypatch.chdir(tmp_path)
    assert canonical_uri("link/a b.md") == listed["a b.md"]
    assert canonical_uri(str(tmp_path / "link" / "sub" / "c.md")) == listed["sub/c.md"]
    assert canonical_uri("link/sub/../a b.md") == listed["a b.md"]
    assert canonical_uri(listed["a b.md"]) == listed["a b.md"]  # percent-encoded, as recorded
    assert canonical_uri("file://" + str(real / "a b.md")) == listed["a b.md"]
    # A document that is gone: its folder resolved all the same.
    (real / "a b.md").unlink()
    assert canonical_uri("link/a b.md") == listed["a b.md"]
    assert canonical_uri("s3://docs/x y.md") == "s3://docs/x y.md"


def _settings(**values: Any) -> Any:
    from components.settings import Settings

    return Settings(**values)


@pytest.fixture
def ingested(tmp_path: Path, make_settings: Any, minilm: Any) -> tuple[Path, Any]:
    """The three-document corpus ingested into the settings' Milvus Lite file."""
    settings = make_settings()
    source = corpus(tmp_path / "docs")
    report = ingest(IngestParams(source=str(source)), settings, embedder=minilm)
    assert report.documents.new == 3
    return source, settings


def test_removing_one_document_leaves_the_others_and_again_is_a_no_op(
    ingested: tuple[Path, Any],
) -> None:
    source, settings = ingested
    before, manifest = read_rows(settings.milvus_uri), read_manifest(settings.milvus_uri)
    gone = (source / "drizzt.txt").as_uri()
    assert {r["source_uri"] for r in before} == {
        (source / name).as_uri() for name in ("drizzt.txt", "khelben.md", "danilo.html")
    }

    params = RemovalParams(uris=["s3://docs/never.md", str(source / "drizzt.txt")])
    report = remove_documents(params, settings)

    drizzt = [r for r in before if r["source_uri"] == gone]
    assert report.removed == 1 and report.not_found == 1 and report.chunks == len(drizzt) > 0
    assert [(d.uri, d.source_uri, d.outcome) for d in report.documents] == [
        ("s3://docs/never.md", "s3://docs/never.md", "not_found"),
        (str(source / "drizzt.txt"), gone, "removed"),
    ]
    assert report.documents[1].doc_id == doc_id_for(gone)
    assert read_rows(settings.milvus_uri) == [r for r in before if r["source_uri"] != gone]
    assert read_manifest(settings.milvus_uri) == [
        m for m in manifest if m["doc_id"] != doc_id_for(gone)
    ]

    # Again, by its file:// URI and twice over: nothing there, nothing else touched.
    again = remove_documents(RemovalParams(uris=[gone, str(source / "drizzt.txt")]), settings)
    assert (again.removed, again.not_found, again.chunks) == (0, 1, 0)
    assert [d.outcome for d in again.documents] == ["not_found"]
    assert read_rows(settings.milvus_uri) == [r for r in before if r["source_uri"] != gone]


def test_a_removal_killed_halfway_is_finished_by_the_next(
    ingested: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the chunks went, before the manifest record did: the record is still there,
    so the next run finds the document and finishes it."""
    source, settings = ingested
    before = read_rows(settings.milvus_uri)
    real = ChunkStore.delete_document

    def chunks_then_crash(store: ChunkStore, state: Any) -> None:
        store.delete_chunks([r["pk"] for r in before if r["doc_id"] == state.doc_id])
        raise RuntimeError("killed")

    monkeypatch.setattr(ChunkStore, "delete_document", chunks_then_crash)
    params = RemovalParams(uris=[str(source / "khelben.md")])
    with pytest.raises(RuntimeError, match="killed"):
        remove_documents(params, settings)
    monkeypatch.setattr(ChunkStore, "delete_document", real)
    report = remove_documents(params, settings)
    assert (report.removed, report.not_found) == (1, 0)
    gone = doc_id_for((source / "khelben.md").as_uri())
    assert read_rows(settings.milvus_uri) == [r for r in before if r["doc_id"] != gone]
    assert gone not in {m["doc_id"] for m in read_manifest(settings.milvus_uri)}


def test_no_database_or_collection_is_nothing_to_remove_and_creates_nothing(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    source, settings = ingested
    uris = [str(source / "drizzt.txt")]
    missing = tmp_path / "nowhere" / "missing.db"
    report = remove_documents(RemovalParams(uris=uris, milvus_uri=str(missing)), settings)
    assert (report.removed, report.not_found) == (0, 1)
    assert not missing.parent.exists()

    other = remove_documents(RemovalParams(uris=uris, collection="other"), settings)
    assert (other.removed, other.not_found, other.collection) == (0, 1, "other")
    store = ChunkStore(settings.milvus_uri, "other")
    try:
        assert not store.exists()
    finally:
        store.close()
    assert len({r["doc_id"] for r in read_rows(settings.milvus_uri)}) == 3


def test_a_milvus_uri_that_cannot_work_is_bad_input(tmp_path: Path) -> None:
    params = RemovalParams(uris=["s3://docs/a.md"], milvus_uri=str(tmp_path / "m.txt"))
    with pytest.raises(ValueError, match=r"ending in \.db"):
        remove_documents(params, _settings())


def _engine_steps(tmp_path: Path) -> dict[str, Any]:
    """Each engine's step, called as its container calls it, with these uris."""
    from pipelines import removal as kfp_removal
    from workflows import removal as argo_removal

    def kfp(uris: Any, milvus_uri: str) -> Any:
        return kfp_removal.remove(uris, "documents", milvus_uri, None, None)

    def argo(uris: Any, milvus_uri: str) -> Any:
        text = uris if isinstance(uris, str) else json.dumps(uris)
        return argo_removal.remove(text, "documents", milvus_uri, tmp_path / "summary.md")

    return {"kfp": kfp, "argo": argo}


@pytest.mark.parametrize("engine", ["kfp", "argo"])
@pytest.mark.parametrize(
    ("uris", "milvus_uri", "message"),
    [
        ([], "", "bad input: 1 validation error for RemovalParams uris must name at least one"),
        (["ftp://x/a.md"], "", "is not a document URI"),
        (["s3://docs/a.md"], "m.txt", "a Milvus Lite database is a file ending in .db"),
    ],
)
def test_the_engine_steps_refuse_bad_input_with_exit_2(
    engine: str,
    uris: list[str],
    milvus_uri: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    step = _engine_steps(tmp_path)[engine]
    uri = str(tmp_path / milvus_uri) if milvus_uri else ""
    with pytest.raises(SystemExit) as exited:
        step(uris, uri or str(tmp_path / "m.db"))
    assert exited.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("bad input: ") and message in line
    assert not (tmp_path / "m.db").exists()


def test_the_argo_step_refuses_uris_that_are_not_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _engine_steps(tmp_path)["argo"]("s3://docs/a.md", str(tmp_path / "m.db"))
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("bad input: Expecting value")


def test_the_argo_step_writes_its_report_and_summary(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    source, settings = ingested
    step = _engine_steps(tmp_path)["argo"]
    result = step([str(source / "danilo.html"), "s3://docs/x.md"], settings.milvus_uri)
    assert (result["removed"], result["not_found"]) == (1, 1)
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# Document removal")
    assert "**1** removed" in summary and "| not found | 0 |" in summary
