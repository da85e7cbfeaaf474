"""Embedding rollouts under bad input and faults: refusals that change nothing, the lock, a plain
collection adopted as generation 0, crashes during the build and during the switch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.embedding_rollout.lock import RolloutLock, RolloutLockedError
from components.embedding_rollout.models import RolloutRefusedError
from components.embedding_rollout.rollout import _Rollout, rollout_embeddings
from components.ingest.generations import ModelUnavailableError
from components.ingest.models import IngestParams
from components.ingest.retrieval_eval import QuerySetError
from components.ingest.run import ingest
from components.storage.milvus import ChunkStore
from tests.components.rollout_lab import Lab, make_lab, params
from tests.conftest import REPO
from tests.milvus_rows import read_manifest, read_rows

GEN1 = "documents__all_minilm_l6_v2__1"
GEN1_ONLY = [GEN1, GEN1 + "_documents"]


def generations_of(lab: Lab) -> list[str]:
    return [c for c in lab.collections() if c.startswith("documents__")]


class Fib:
    """An embedder that says it makes 128-dimensional vectors and makes MiniLM's 384."""

    def __init__(self, real: Any) -> None:
        self.real, self.name, self.dimension, self.batch_size = real, "fib", 128, 32

    def embed(self, texts: Any) -> Any:
        return self.real.embed(texts)


def test_refusals_change_nothing(lab: Lab, second_models: dict[str, str], minilm: Any) -> None:
    projected = second_models["projected"]
    outside = lab.docs.parent / "elsewhere.txt"
    with lab.queries.open("a") as queries:
        queries.write(json.dumps({"query": "q", "relevant": [outside.as_uri()]}) + "\n")
    with pytest.raises(RolloutRefusedError, match=r"names 1 source that .*/elsewhere\.txt"):
        rollout_embeddings(params(lab, projected), lab.settings)

    lab.queries.write_text('{"query": "q", "relevant": ["x"]}\n{"query": "no relevant"}\n')
    with pytest.raises(QuerySetError, match="line 2"):
        rollout_embeddings(params(lab, projected), lab.settings)
    lab.queries.write_text('{"query": "bread", "relevant": ["docs/sourdough.txt"]}\n')

    with pytest.raises(ModelUnavailableError, match="'/nowhere/e5-large'"):
        rollout_embeddings(params(lab, "/nowhere/e5-large"), lab.settings)
    with pytest.raises(RolloutRefusedError, match=r"reports 128-dimensional .* makes 384"):
        rollout_embeddings(params(lab, "fib"), lab.settings, embedder=Fib(minilm))
    with pytest.raises(RolloutRefusedError, match="already serves 'all-MiniLM-L6-v2'"):
        rollout_embeddings(params(lab, "all-MiniLM-L6-v2"), lab.settings)
    with pytest.raises(RolloutRefusedError, match="no alias or collection 'elsewhere'"):
        rollout_embeddings(params(lab, projected, alias="elsewhere"), lab.settings)

    assert generations_of(lab) == GEN1_ONLY and lab.target() == GEN1
    assert lab.collections() == [*GEN1_ONLY, "llmw_rollout_locks"]


def test_a_second_rollout_of_the_alias_is_refused_while_one_holds_the_lock(
    lab: Lab, second_models: dict[str, str]
) -> None:
    client = lab.client()
    other = RolloutLock(client, "documents", ttl_s=600)  # alive: this very process
    other.acquire()
    try:
        with pytest.raises(RolloutLockedError, match=r"in progress .* one rollout per alias"):
            rollout_embeddings(params(lab, second_models["projected"]), lab.settings)
        assert generations_of(lab) == GEN1_ONLY and lab.target() == GEN1
        assert other.holder() is not None and other.holder()["owner"] == other.owner  # type: ignore[index]
    finally:
        other.release()
        client.close()
    report = rollout_embeddings(params(lab, second_models["projected"]), lab.settings)
    assert report.outcome == "promoted"


def test_a_lock_is_taken_over_when_its_lease_ended_or_its_owner_died(lab: Lab) -> None:
    client = lab.client()
    now = [1_000_000.0]
    try:
        first = RolloutLock(client, "documents", ttl_s=60, clock=lambda: now[0])
        first.acquire()
        second = RolloutLock(client, "documents", ttl_s=60, clock=lambda: now[0])
        with pytest.raises(RolloutLockedError):
            second.acquire()
        now[0] += 45
        first.renew()  # renewed: the lease now ends 60 s from here
        now[0] += 30
        with pytest.raises(RolloutLockedError):
            second.acquire()
        now[0] += 31
        second.acquire()  # the lease ended
        first.release()  # not its lock any more: leaves it
        assert second.holder()["owner"] == second.owner  # type: ignore[index]

        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        dead = RolloutLock(client, "other", ttl_s=600)
        dead.owner = f"{dead.host}:{int(gone.stdout)}:crashed"
        dead.acquire()  # its process has exited: the next rollout takes over at once
        RolloutLock(client, "other", ttl_s=600).acquire()
        elsewhere = RolloutLock(client, "third", ttl_s=600)
        elsewhere.owner = "another-host:1:token"  # not ours to judge: the lease holds
        elsewhere.acquire()
        with pytest.raises(RolloutLockedError, match="another-host:1:token"):
            RolloutLock(client, "third", ttl_s=600).acquire()
    finally:
        client.close()


