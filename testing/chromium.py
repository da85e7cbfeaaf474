"""Headless Chromium (Debian's ``chromium``) for tests: dump a page's DOM, take a screenshot.

Each call runs one browser in its own process group with a fresh profile, no network services
(no sync, component updates, QUIC or background fetches) and a timeout; the whole group is
killed when the call ends, whatever happened, so no renderer or zygote outlives it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

# Where to look; CHROMIUM_BIN names another binary (or a missing one, to see the skip).
DEFAULT_BINARY = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-device-scale-factor=1",  # one CSS pixel is one screenshot pixel
    "--hide-scrollbars",
)


class ChromiumError(RuntimeError):
    """The browser failed or ran past its timeout."""


def find_chromium() -> str | None:
    """The chromium binary, or None when this machine has none."""
    wanted = os.environ.get("CHROMIUM_BIN") or DEFAULT_BINARY
    if Path(wanted).is_file() and os.access(wanted, os.X_OK):
        return wanted
    return None if "CHROMIUM_BIN" in os.environ else shutil.which("chromium")


def run_chromium(binary: str, args: list[str], page: Path, timeout_s: float = 60.0) -> str:
    """Run the browser on ``page`` with ``args``; its stdout. The process group is killed after."""
    with tempfile.TemporaryDirectory(prefix="llmw-chromium-") as profile:
        command = [binary, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )
        try:
            out, err = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            raise ChromiumError(f"chromium ran past {timeout_s:g} s on {page}") from None
        finally:
            _kill_group(process)
    if process.returncode != 0:
        raise ChromiumError(f"chromium exited {process.returncode}: {err[-2000:]}")
    return out


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(process.pid, signal.SIGKILL)
    process.poll()


def dump_dom(
    binary: str, page: Path, size: tuple[int, int] = (1280, 1600), timeout_s: float = 60.0
) -> str:
    """The page's DOM after its scripts ran, serialized, laid out in a ``size`` window."""
    return run_chromium(
        binary, [f"--window-size={size[0]},{size[1]}", "--dump-dom"], page, timeout_s
    )


def screenshot(
    binary: str,
    page: Path,
    png: Path,
    size: tuple[int, int] = (1280, 1600),
    timeout_s: float = 60.0,
) -> Path:
    """A PNG of the page's first ``size`` (width, height) CSS pixels."""
    args = [f"--window-size={size[0]},{size[1]}", f"--screenshot={png}"]
    run_chromium(binary, args, page, timeout_s)
    if not png.is_file():
        raise ChromiumError(f"chromium wrote no screenshot to {png}")
    return png
