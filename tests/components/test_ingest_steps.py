"""The ingestion job's engine steps: the plan lists the source once and writes the listing to
storage; shards ingest their slices of it and the report prunes against it, never listing again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.ids import Shard
from components.ingest import run as ingest_run
from components.ingest.listing import Listing, ListingError, read_listing, write_listing
from components.ingest.models import (
    MAX_ISSUE_CHARS,
    MAX_LISTED_ISSUES,
    DocumentIssue,
    IngestParams,
    IngestReport,
)
from components.ingest.run import ingest
from components.ingest.sources import DocumentRef, LocalSource, open_source
from components.ingest.steps import (
    MAX_SHARDS,
    finish_ingestion,
    ingest_shard,
    plan_shards,
    report_markdown,
    store_shard_report,
)
from components.storage.s3 import minio_client
from testing.documents import topic, write_document
from tests.milvus_rows import read_rows


def corpus(folder: Path, count: int) -> list[Path]:
    return [
        write_document(folder / f"doc-{i}.md", f"Doc {i}", topic(f"service{i}", words=60))
        for i in range(count)
    ]


@pytest.fixture
def step_settings(make_settings: Any, tmp_path: Path, minilm: Any, monkeypatch: Any) -> Any:
    """Settings with the run data under tmp_path; the steps embed with the session's model."""
    monkeypatch.setattr(ingest_run, "make_embedder", lambda settings: minilm)
    return make_settings(run_data_uri=str(tmp_path / "runs"), ingest_docs_per_shard=3)


