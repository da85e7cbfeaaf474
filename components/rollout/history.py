"""A model's rollout history: ``<store>/<name>/history.jsonl``, one JSON object per event.

Events: ``started`` (written before anything is applied: the version, the previous version and
the application's previous and new serve config entries), then ``promoted``, ``rolled_back``
(the gate or the apply failed, the previous entry restored) or ``undone``. The version an
application serves is the one of its last promoted, rolled-back (restored) or undone event.
Each event names its ``engine`` and ``target``; a ``started`` that no decision follows was
interrupted, and is closed by a ``rolled_back`` with reason ``interrupted``
(components/rollout/rollout_flow.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from components.storage.objects import is_s3, read_text, write_text

if TYPE_CHECKING:
    from components.settings import Settings


def history_uri(name: str, settings: Settings) -> str:
    root = settings.model_store_uri.rstrip("/")
    if not is_s3(root):
        from pathlib import Path

        root = str(Path(root).resolve())
    return f"{root}/{name}/history.jsonl"


def read_history(name: str, settings: Settings) -> list[dict[str, Any]]:
    try:
        text = read_text(history_uri(name, settings), settings)
    except FileNotFoundError:
        return []
    except Exception as exc:  # minio's S3Error for a missing object
        if "NoSuchKey" in str(exc):
            return []
        raise
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def append_event(name: str, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Append ``event`` (with ``at``) to the history; the whole file is rewritten atomically."""
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **event}
    lines = [json.dumps(e, sort_keys=True) for e in [*read_history(name, settings), record]]
    write_text(history_uri(name, settings), "\n".join(lines) + "\n", settings)
    return record


def serving_versions(events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(current, previous) version from the events, as the last decisions left them."""
    versions: list[str | None] = []
    for event in events:
        if event.get("event") in ("promoted", "rolled_back", "undone"):
            serving = event.get("serving")
            if not versions or versions[-1] != serving:
                versions.append(serving)
    current = versions[-1] if versions else None
    previous = versions[-2] if len(versions) > 1 else None
    return current, previous
