"""`llmw serve up|status|down` on a real Ray: idempotent up, status JSON, nothing left after
down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from components.rollout.ray_local import free_port, session_processes
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_up_status_down_leaves_no_process() -> None:
    folder = Path(tempfile.mkdtemp(prefix="llmw-ray-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMW_")}
    ports = {p: str(free_port()) for p in ("GCS", "DASHBOARD", "SERVE")}
    env |= {f"LLMW_RAY_LOCAL_{p}_PORT": port for p, port in ports.items()}
    env["LLMW_RAY_LOCAL_DIR"] = str(folder)

    def llmw(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "llmw.cli", "serve", *args]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    sid = None
    try:
        first = llmw("up")
        assert first.returncode == 0, first.stderr
        assert "ray-local started" in first.stdout
        sid = json.loads((folder / "head.json").read_text())["sid"]
        assert session_processes(sid)
        again = llmw("up")
        assert again.returncode == 0 and "already running" in again.stdout
        status = llmw("status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) == {
            "up": True,
            "http_url": f"http://127.0.0.1:{ports['SERVE']}",
            "dashboard_url": f"http://127.0.0.1:{ports['DASHBOARD']}",
            "apps": {},
        }
        down = llmw("down")
        assert down.returncode == 0 and "ray-local stopped" in down.stdout
        assert session_processes(sid) == []
        after = llmw("status", "--json")
        assert after.returncode == 1 and json.loads(after.stdout)["up"] is False
        assert "not running" in llmw("down").stdout
    finally:
        if sid is not None and session_processes(sid):
            llmw("down")
        shutil.rmtree(folder, ignore_errors=True)
