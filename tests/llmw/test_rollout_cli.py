"""`llmw rollout start`: the dry-run plan, its JSON, exit codes, and no pretend apply."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from components.rollout.crd import RAYSERVICE_CRD, crd_problems
from components.settings import packaged_schemas_dir
from tests.components.rollout.conftest import write_model
from tests.conftest import REPO
from tests.llmw.test_ingest_cli import HEAVY


def llmw(
    *args: str, store: Path, ray_dir: Path | None = None, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMW_")}
    env["LLMW_MODEL_STORE_URI"] = str(store)
    if kubeconfig is not None:
        env["LLMW_KUBECONFIG"] = str(kubeconfig)
    if ray_dir is not None:
        env["LLMW_RAY_LOCAL_DIR"] = str(ray_dir)
    return subprocess.run(
        [sys.executable, "-m", "llmw.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_stays_light() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from llmw.cli import app; "
        "r = CliRunner().invoke(app, ['rollout', 'start', '--help']); "
        "assert r.exit_code == 0, r.output; assert '--dry-run' in r.output; "
        f"print([m for m in {(*HEAVY, 'jsonschema', 'minio', 'components.rollout')!r} "
        "if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_dry_run_json_plans_and_writes_nothing(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    store = tmp_path / "store"
    result = llmw(
        "rollout", "start", str(model), "--app", "embeddings", "--version", "v2",
        "--dry-run", "--json", store=store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["refused"] is None and plan["stage"]["action"] == "stage"
    assert plan["placement"]["node"] == "drizzt"
    assert plan["object"]["kind"] == "RayService"
    assert crd_problems(plan["object"], packaged_schemas_dir() / RAYSERVICE_CRD) == []
    assert not store.exists()
    human = llmw(
        "rollout", "start", str(model), "--app", "embeddings", "--version", "v2", "--dry-run",
        store=store,
    )  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert "dry run: nothing staged or applied" in human.stdout
    assert "placement: drizzt: AMD Radeon 680M (gfx1035), 0.8 GPU, amd.com/gpu" in human.stdout
    assert "+        model_version: v2" in human.stdout


def test_refusals_exit_2_with_the_reason(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    store = tmp_path / "store"
    base = ("rollout", "start", str(model), "--version", "v2", "--dry-run", "--json")
    cases = [
        (["--app", "llm", "--memory-gb", "70"], "placement", "no GPU has 73.684 GB for vllm"),
        (["--app", "llm", "--node", "drizzt"], "placement", "vllm does not support drizzt's"),
        (["--app", "chat"], "unknown_app", "unknown app 'chat'"),
        (["--app", "tts", "--target", "kserve", "--canary", "10"], "placement", "never schedule"),
    ]
    for extra, reason, says in cases:
        result = llmw(*base, *extra, store=store)
        assert result.returncode == 2, (extra, result.stderr)
        assert json.loads(result.stdout)["refused"]["reason"] == reason
        assert f"error: refused ({reason}): " in result.stderr and says in result.stderr


def test_a_change_kuberay_would_answer_with_a_new_raycluster_exits_2(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    compiled = tmp_path / "ai-inference.rayservice.yaml"
    from components.rollout.rayservice import render_text

    # The RayService running in the cluster has an older image on drizzt than the inventory's.
    text = render_text().replace("llm-workflows:0.1.0-rocm", "llm-workflows:0.0.9-rocm")
    compiled.write_text(text)
    result = llmw(
        "rollout", "start", str(model), "--app", "embeddings", "--version", "v2",
        "--from", str(compiled), "--dry-run", store=tmp_path / "store",
    )  # fmt: skip
    assert result.returncode == 2
    assert "error: refused (new_cluster): " in result.stderr
    assert "worker group gpu-drizzt runs ghcr.io/daviestechlabs/llm-workflows:0.0.9-rocm" in (
        result.stderr
    )


def test_a_version_with_other_bytes_exits_2(tmp_path: Path) -> None:
    from components.rollout.staging import stage_model
    from components.settings import Settings

    store = tmp_path / "store"
    model = write_model(tmp_path / "model")
    stage_model(str(model), "embeddings", "v2", Settings(model_store_uri=str(store)))
    (model / "model.safetensors").write_bytes(b"retrained")
    result = llmw(
        "rollout", "start", str(model), "--app", "embeddings", "--version", "v2", "--dry-run",
        store=store,
    )  # fmt: skip
    assert result.returncode == 2
    assert "error: refused (version_conflict): version 'v2' of 'embeddings'" in result.stderr


def test_without_dry_run_the_engine_must_be_reachable(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    store = tmp_path / "store"
    args = ("rollout", "start", str(model), "--app", "embeddings", "--version", "v2")
    result = llmw(*args, store=store, ray_dir=tmp_path / "ray")
    assert result.returncode == 2
    assert "ray-local is not running: start it with llmw serve up" in result.stderr
    assert result.stdout == "" and not store.exists()
    nowhere = tmp_path / "kubeconfig"
    nowhere.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: k, cluster: "
        "{server: 'http://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    result = llmw(*args, "--engine", "kubernetes", store=store, kubeconfig=nowhere)
    assert result.returncode == 2
    assert "refused: the Kubernetes API (http://127.0.0.1:9) cannot be used: get rayservices/" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == "" and not store.exists()
    result = llmw(*args, "--engine", "kubernetes", store=store, kubeconfig=tmp_path / "none")
    assert result.returncode == 2 and "no usable Kubernetes configuration in" in result.stderr
    result = llmw(*args, "--engine", "ray-local", "--target", "kserve", store=store)
    assert result.returncode == 2
    assert "ray-local runs the RayService: use --engine kubernetes for --target kserve" in (
        result.stderr
    )