def refuse_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, listing a folder fails the test."""

    def listed(self: LocalSource) -> Any:
        raise AssertionError(f"{self.path} listed again after the plan step")

    monkeypatch.setattr(LocalSource, "list", listed)


def test_shards_and_prune_read_the_plans_listing_and_never_list_again(
    tmp_path: Path, step_settings: Any, make_settings: Any, minilm: Any, monkeypatch: Any
) -> None:
    corpus(tmp_path / "docs", 8)
    params = {"source": str(tmp_path / "docs"), "prune": True}

    planned = plan_shards(params, step_settings)
    uri = planned[0]["listing"]
    assert [spec["shard"] for spec in planned] == ["0/3", "1/3", "2/3"]
    assert {spec["listing"] for spec in planned} == {uri}
    assert Path(uri).parent == tmp_path / "runs" / "document-ingestion" / "listings"
    written = json.loads(Path(uri).read_text())
    assert written["root_uri"] == (tmp_path / "docs").resolve().as_uri() + "/"
    assert [d["name"] for d in written["documents"]] == [f"doc-{i}.md" for i in range(8)]
    assert set(written["documents"][0]) == {"uri", "name", "size", "skip_reason"}

    refuse_listing(monkeypatch)
    reports = [ingest_shard(params, s["shard"], s["listing"], step_settings) for s in planned]
    assert [r["documents"]["seen"] for r in reports] == [2, 3, 3]  # contiguous slices
    report = finish_ingestion(params, reports, planned, step_settings)
    assert report["documents"]["seen"] == report["documents"]["new"] == 8
    assert report["documents"]["deleted"] == 0 and report["prune_error"] is None

    monkeypatch.undo()
    clean = make_settings(milvus_uri=str(tmp_path / "clean.db"))
    ingest(IngestParams(source=str(tmp_path / "docs")), clean, embedder=minilm)
    assert read_rows(step_settings.milvus_uri) == read_rows(clean.milvus_uri)


def test_prune_against_the_listing_deletes_what_is_gone_and_refuses_an_empty_one(
    tmp_path: Path, step_settings: Any, minilm: Any
) -> None:
    files = corpus(tmp_path / "docs", 4)
    ingest(IngestParams(source=str(tmp_path / "docs")), step_settings, embedder=minilm)
    rows = read_rows(step_settings.milvus_uri)
    params = {"source": str(tmp_path / "docs"), "prune": True}

    files[0].unlink()  # one of four gone: under the 50 % limit
    report = finish_ingestion(params, [], plan_shards(params, step_settings), step_settings)
    assert report["documents"]["deleted"] == 1

    for path in files[1:]:
        path.unlink()
    planned = plan_shards(params, step_settings)
    assert planned == [{"shard": "0/1", "listing": planned[0]["listing"]}]
    assert json.loads(Path(planned[0]["listing"]).read_text())["documents"] == []
    report = finish_ingestion(params, [], planned, step_settings)
    assert "empty" in report["prune_error"] and report["documents"]["deleted"] == 0
    assert len(read_rows(step_settings.milvus_uri)) == len(rows) - len(
        [r for r in rows if r["source_uri"] == files[0].resolve().as_uri()]
    )


def test_shard_count_follows_the_docs_per_shard_setting(
    tmp_path: Path, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus(tmp_path / "docs", 20)
    params = {"source": str(tmp_path / "docs")}
    runs = str(tmp_path / "runs")
    for per_shard, shards in [(1, MAX_SHARDS), (3, 7), (20, 1), (200, 1)]:
        settings = make_settings(run_data_uri=runs, ingest_docs_per_shard=per_shard)
        planned = plan_shards(params, settings)
        assert [s["shard"] for s in planned] == [f"{i}/{shards}" for i in range(shards)]
    # LLMW_INGEST_DOCS_PER_SHARD sets it, like every setting.
    monkeypatch.setenv("LLMW_INGEST_DOCS_PER_SHARD", "10")
    assert len(plan_shards(params, make_settings(run_data_uri=runs))) == 2


@pytest.mark.parametrize("documents", [0, 1, 2, 7, 16, 17])
@pytest.mark.parametrize("count", [1, 2, 3, 16])
def test_slices_cover_the_listing_exactly_once(documents: int, count: int) -> None:
    refs = tuple(DocumentRef(f"file:///d/{i}.md", f"{i}.md", 1) for i in range(documents))
    listing = Listing("file:///d/", refs)
    slices = [listing.slice(Shard(i, count)) for i in range(count)]
    assert [ref for part in slices for ref in part] == list(refs)
    assert max(map(len, slices)) - min(map(len, slices)) <= 1


def test_the_listings_name_follows_its_content(
    tmp_path: Path, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reruns over the same source share one file; other sources or a changed source never do;
    a relative run data folder is made absolute for the steps that read it."""
    monkeypatch.chdir(tmp_path)
    corpus(tmp_path / "a", 2)
    corpus(tmp_path / "b", 2)
    settings = make_settings(run_data_uri="relative/runs")
    a = tmp_path / "a"

    def listing_of(folder: Path) -> str:
        return write_listing(Listing.of(open_source(str(folder), settings)), settings)

    first = listing_of(a)
    assert Path(first).is_absolute() and Path(first).is_file()
    assert Path(first).is_relative_to(tmp_path / "relative" / "runs")
    stamp = Path(first).stat().st_mtime_ns
    assert listing_of(a) == first
    assert Path(first).stat().st_mtime_ns == stamp  # an identical listing is not rewritten
    assert listing_of(tmp_path / "b") != first
    write_document(a / "new.md", "New", topic("new"))
    assert listing_of(a) != first
    assert len(list(Path(first).parent.iterdir())) == 3


def test_a_listing_that_is_not_what_its_name_says_is_refused(
    tmp_path: Path, make_settings: Any
) -> None:
    corpus(tmp_path / "a", 2)
    corpus(tmp_path / "b", 2)
    settings = make_settings(run_data_uri=str(tmp_path / "runs"))
    source = open_source(str(tmp_path / "a"), settings)
    uri = write_listing(Listing.of(source), settings)
    assert len(read_listing(uri, settings, source.root_uri).documents) == 2

    other = open_source(str(tmp_path / "b"), settings).root_uri
    with pytest.raises(ListingError, match="not this run's source"):
        read_listing(uri, settings, other)
    Path(uri).write_text(Path(uri).read_text()[:-10])  # caught half-written
    with pytest.raises(ListingError, match="does not match its name"):
        read_listing(uri, settings, source.root_uri)
    with pytest.raises(ListingError, match="not a listing"):
        read_listing(str(tmp_path / "runs" / "listing.json"), settings)


