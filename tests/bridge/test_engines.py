"""The bridge on each real engine: kfp-local and argo-local for real, kfp and argo against the
contract servers of the pinned OpenAPI specs; and the engine helpers."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kfp
import pytest

from bridge.engines import (
    ArgoEngine,
    KfpEngine,
    LocalEngine,
    call_engine,
    is_transient,
    run_name_for,
    run_state,
)
from bridge.messages import RunState
from components.orchestration.runs import SubmitError
from testing.bridge_harness import bridge_settings, request, send, states, wait_for_state
from testing.contract.fake_argo import FakeArgo
from testing.contract.fake_kfp import FakeKFP
from testing.contract.openapi_server import OpenAPIContractServer
from testing.nats_server import NatsServer
from tests.milvus_rows import read_manifest

REPO = Path(__file__).resolve().parents[2]
FULL_LIFE = ["accepted", "submitted", "running", "succeeded"]


def test_engine_states_map_onto_the_contract() -> None:
    assert run_state("PENDING") is RunState.submitted
    assert run_state("Running") is RunState.running
    assert run_state("SUCCEEDED") is RunState.succeeded
    assert run_state("Error") is run_state("CANCELED") is RunState.failed


def test_transient_failures_are_the_retryable_ones() -> None:
    assert is_transient(SubmitError("unreachable"))
    assert is_transient(SubmitError("busy", 503)) and is_transient(SubmitError("slow", 429))
    assert not is_transient(SubmitError("forbidden", 403))
    assert not is_transient(ValueError("bad"))


def test_run_names_are_stable_kubernetes_names() -> None:
    name = run_name_for("document-ingestion", "Req_42/../x" * 10)
    assert name == run_name_for("document-ingestion", "Req_42/../x" * 10)
    assert len(name) <= 63 and name == name.lower()
    assert all(c.isalnum() or c == "-" for c in name)
    assert run_name_for("document-ingestion", "a-1") != run_name_for("document-ingestion", "a_1")


def test_engines_that_never_block_are_called_on_the_event_loop() -> None:
    import asyncio
    import threading

    class Blocking:  # says nothing: assumed to wait on I/O
        name = "argo"

        def status(self, run_id: str) -> int:
            return threading.get_ident()

    class Inline(Blocking):
        blocking = False

    async def threads() -> tuple[int, int, int]:
        blocking, inline = Blocking(), Inline()
        return (
            threading.get_ident(),
            await call_engine(blocking, blocking.status, "r"),  # type: ignore[arg-type]
            await call_engine(inline, inline.status, "r"),  # type: ignore[arg-type]
        )

    loop_thread, blocking_thread, inline_thread = asyncio.run(threads())
    assert blocking_thread != loop_thread and inline_thread == loop_thread
    assert LocalEngine.blocking is False
    assert getattr(KfpEngine, "blocking", True) and getattr(ArgoEngine, "blocking", True)


def small_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("milvus-rag.md", "elminster-whisper-xtts.txt"):
        shutil.copy(REPO / "examples" / "docs" / name, folder / name)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["kfp-local", "argo-local"])
def test_a_request_runs_the_whole_pipeline_on_a_local_engine(
    engine: str,
    nats_server: NatsServer,
    start_bridge: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # the local runners keep their work under ./.llmw
    monkeypatch.setenv("LLMW_PARTITION_WORKERS", "0")
    milvus = tmp_path / "milvus.db"
    start_bridge(engines=[LocalEngine(engine, workers=1)])
    params = {"source": str(small_corpus(tmp_path)), "milvus_uri": str(milvus)}
    send(nats_server.url, request("local-1", engine=engine, **params))
    events = wait_for_state(nats_server.url, "local-1", RunState.succeeded, timeout_s=300)
    assert states(events) == FULL_LIFE
    assert events[1].run_url == f"{engine}://{run_name_for('document-ingestion', 'local-1')}"
    manifest = read_manifest(str(milvus))
    assert sorted(Path(m["source_uri"]).name for m in manifest) == [
        "elminster-whisper-xtts.txt",
        "milvus-rag.md",
    ]


def test_a_local_run_that_fails_reports_why(
    nats_server: NatsServer, start_bridge: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    start_bridge(engines=[LocalEngine("argo-local", workers=1)])
    params = {"source": str(tmp_path / "missing"), "milvus_uri": str(tmp_path / "m.db")}
    send(nats_server.url, request("local-2", engine="argo-local", **params))
    events = wait_for_state(nats_server.url, "local-2", RunState.failed, timeout_s=300)
    assert states(events) == ["accepted", "submitted", "running", "failed"]
    assert events[-1].error is not None and "missing" in events[-1].error.message


@pytest.fixture
def kfp_server(
    schemas_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[OpenAPIContractServer, FakeKFP]]:
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    fake = FakeKFP()
    spec = schemas_dir / "kfp-api-v2beta1.swagger.json"
    with OpenAPIContractServer(spec, fake.handlers(), token="t", validate_responses=True) as server:
        yield server, fake


@pytest.fixture
def argo_server(schemas_dir: Path) -> Iterator[tuple[OpenAPIContractServer, FakeArgo]]:
    fake = FakeArgo()
    spec = schemas_dir / "argo-workflows-v4.0.5.swagger.json"
    with OpenAPIContractServer(spec, fake.handlers(), token="t", validate_responses=True) as server:
        yield server, fake


def test_a_request_becomes_a_kfp_run_in_its_experiment(
    nats_server: NatsServer, start_bridge: Any, kfp_server: Any
) -> None:
    server, fake = kfp_server
    settings = bridge_settings(
        nats_server.url, kfp_host=server.url, kfp_token="t", kfp_ui_url="https://kf.test"
    )
    start_bridge(engines=[KfpEngine(settings)], settings=settings)
    req = request("kfp-1", engine="kfp").model_copy(update={"experiment": "from-nats"})
    send(nats_server.url, req)
    events = wait_for_state(nats_server.url, "kfp-1", RunState.submitted)
    run_id = events[-1].run_id
    assert run_id in fake.runs and events[-1].run_url == f"https://kf.test/#/runs/details/{run_id}"
    fake.states[run_id] = itertools.chain(["RUNNING"], itertools.repeat("SUCCEEDED"))
    events = wait_for_state(nats_server.url, "kfp-1", RunState.succeeded)
    assert states(events) == FULL_LIFE
    (experiment,) = fake.experiments.values()
    assert experiment["display_name"] == "from-nats"
    assert fake.runs[run_id]["display_name"] == run_name_for("document-ingestion", "kfp-1")
    assert server.violations == []


def test_a_request_becomes_an_argo_workflow_and_adopts_one_made_before_a_crash(
    nats_server: NatsServer, start_bridge: Any, argo_server: Any
) -> None:
    server, fake = argo_server
    settings = bridge_settings(nats_server.url, argo_host=server.url, argo_token="t")
    engine = ArgoEngine(settings)
    # A bridge that died after submitting, before recording the run: the workflow exists.
    name = run_name_for("document-ingestion", "argo-1")
    engine.submit("document-ingestion", {"source": "/data"}, name, None)
    fake.phases[name] = itertools.chain(["Running"], itertools.repeat("Succeeded"))
    start_bridge(engines=[engine], settings=settings)
    send(nats_server.url, request("argo-1", engine="argo"))
    events = wait_for_state(nats_server.url, "argo-1", RunState.succeeded)
    assert states(events) == FULL_LIFE
    assert events[1].run_id == name and list(fake.workflows) == [name]
    assert events[1].run_url == f"https://argo.lab.daviestechlabs.io/workflows/ai-ml/{name}"
    assert server.violations == []