def test_a_plain_collection_is_adopted_as_generation_zero_without_copying(
    tmp_path: Path, make_settings: Any, second_models: dict[str, str]
) -> None:
    lab = make_lab(tmp_path, make_settings, ingested=False)
    store = ChunkStore(lab.uri, "documents")  # the layout before aliases
    store.ensure(384)
    store.close()
    ingest(IngestParams(source=str(lab.docs)), lab.settings)
    assert lab.collections() == ["documents", "documents_documents"] and lab.target() is None
    rows, manifest = read_rows(lab.uri), read_manifest(lab.uri)
    assert len(rows) == 12

    with pytest.raises(RolloutRefusedError, match=r"records no sources .* --source"):
        rollout_embeddings(params(lab, second_models["projected"]), lab.settings)
    assert lab.collections() == ["documents", "documents_documents", "llmw_rollout_locks"]

    report = rollout_embeddings(
        params(lab, second_models["projected"], sources=[str(lab.docs)]), lab.settings
    )
    gen0 = "documents__all_minilm_l6_v2__0"
    assert report.adopted == gen0 and report.previous == gen0
    assert report.outcome == "promoted" and report.candidate == "documents__projected128__1"
    assert report.kept == [gen0]
    assert "documents" not in lab.collections() and "documents_documents" not in lab.collections()
    assert read_rows(lab.uri, gen0) == rows and read_manifest(lab.uri, gen0) == manifest
    properties = lab.properties(gen0)
    assert properties["llmw.adopted_from"] == "documents" and properties["llmw.generation"] == "0"
    assert properties["llmw.fingerprint"] == read_rows_fingerprint(lab.uri, gen0)
    assert lab.target() == "documents__projected128__1"


def read_rows_fingerprint(uri: str, collection: str) -> str:
    store = ChunkStore(uri, collection)
    try:
        store.client.load_collection(collection)
        rows = store.client.query(collection, filter="", output_fields=["pipeline_fingerprint"])
        return str({r["pipeline_fingerprint"] for r in rows}.pop())
    finally:
        store.close()


def test_a_crash_between_the_switch_and_what_follows_is_finished_by_a_rerun(
    lab: Lab, second_models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self: _Rollout, report: Any) -> None:
        raise RuntimeError("killed right after alter_alias")

    monkeypatch.setattr(_Rollout, "_after_switch", crash)
    with pytest.raises(RuntimeError, match="killed"):
        rollout_embeddings(params(lab, second_models["projected"]), lab.settings)
    gen2 = "documents__projected128__2"
    assert lab.target() == gen2  # the alias points at exactly one of the two: the new one
    assert lab.properties(gen2)["llmw.state"] == "building"
    monkeypatch.undo()

    report = rollout_embeddings(params(lab, second_models["projected"]), lab.settings)
    assert report.outcome == "promoted" and report.resumed and report.live == gen2
    assert report.previous == GEN1 and report.kept == [GEN1]
    assert lab.properties(gen2)["llmw.state"] == "ready"
    assert generations_of(lab) == [*GEN1_ONLY, gen2, gen2 + "_documents"]


# Ingests, or rolls out and SIGKILLs its whole process group (Milvus Lite's server with it) once
# `crash_after` documents of the new collection are written.
RUNNER = """
import json, os, signal, sys
from components.embedding_rollout.models import RolloutParams
from components.embedding_rollout.rollout import rollout_embeddings
from components.ingest.models import IngestParams
from components.ingest.run import ingest
from components.settings import Settings

uri, docs, queries, model, runs, crash_after = sys.argv[1:7]
settings = Settings(milvus_uri=uri, partition_workers=0, run_data_uri=runs,
                    milvus_write_batch_bytes=1)
if model == "-":
    ingest(IngestParams(source=docs), settings)
    sys.exit(0)
written = []

def progress(outcome, ref):
    written.append(ref.name)
    print(outcome, ref.name, flush=True)
    if len(written) == int(crash_after):
        os.killpg(os.getpgrp(), signal.SIGKILL)

report = rollout_embeddings(RolloutParams(model=model, queries=queries, top_k=3), settings,
                            progress=progress)
print("REPORT " + json.dumps(report.model_dump()), flush=True)
"""


def runner(lab: Lab, model: str, crash_after: int = 0) -> subprocess.CompletedProcess[str]:
    args = [lab.uri, str(lab.docs), str(lab.queries), model, str(lab.docs.parent / "runs")]
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args, str(crash_after)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_a_crash_during_the_build_is_resumed_by_a_rerun_without_a_third_collection(
    tmp_path: Path, make_settings: Any, second_models: dict[str, str]
) -> None:
    # Milvus Lite admits one process per database: every side runs in its own process.
    lab = make_lab(tmp_path, make_settings, ingested=False)
    assert runner(lab, "-").returncode == 0
    crashed = runner(lab, second_models["projected"], crash_after=5)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert len(crashed.stdout.splitlines()) == 5

    rerun = runner(lab, second_models["projected"])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads(rerun.stdout.splitlines()[-1].removeprefix("REPORT "))
    gen2 = "documents__projected128__2"
    assert report["outcome"] == "promoted" and report["resumed"] is True
    assert report["candidate"] == gen2
    assert report["build"]["unchanged"] >= 5  # what the crashed run wrote is not written again
    assert report["build"]["new"] + report["build"]["changed"] + report["build"]["unchanged"] == 12
    assert generations_of(lab) == [*GEN1_ONLY, gen2, gen2 + "_documents"]
    assert lab.target() == gen2
    assert len(read_rows(lab.uri)) == 12
