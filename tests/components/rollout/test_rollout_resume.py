"""A rollout killed part way (SIGKILL of the `llmw rollout start` process) on the kubernetes
engine, then a rerun of `status`, `start` or `undo`: the interrupted rollout is rolled back
first (reason ``interrupted``), so the old model serves, never neither."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.rollout.gate import GateThresholds
from components.rollout.history import read_history
from components.rollout.kube_rollout import start_kube
from components.rollout.plan import RolloutRequest
from components.rollout.ray_local import VERSION_HEADER
from components.rollout.rayservice import render_rayservice
from components.rollout.rollout_flow import GateOptions
from components.rollout.serve_config import parse_serve_config
from components.settings import Settings, settings_env
from testing.kube_cluster import FakeCluster, fake_cluster
from tests.components.rollout.conftest import write_model
from tests.conftest import REPO

OPTIONS = GateOptions(GateThresholds(min_success_rate=1.0), rounds=1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    with fake_cluster(tmp_path / "cluster") as running:
        running.api.seed(render_rayservice(running.settings()))
        yield running


def cli(settings: Settings, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMW_")}
    env.update(settings_env(settings))
    return subprocess.Popen(
        [sys.executable, "-m", "llmw.cli", "rollout", *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def running_version(cluster: FakeCluster) -> str | None:
    obj = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    assert obj is not None
    config = parse_serve_config(obj["spec"]["serveConfigV2"])
    entry = next(a for a in config["applications"] if a["name"] == "embeddings")
    return entry["args"].get("model_version")


def answering(cluster: FakeCluster) -> str | None:
    response = httpx.get(f"{cluster.routes.root_url}/embeddings/v1/models", timeout=10)
    return response.headers[VERSION_HEADER] or None


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the rollout never got there"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def last_event(settings: Settings) -> dict[str, Any]:
    return read_history("embeddings", settings)[-1]


def test_killed_while_waiting_then_status_restores_the_old_model(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    settings = cluster.settings(rollout_ready_timeout_s=60.0)
    model = write_model(tmp_path / "model")
    start = RolloutRequest(str(model), "embeddings", "v1")
    assert start_kube(start, settings, OPTIONS)["outcome"] == "promoted"
    cluster.api.outcomes["v2"] = "never_ready"

    process = cli(settings, "start", str(model), "--app", "embeddings", "--version", "v2",
                  "--engine", "kubernetes")  # fmt: skip
    kill_when(process, lambda: running_version(cluster) == "v2")
    assert process.returncode == -signal.SIGKILL
    assert (last_event(settings)["event"], last_event(settings)["version"]) == ("started", "v2")
    assert answering(cluster) == "v1"  # v2 never came up: Ray Serve keeps the old replica

    code, out, err = finish(cli(settings, "status", "embeddings", "--engine", "kubernetes",
                                "--json"))  # fmt: skip
    assert code == 0, err
    status = json.loads(out)
    assert status["recovered"]["version"] == "v2" and status["recovered"]["serving"] == "v1"
    assert status["interrupted"] is None and status["kube"]["status"] == "RUNNING"
    assert (status["current_version"], status["kube"]["version"]) == ("v1", "v1")
    assert running_version(cluster) == "v1" and answering(cluster) == "v1"
    event = last_event(settings)
    assert (event["event"], event["version"], event["reason"], event["serving"]) == (
        "rolled_back", "v2", "interrupted", "v1",
    )  # fmt: skip

    code, out, err = finish(cli(settings, "status", "embeddings", "--engine", "kubernetes",
                                "--json"))  # fmt: skip
    assert code == 0 and json.loads(out)["recovered"] is None  # once only


def test_killed_with_its_patch_in_flight_then_start_recovers_and_rolls_out(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    """The patch lands after the process is gone: the rerun still finds the old entry to put
    back, then rolls the next version out."""
    settings = cluster.settings(rollout_ready_timeout_s=60.0)
    model = write_model(tmp_path / "model")
    assert (
        start_kube(RolloutRequest(str(model), "embeddings", "v1"), settings, OPTIONS)["outcome"]
        == "promoted"
    )
    cluster.api.hold_writes = threading.Event()
    process = cli(settings, "start", str(model), "--app", "embeddings", "--version", "v2",
                  "--engine", "kubernetes")  # fmt: skip
    kill_when(process, lambda: cluster.api.writes_held >= 1)
    cluster.api.hold_writes.set()
    deadline = time.monotonic() + 10
    while running_version(cluster) != "v2":  # the held patch lands now
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cluster.api.hold_writes = None

    code, out, err = finish(cli(settings, "start", str(model), "--app", "embeddings",
                                "--version", "v3", "--engine", "kubernetes", "--json"))  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["recovered"]["version"] == "v2" and result["recovered"]["serving"] == "v1"
    assert (result["outcome"], result["previous_version"]) == ("promoted", "v1")
    assert running_version(cluster) == "v3" and answering(cluster) == "v3"
    events = [(e["event"], e["version"], e.get("reason")) for e in read_history("embeddings",
              settings) if e["event"] != "gate"]  # fmt: skip
    assert events[-4:] == [("started", "v2", None), ("rolled_back", "v2", "interrupted"),
                           ("started", "v3", None), ("promoted", "v3", None)]  # fmt: skip


def test_killed_during_the_gate_then_undo_recovers_first(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    settings = cluster.settings(rollout_ready_timeout_s=60.0)
    model = write_model(tmp_path / "model")
    for version in ("v1", "v2"):
        request = RolloutRequest(str(model), "embeddings", version)
        assert start_kube(request, settings, OPTIONS)["outcome"] == "promoted"
    cluster.routes.delay_s = 0.5  # the gate's requests are slow now
    process = cli(settings, "start", str(model), "--app", "embeddings", "--version", "v3",
                  "--engine", "kubernetes")  # fmt: skip
    kill_when(process, lambda: answering(cluster) == "v3")  # serving: the gate runs
    cluster.routes.delay_s = 0.0
    assert last_event(settings)["event"] == "started"

    code, out, err = finish(cli(settings, "undo", "embeddings", "--engine", "kubernetes",
                                "--json"))  # fmt: skip
    assert code == 0, err
    undone = json.loads(out)
    assert undone["recovered"]["version"] == "v3" and undone["recovered"]["serving"] == "v2"
    assert (undone["undone"], undone["serving"]) == ("v2", "v1")
    assert running_version(cluster) == "v1" and answering(cluster) == "v1"


def test_an_undo_killed_part_way_is_rolled_back_to_what_served_before_it(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    settings = cluster.settings(rollout_ready_timeout_s=60.0)
    model = write_model(tmp_path / "model")
    for version in ("v1", "v2"):
        request = RolloutRequest(str(model), "embeddings", version)
        assert start_kube(request, settings, OPTIONS)["outcome"] == "promoted"
    cluster.api.outcomes["v1"] = "never_ready"  # v1 does not come back up this time
    process = cli(settings, "undo", "embeddings", "--engine", "kubernetes")
    kill_when(process, lambda: running_version(cluster) == "v1")
    event = last_event(settings)
    assert (event["event"], event["undo"], event["version"]) == ("started", True, "v1")
    del cluster.api.outcomes["v1"]

    code, out, err = finish(cli(settings, "status", "embeddings", "--engine", "kubernetes",
                                "--json"))  # fmt: skip
    assert code == 0, err
    status = json.loads(out)
    assert status["recovered"] == {**status["recovered"], "version": "v1", "serving": "v2"}
    assert running_version(cluster) == "v2" and answering(cluster) == "v2"
    assert status["current_version"] == "v2"
