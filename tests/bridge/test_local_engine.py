"""The bridge on the real local engines, a real run per request: whole pipelines into the rows of a
clean ingest, workers that never outlive the bridge (SIGKILL included), and a local run that a
crash interrupted resumed by the next bridge under its run id, a bounded number of times."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import psutil
import pytest

from bridge.claims import ClaimRecord, ClaimStore
from bridge.engines import INTERRUPTED, LocalEngine, run_name_for
from bridge.messages import RunState
from components.settings import Settings
from testing.bridge_harness import (
    bridge_settings,
    collapsed,
    request,
    send,
    states,
    statuses,
    wait_for,
    wait_for_state,
)
from testing.local_bridge_process import (
    LocalBridgeProcess,
    consumer_bound,
    gone,
    processes_mentioning,
)
from testing.nats_server import NatsServer
from tests.ingestion_runs import plain_ingest
from tests.milvus_rows import read_manifest, read_rows

PIPELINE = "document-ingestion"
FULL_LIFE = ["accepted", "submitted", "running", "succeeded"]
STEP = "hera.workflows.runner"  # what every argo-local step subprocess runs
BUCKET = Settings().bridge_kv_bucket
Plain = tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]  # source, rows, manifest


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Plain:
    """The corpus, and the rows and manifest ``llmw ingest`` leaves from it: a clean run."""
    root = tmp_path_factory.mktemp("plain")
    source, rows = plain_ingest(root, Settings(partition_workers=0), minilm)
    # Read once: a Milvus Lite connection idle for a minute is dropped ("too many pings").
    return source, rows, read_manifest(str(root / "plain.db"))


def check_same_as_plain(uri: Path, plain: Plain) -> None:
    """The run left the rows and the manifest of the clean run."""
    assert read_rows(str(uri)) == plain[1]
    assert read_manifest(str(uri)) == plain[2]


@pytest.fixture
def local_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Local runs of an in-process bridge keep their work under ``tmp_path/.llmw``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMW_PARTITION_WORKERS", "0")
    return tmp_path


@pytest.fixture
def reap(tmp_path: Path) -> Iterator[list[psutil.Process]]:
    """Processes to kill at the end if still there, with any other working in ``tmp_path``
    (nats-server aside), so that a failing test leaves nothing behind."""
    found: list[psutil.Process] = []
    yield found
    for process in psutil.process_iter(["cmdline"]):
        words = process.info["cmdline"] or []
        if str(tmp_path) in " ".join(words) and "nats-server" not in " ".join(words[:1]):
            found.append(process)
    for process in found:
        if not gone(process):
            with contextlib.suppress(psutil.Error):
                process.kill()


@pytest.fixture
def new_processes(reap: list[psutil.Process]) -> Any:
    """``new()``: the processes below this one started since the test began (multiprocessing's
    resource tracker aside: it lives as long as this process)."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}

    def new() -> list[psutil.Process]:
        found = [
            p
            for p in psutil.Process().children(recursive=True)
            if p.pid not in before and "resource_tracker" not in cmdline(p)
        ]
        reap.extend(found)
        return found

    return new


def cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def strays(tmp_path: Path, nats_server: NatsServer) -> list[str]:
    """Processes still working in the test's folder, nats-server aside."""
    assert nats_server.process is not None
    return processes_mentioning(str(tmp_path), excluding=(nats_server.process.pid,))


def finished(url: str, request_id: str) -> bool:
    return any(e.state.final for e in statuses(url, request_id, quiet_s=0.05))


def seed(url: str, *records: ClaimRecord) -> None:
    """Claims in the bucket, as a bridge killed mid-run would have left them."""

    async def write() -> None:
        nc = await nats.connect(url)
        try:
            store = await ClaimStore.open(nc.jetstream(), BUCKET)
            for record in records:
                await store.claim(record)
        finally:
            await nc.close()

    asyncio.run(write())


def claim(url: str, request_id: str) -> ClaimRecord:
    async def read() -> ClaimRecord:
        nc = await nats.connect(url)
        try:
            found = await (await ClaimStore.open(nc.jetstream(), BUCKET)).get(request_id)
        finally:
            await nc.close()
        assert found is not None
        return found[0]

    return asyncio.run(read())


@pytest.mark.slow
def test_requests_run_the_real_pipeline_on_both_local_engines_and_leave_no_process_behind(
    nats_server: NatsServer,
    start_bridge: Any,
    local_runs: Path,
    plain: Plain,
    new_processes: Any,
) -> None:
    url, engines = nats_server.url, ["kfp-local", "argo-local"]
    bridge = start_bridge(engines=[LocalEngine(engine, workers=1) for engine in engines])
    for engine in engines:  # the request id is the engine's name
        uri = str(local_runs / f"{engine}.db")
        send(url, request(engine, engine=engine, source=str(plain[0]), milvus_uri=uri))
    for engine in engines:
        events = wait_for_state(url, engine, RunState.succeeded, timeout_s=300)
        assert states(events) == FULL_LIFE
        assert {e.run_id for e in events[1:]} == {run_name_for(PIPELINE, engine)}
        assert events[1].run_url == f"{engine}://{run_name_for(PIPELINE, engine)}"
        check_same_as_plain(local_runs / f"{engine}.db", plain)
    kfp_log = local_runs / ".llmw" / "kfp-local" / f"{run_name_for(PIPELINE, 'kfp-local')}.log"
    assert "ingest-shard" in kfp_log.read_text()  # kfp.local's log, not on the bridge's stderr
    workers = new_processes()
    assert len(workers) == 2, [cmdline(p) for p in workers]  # one per engine, idle
    bridge.stop()
    wait_for(lambda: all(gone(p) for p in workers), 10, "the pools' workers to end")
    assert strays(local_runs, nats_server) == []