def test_the_listing_travels_through_s3(s3_settings: Any, tmp_path: Path) -> None:
    minio_client(s3_settings).make_bucket("runs")
    corpus(tmp_path / "docs", 3)
    settings = s3_settings.model_copy(update={"run_data_uri": "s3://runs/llmw"})
    source = open_source(str(tmp_path / "docs"), settings)
    (spec,) = plan_shards({"source": str(tmp_path / "docs")}, settings)
    assert spec["listing"].startswith("s3://runs/llmw/document-ingestion/listings/")
    assert read_listing(spec["listing"], settings, source.root_uri) == Listing.of(source)


def test_shard_reports_travel_through_storage_under_the_run(
    tmp_path: Path, step_settings: Any
) -> None:
    """With a run id (Argo's workflow uid) each spec names where its shard leaves its report; the
    report step reads them there, and a shard that left none fails it, naming the shard."""
    corpus(tmp_path / "docs", 4)
    params = {"source": str(tmp_path / "docs")}
    planned = plan_shards(params, step_settings, run_id="uid-1")
    reports = tmp_path / "runs" / "document-ingestion" / "reports" / "uid-1"
    assert [spec["report"] for spec in planned] == [
        str(reports / "shard-0-of-2.json"),
        str(reports / "shard-1-of-2.json"),
    ]
    assert plan_shards(params, step_settings, run_id="uid-2")[0]["report"] != planned[0]["report"]
    with pytest.raises(FileNotFoundError, match=r"shard 0/2 left no report at .*shard-0-of-2"):
        finish_ingestion(params, None, planned, step_settings)

    for spec in planned:
        report = ingest_shard(params, spec["shard"], spec["listing"], step_settings)
        passed_on = store_shard_report(report, spec["report"], step_settings)
        assert passed_on == {
            "report": spec["report"],
            "documents": report["documents"],
            "chunks": report["chunks"],
        }
    merged = finish_ingestion(params, None, planned, step_settings)
    assert merged["documents"]["new"] == 4 and merged["chunks"] > 0
    with pytest.raises(ValueError, match=r"run id '\.\./x'"):
        plan_shards(params, step_settings, run_id="../x")


def test_reports_list_the_first_failures_and_count_the_rest(tmp_path: Path) -> None:
    """A report that travels between steps stays small whatever the source holds: the first
    MAX_LISTED_ISSUES failures (errors cut short), the others counted; merging keeps the count."""
    issues = [
        DocumentIssue(source_uri=f"file:///d/{i}.md", error="x" * 2000)
        for i in range(MAX_LISTED_ISSUES + 7)
    ]
    report = IngestReport(failures=issues, skipped=issues[:3])
    report.documents.failed = len(issues)
    bounded = report.bounded()
    assert [f.source_uri for f in bounded.failures] == [
        f.source_uri for f in issues[:MAX_LISTED_ISSUES]
    ]
    assert bounded.failures_unlisted == 7 and bounded.skipped_unlisted == 0
    assert all(len(f.error) == MAX_ISSUE_CHARS for f in bounded.failures)
    assert len(report.failures) == MAX_LISTED_ISSUES + 7  # the original is left whole
    merged = IngestReport.merge([bounded, bounded]).bounded()
    assert len(merged.failures) == MAX_LISTED_ISSUES
    assert merged.failures_unlisted == 2 * 7 + MAX_LISTED_ISSUES
    assert merged.documents.failed == 2 * len(issues)
    markdown = report_markdown(merged.model_dump(), {"source": "/d"})
    assert f"… and {merged.failures_unlisted} more failed documents, not listed." in markdown
    assert len(json.dumps(merged.model_dump())) < 200_000
