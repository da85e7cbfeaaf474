"""The CLI's edge: every failure a command didn't handle becomes one line and an exit code.

Kinds, not call sites: an unreachable service exits 1 with its address; a path or a Milvus URI
that can't be used, and anything else that is the user's input or configuration, exits 2 naming
it. Anything else exits 1 with the exception's one-line text; ``LLMW_DEBUG=true`` shows the
traceback for a bug report.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from components.exit_codes import EXIT_BAD_INPUT
from components.exit_codes import EXIT_FAILED as EXIT_UNREACHABLE


def run_cli(app: Callable[[], object]) -> None:
    """Run the typer app; what escapes it is printed as ``error: …`` with its exit code."""
    import logging

    # Milvus Lite logs its own traceback before raising what this reports in one line.
    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
    try:
        app()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        code, message = describe(exc)
        if _debug():
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        sys.exit(code)


def describe(exc: BaseException) -> tuple[int, str]:
    """The exit code and one line for a failure, by its kind."""
    unreachable = _unreachable(exc)
    if unreachable is not None:
        return EXIT_UNREACHABLE, unreachable
    milvus = _milvus(exc)
    if milvus is not None:
        return milvus
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or type(exc).__name__
        return EXIT_BAD_INPUT, f"{exc.filename}: {reason}"
    if isinstance(exc, ValueError):
        return EXIT_BAD_INPUT, _one_line(exc)
    return 1, f"{type(exc).__name__}: {_one_line(exc)}"


def _unreachable(exc: BaseException) -> str | None:
    """A one-line reason when ``exc`` (or what caused it) is a service nobody answers at."""
    for cause in _chain(exc):
        name = type(cause).__name__
        if name in ("MaxRetryError", "NewConnectionError"):
            pool = getattr(cause, "pool", None)
            where = f"{pool.host}:{pool.port}" if pool is not None else "the server"
            return f"cannot reach {where}: {_root_reason(cause)}"
        if name in ("ConnectError", "ConnectTimeout") or isinstance(
            cause, ConnectionRefusedError | ConnectionResetError | TimeoutError
        ):
            return f"cannot reach the server: {_one_line(cause)}"
    return None


def _milvus(exc: BaseException) -> tuple[int, str] | None:
    """Milvus failures: a server nobody answers at (1), or a URI or collection that won't do."""
    module = type(exc).__module__ or ""
    if not module.startswith("pymilvus"):
        return None
    message = getattr(exc, "message", None) or _one_line(exc)
    if "Fail connecting" in message or "server unavailable" in message:
        return EXIT_UNREACHABLE, f"cannot reach Milvus: {message}"
    if "Open local milvus failed" in message:
        message = "cannot open the Milvus Lite database (another process may hold it open)"
    return EXIT_BAD_INPUT, f"Milvus: {message}"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
        reason = getattr(seen[-1], "reason", None)
        if current is None and isinstance(reason, BaseException):
            current = reason
    return seen


def _root_reason(exc: BaseException) -> str:
    text = _one_line(_chain(exc)[-1])
    return text.split("] ", 1)[-1].rstrip("'\")") if "[Errno" in text else text


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def _debug() -> bool:
    from components.settings import get_settings

    try:
        return get_settings().debug
    except Exception:  # the failure may be the settings themselves
        return False