def test_closing_the_engine_ends_a_run_in_progress_and_all_its_steps(
    local_runs: Path, plain: Plain, new_processes: Any
) -> None:
    engine = LocalEngine("argo-local", workers=1)
    params = {"source": str(plain[0]), "milvus_uri": str(local_runs / "milvus.db")}
    try:
        assert engine.status("never-started").state == INTERRUPTED
        engine.submit(PIPELINE, params, "closing", None)
        wait_for(lambda: any(STEP in cmdline(p) for p in new_processes()), 120, "a step")
        family = new_processes()
    finally:
        engine.close()
    wait_for(lambda: all(gone(p) for p in family), 10, "the worker and its steps to end")
    assert engine.status("closing").state == "Failed"
    assert processes_mentioning(str(local_runs)) == []


@pytest.mark.slow
def test_a_bridge_killed_mid_run_leaves_nothing_running_and_its_successor_resumes_every_run(
    nats_server: NatsServer, tmp_path: Path, plain: Plain, reap: list[psutil.Process]
) -> None:
    url = nats_server.url
    ids = [f"crash-{i}" for i in range(3)]
    bridge = LocalBridgeProcess(
        url,
        tmp_path,
        tmp_path / "bridge.log",
        bridge_poll_s=0.2,
        bridge_ack_wait_s=3.0,
        bridge_retry_base_s=0.05,
        bridge_workers=3,
        partition_workers=0,
    )
    try:
        bridge.start()
        wait_for(lambda: consumer_bound(url), 60, "the bridge's consumer")
        for i, request_id in enumerate(ids):
            uri = str(tmp_path / f"milvus-{i}.db")
            send(
                url, request(request_id, engine="argo-local", source=str(plain[0]), milvus_uri=uri)
            )
        wait_for(
            lambda: any(e.state is RunState.submitted for e in statuses(url, ids[0], 0.05)),
            60,
            "the first submitted",
        )
        wait_for(lambda: any(STEP in cmdline(p) for p in bridge.descendants()), 120, "a step")
        family = bridge.descendants()
        reap.extend(family)
        bridge.kill()
        # Every process of the killed bridge ends: its workers, their steps, the tracker.
        wait_for(lambda: all(gone(p) for p in family), 10, "the killed bridge's processes to end")
        assert strays(tmp_path, nats_server) == []
        submitted = [i for i in ids if RunState.submitted in {e.state for e in statuses(url, i)}]
        bridge.start()
        wait_for(lambda: all(finished(url, i) for i in ids), 300, "every request to end")
        family = bridge.descendants()
        reap.extend(family)
        assert bridge.terminate() == 0
        wait_for(lambda: all(gone(p) for p in family), 10, "the stopped bridge's processes to end")
        assert strays(tmp_path, nats_server) == []
    finally:
        bridge.kill()
    assert ids[0] in submitted
    for i, request_id in enumerate(ids):
        events = statuses(url, request_id)
        # A restart may repeat an event, never skip one or go back.
        assert collapsed(events) == FULL_LIFE, (request_id, states(events))
        assert states(events).count("succeeded") == 1
        assert {e.run_id for e in events if e.run_id} == {run_name_for(PIPELINE, request_id)}
        assert claim(url, request_id).resumes == (1 if request_id in submitted else 0)
        check_same_as_plain(tmp_path / f"milvus-{i}.db", plain)


def test_a_resumed_run_that_fails_again_ends_failed_and_resumes_are_bounded(
    nats_server: NatsServer, start_bridge: Any, local_runs: Path
) -> None:
    url = nats_server.url

    def interrupted(request_id: str, resumes: int, source: Path) -> ClaimRecord:
        """The claim of a run a killed bridge was doing."""
        params = {"source": str(source), "milvus_uri": str(local_runs / f"{request_id}.db")}
        return ClaimRecord(
            request_id=request_id,
            pipeline=PIPELINE,
            engine="argo-local",
            state=RunState.running,
            run_id=run_name_for(PIPELINE, request_id),
            attempts=1,
            resumes=resumes,
            parameters=params,
        )

    seed(
        url,
        interrupted("again", 0, local_runs / "missing"),
        interrupted("used-up", 1, local_runs / "docs"),
    )
    settings = bridge_settings(url, bridge_local_resume_attempts=1)
    start_bridge(engines=[LocalEngine("argo-local", workers=1)], settings=settings)
    again = wait_for_state(url, "again", RunState.failed, timeout_s=300)
    assert states(again) == ["running", "failed"]
    assert again[-1].error is not None and "missing" in again[-1].error.message
    assert claim(url, "again").resumes == 1
    used_up = wait_for_state(url, "used-up", RunState.failed, timeout_s=30)
    assert states(used_up) == ["running", "failed"]
    assert used_up[-1].error is not None
    assert "interrupted" in used_up[-1].error.message
    assert "not started again (1 of LLMW_BRIDGE_LOCAL_RESUME_ATTEMPTS=1 used)" in (
        used_up[-1].error.message
    )
    assert claim(url, "used-up").resumes == 1
    assert not (local_runs / ".llmw" / "argo-local" / run_name_for(PIPELINE, "used-up")).exists()
