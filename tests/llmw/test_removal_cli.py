"""`llmw ingest --remove` and `llmw run document-removal` on both local engines: one document's
rows out of Milvus by its URI, the others left as `llmw ingest` wrote them; again is a no-op; bad
input exits 2.

Milvus Lite admits one process per database file, and a process that opened one holds it until it
exits: the corpus is ingested once by `llmw ingest` (a subprocess), each test works on its own
copy of that database through subprocesses, and this process reads a copy only at the end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.ids import doc_id_for
from tests.ingestion_runs import corpus
from tests.llmw.test_ingest_cli import llmw
from tests.milvus_rows import read_manifest, read_rows

pytestmark = pytest.mark.slow
ENV = {"LLMW_PARTITION_WORKERS": "0"}


class Ingested:
    """The corpus, the database `llmw ingest` left (never opened here), its rows and manifest
    (read from a copy)."""

    def __init__(self, folder: Path) -> None:
        self.source = corpus(folder / "docs")
        self.database = folder / "ingested.db"
        done = llmw("ingest", str(self.source), "--milvus-uri", str(self.database), env=ENV)
        assert done.returncode == 0, done.stderr
        snapshot = folder / "snapshot.db"
        shutil.copytree(self.database, snapshot)
        self.rows = read_rows(str(snapshot))
        self.manifest = read_manifest(str(snapshot))
        assert len({r["doc_id"] for r in self.rows}) == len(self.manifest) == 3

    def copy(self, target: Path) -> Path:
        shutil.copytree(self.database, target)
        return target

    def check_removed(self, database: Path, *names: str) -> None:
        """``database`` holds what `llmw ingest` left but the documents ``names``."""
        gone = {doc_id_for((self.source / name).as_uri()) for name in names}
        assert read_rows(str(database)) == [r for r in self.rows if r["doc_id"] not in gone]
        assert read_manifest(str(database)) == [m for m in self.manifest if m["doc_id"] not in gone]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    return Ingested(tmp_path_factory.mktemp("removal"))


def outcomes(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d["source_uri"].rsplit("/", 1)[-1], d["outcome"]) for d in report["documents"]]


def test_llmw_ingest_remove_takes_one_document_out_and_again_is_a_no_op(
    ingested: Ingested, tmp_path: Path
) -> None:
    database = ingested.copy(tmp_path / "m.db")
    doc = ingested.source / "drizzt.txt"
    args = ["ingest", "--milvus-uri", str(database), "--remove", str(doc)]
    done = llmw(*args, "--remove", "s3://docs/never.md", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert outcomes(report) == [("drizzt.txt", "removed"), ("never.md", "not_found")]
    assert (report["removed"], report["not_found"]) == (1, 1)

    again = llmw(*args)  # the table, by its path this time
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"not found: {doc.as_uri()}",
        "0 removed, 1 not found in documents",
    ]
    ingested.check_removed(database, "drizzt.txt")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--remove", "http://host/a.md"], "uris.0: 'http://host/a.md' is not a document URI"),
        (["--remove", "s3://docs/"], "uris.0: 's3://docs/' names no object"),
        (["--remove", ""], "uris.0: must not be empty"),
        (["--remove", "a.md", "docs"], "--remove takes no SOURCE"),
        (["--remove", "a.md", "--prune"], "--remove takes no --prune"),
        (["--remove", "a.md", "--collection", "bad-name!"], "collection"),
        ([], "missing SOURCE"),
    ],
)
def test_llmw_ingest_remove_refuses_bad_input_with_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    database = tmp_path / "m.db"
    done = llmw("ingest", *args, "--milvus-uri", str(database), env=ENV)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert not database.exists()


@pytest.mark.parametrize("engine", ["kfp-local", "argo-local"])
def test_llmw_run_document_removal_on_each_local_engine(
    engine: str, ingested: Ingested, tmp_path: Path
) -> None:
    database = ingested.copy(tmp_path / "m.db")
    uris = json.dumps([(ingested.source / "khelben.md").as_uri(), "s3://docs/never.md"])
    params = ["-p", f"uris={uris}", "-p", f"milvus_uri={database}"]
    run = ["run", "document-removal", "--engine", engine, *params]
    done = llmw(*run, env=ENV, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert outcomes(report) == [("khelben.md", "removed"), ("never.md", "not_found")]
    assert report["chunks"] == sum(1 for r in ingested.rows if "khelben" in r["source_uri"])
    # Counts as the report's model has them (kfp.local hands numbers back as floats).
    assert [type(report[key]) for key in ("removed", "not_found", "chunks")] == [int] * 3

    again = llmw(*run, env=ENV, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert outcomes(json.loads(again.stdout)) == [
        ("khelben.md", "not_found"),
        ("never.md", "not_found"),
    ]
    ingested.check_removed(database, "khelben.md")


@pytest.mark.parametrize("engine", ["kfp-local", "argo-local"])
def test_llmw_run_document_removal_refuses_bad_input_with_exit_2(
    engine: str, tmp_path: Path
) -> None:
    refused = llmw("run", "document-removal", "--engine", engine, "-p", "uris=[]", cwd=tmp_path)
    assert refused.returncode == 2
    assert "document-removal: uris: must name at least one document" in refused.stderr
    assert list(tmp_path.iterdir()) == [], "nothing ran"

    # The step itself refuses a Milvus URI that can't work: exit 2, its "bad input" line.
    params = ["-p", 'uris=["s3://docs/a.md"]', "-p", f"milvus_uri={tmp_path / 'm.txt'}"]
    failed = llmw("run", "document-removal", "--engine", engine, *params, cwd=tmp_path)
    assert failed.returncode == 2, failed.stderr[-3000:]
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: document-removal") and "remove: bad input: " in last
    assert "a Milvus Lite database is a file ending in .db" in last


def test_an_object_removed_from_minio_removes_its_rows(
    s3_settings: Any, tmp_path: Path, minilm: Any
) -> None:
    """The document-removed sensor's request, as `llmw events simulate` shows it for MinIO's
    sample ObjectRemoved record, names the rows ingestion wrote from that object."""
    import io

    from components.ingest.models import IngestParams, RemovalParams
    from components.ingest.removal import remove_documents
    from components.ingest.run import ingest
    from components.storage.s3 import minio_client
    from testing.documents import topic, write_document

    client = minio_client(s3_settings)
    client.make_bucket("documents")
    for key in ("docs/old/notes.txt", "docs/keep.md"):
        data = write_document(tmp_path / key, key, topic(key)).read_bytes()
        client.put_object("documents", key, io.BytesIO(data), len(data))
    ingest(IngestParams(source="s3://documents/docs/"), s3_settings, embedder=minilm)

    record = Path(__file__).parents[1] / "sensors" / "events" / "minio-delete-record.json"
    simulated = llmw("events", "simulate", "document-removed", str(record), "--json")
    assert simulated.returncode == 0, simulated.stderr
    (trigger,) = json.loads(simulated.stdout)["triggers"]
    assert trigger["bridge"] == {"accepts": True}
    request = trigger["creates"]["request"]
    assert request["pipeline"] == "document-removal"

    report = remove_documents(RemovalParams(**request["parameters"]), s3_settings)
    assert outcomes(report.model_dump()) == [("notes.txt", "removed")]
    left = {r["source_uri"] for r in read_rows(s3_settings.milvus_uri)}
    assert left == {"s3://documents/docs/keep.md"}
