"""``llmw bridge`` as a process on the real engines (local runs in its worker pool), for tests that
SIGKILL it and start it again, and the process checks they make around it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import psutil

from components.settings import Settings

REPO = Path(__file__).resolve().parents[1]


class LocalBridgeProcess:
    """``python -m llmw.cli bridge`` in ``cwd`` (where local runs keep ``.llmw``), its stderr
    appended to ``log``; ``settings`` become its ``LLMW_*`` environment."""

    def __init__(self, nats_url: str, cwd: Path, log: Path, **settings: Any) -> None:
        values = {
            "nats_url": nats_url,
            "bridge_http_host": "127.0.0.1",
            "bridge_http_port": 0,
            **settings,
        }
        Settings(**values)  # refuse a misspelt or ill-typed setting here, not in the process
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LLMW_")},
            **{f"LLMW_{key.upper()}": str(value) for key, value in values.items()},
            "PYTHONPATH": str(REPO),
        }
        self.cwd = cwd
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalBridgeProcess:
        command = [sys.executable, "-m", "llmw.cli", "bridge", "--log-level", "INFO"]
        with self.log.open("ab") as stderr:
            self.process = subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def descendants(self) -> list[psutil.Process]:
        """Every process below the bridge now."""
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL, as in a crash (nothing runs in the bridge after it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM: the bridge drains and stops; its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)


def gone(process: psutil.Process) -> bool:
    """Ended (a zombie waiting for init to reap it counts as ended)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def processes_mentioning(text: str, excluding: tuple[int, ...] = ()) -> list[str]:
    """The command lines of live processes that mention ``text`` (a test's folder)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if text in cmdline and process.pid not in excluding and not gone(process):
            found.append(cmdline)
    return found


def consumer_bound(url: str, stream: str = "AI_PIPELINE", consumer: str = "llmw-bridge") -> bool:
    """Whether the bridge's durable consumer exists (the bridge has set up its stream)."""

    async def check() -> bool:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().consumer_info(stream, consumer)
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    return asyncio.run(check())
