"""ray-local: a Ray head on 127.0.0.1 whose Serve applications are applied as KubeRay does.

``up`` starts ``ray start --head --block`` in its own session (idempotent: a running head of
ours is reused), ``down`` stops it and then every process left in that session, by id, so none
remains. The serve config is sent as KubeRay sends a RayService's ``serveConfigV2``:
``PUT /api/serve/applications/`` on the dashboard, and read back with ``GET`` (Ray validates it
with its own ``ServeDeploySchema``). One difference, forced by the rule that ray-local binds to
127.0.0.1 only: ``http_options`` is the local one (``127.0.0.1:settings.ray_local_serve_port``).

The head advertises the inventory's GPUs and each GPU node's ``gpu-node-<node>`` resource as
logical resources, so the cluster's serve config schedules unchanged; nothing runs on a GPU
(torch sees none and uses the CPU). The project is importable (its folder is put first on the
head's PYTHONPATH), so no ``runtime_env.working_dir`` is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from components.settings import Settings

API = "/api/serve/applications/"
# The header each serving/ reply carries: the model version that produced it.
VERSION_HEADER = "llmw-model-version"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RayLocalError(RuntimeError):
    """ray-local could not start, stop, apply or read back; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def session_processes(sid: int) -> list[int]:
    """The live (not zombie) processes of session ``sid``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getsid(proc.pid) == sid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return found


class RayLocal:
    """The local Ray head of ``settings`` (its state file says which process is ours)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = Path(settings.ray_local_dir).resolve()
        self.state_file = self.dir / "head.json"
        self.http_url = f"http://127.0.0.1:{settings.ray_local_serve_port}"
        self.dashboard_url = f"http://127.0.0.1:{settings.ray_local_dashboard_port}"

    def state(self) -> dict[str, Any] | None:
        if not self.state_file.is_file():
            return None
        state: dict[str, Any] = json.loads(self.state_file.read_text(encoding="utf-8"))
        return state

    def _answers(self) -> bool:
        try:
            return httpx.get(self.dashboard_url + API, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def is_up(self) -> bool:
        state = self.state()
        return bool(state and _alive(int(state["pid"])) and self._answers())

    def _resources(self) -> tuple[int, dict[str, float]]:
        from components.cluster.inventory import load_inventory
        from components.rollout.serve_config import node_resource

        nodes = [n for n in load_inventory(self.settings.cluster_inventory).gpu_nodes() if n.gpu]
        gpus = sum(n.gpu.count for n in nodes if n.gpu)
        return gpus, {node_resource(n.name): 1.0 for n in nodes}

    def _command(self, temp_dir: Path) -> list[str]:
        gpus, resources = self._resources()
        s = self.settings
        ray = Path(sys.executable).with_name("ray")
        return [
            *([str(ray)] if ray.exists() else [sys.executable, "-m", "ray.scripts.scripts"]),
            "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
            "--port", str(s.ray_local_gcs_port),
            "--dashboard-port", str(s.ray_local_dashboard_port),
            "--ray-client-server-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()),
            "--num-cpus", str(s.ray_local_num_cpus), "--num-gpus", str(gpus),
            "--resources", json.dumps(resources), "--temp-dir", str(temp_dir),
            "--include-log-monitor", "false",
        ]  # fmt: skip

    def up(self) -> bool:
        """Start the head unless ours runs; True when it was started now."""
        if self.is_up():
            return False
        self.down()  # a head of ours that no longer answers
        if self._answers():
            raise RayLocalError(
                f"{self.dashboard_url} answers, but it is not this ray-local's head: stop it or "
                "set LLMW_RAY_LOCAL_DASHBOARD_PORT"
            )
        from components.offline import configure_offline

        configure_offline()
        temp_dir = self.dir / "tmp"
        temp_dir.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}
        log = self.dir / "head.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                self._command(temp_dir),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                cwd=self.dir,
            )
        self.state_file.write_text(json.dumps({"pid": proc.pid, "sid": proc.pid}), "utf-8")
        deadline = time.monotonic() + self.settings.ray_local_start_timeout_s
        while not self._answers():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
                self.down()
                raise RayLocalError(f"ray start did not come up (see {log}):\n{tail}")
            time.sleep(0.5)
        return True

    def down(self, grace_s: float = 8.0) -> bool:
        """Stop our head and every process of its session; True when one was running."""
        state = self.state()
        if state is None:
            return False
        pid, sid = int(state["pid"]), int(state["sid"])
        running = bool(session_processes(sid))
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)  # ray start --block stops what it started
        deadline = time.monotonic() + grace_s
        while session_processes(sid) and time.monotonic() < deadline:
            time.sleep(0.5)
        for left in session_processes(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(left, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while session_processes(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if session_processes(sid):
            raise RayLocalError(f"processes of session {sid} survived SIGKILL")
        self.state_file.unlink(missing_ok=True)
        return running

    # The dashboard's Serve API, as KubeRay uses it.
    def apply(self, config: dict[str, Any]) -> None:
        """PUT the serve config (http_options made local); RayLocalError with Ray's answer."""
        body = {**config, "http_options": local_http_options(self.settings)}
        try:
            response = httpx.put(self.dashboard_url + API, json=body, timeout=120)
        except httpx.HTTPError as exc:
            raise RayLocalError(f"PUT {self.dashboard_url}{API}: {exc}") from None
        if response.status_code != 200:
            raise RayLocalError(
                f"Ray refused the serve config ({response.status_code}): {response.text[-1500:]}"
            )

    def details(self) -> dict[str, Any]:
        """GET /api/serve/applications/: Serve's instance details."""
        try:
            response = httpx.get(self.dashboard_url + API, timeout=30)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise RayLocalError(f"GET {self.dashboard_url}{API}: {exc}") from None
        details: dict[str, Any] = response.json()
        return details

    def status(self) -> dict[str, Any]:
        """``{"up", "http_url", "dashboard_url", "apps": {name: {status, version, ...}}}``."""
        up = self.is_up()
        apps = app_statuses(self.details()) if up else {}
        return {
            "up": up,
            "http_url": self.http_url,
            "dashboard_url": self.dashboard_url,
            "apps": apps,
        }


def local_http_options(settings: Settings) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": settings.ray_local_serve_port}


def app_statuses(details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each application's status, message, route and the model version in its args."""
    apps: dict[str, dict[str, Any]] = {}
    for name, app in (details.get("applications") or {}).items():
        config = app.get("deployed_app_config") or {}
        args = config.get("args") or {}
        apps[name] = {
            "status": app.get("status"),
            "version": args.get("model_version"),
            "model": args.get("model"),
            "route_prefix": app.get("route_prefix"),
            "message": app.get("message") or "",
        }
    return apps


def deployed_config(details: dict[str, Any]) -> dict[str, Any]:
    """The serve config Ray runs now, rebuilt from its deployed application configs."""
    return {
        "proxy_location": details.get("proxy_location") or "EveryNode",
        "applications": [
            app["deployed_app_config"]
            for app in (details.get("applications") or {}).values()
            if app.get("deployed_app_config")
        ],
    }
