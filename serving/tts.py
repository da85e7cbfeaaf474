"""The tts application: not built in this project; its builder refuses, and Ray reports the
application as DEPLOY_FAILED with this message."""

from __future__ import annotations

from typing import Any

from serving.common import refuse


def app(args: dict[str, Any]) -> Any:
    """Refuses: text-to-speech is served by the cluster's own image, not by llmw."""
    refuse(
        "tts",
        "text-to-speech (XTTS) is not built in llm-workflows; serve it with the "
        "cluster's tts image, not with ray-local",
    )
