"""The whisper application: not built in this project; its builder refuses, and Ray reports the
application as DEPLOY_FAILED with this message."""

from __future__ import annotations

from typing import Any

from serving.common import refuse


def app(args: dict[str, Any]) -> Any:
    """Refuses: speech-to-text is served by the cluster's own image, not by llmw."""
    refuse(
        "whisper",
        "speech-to-text (Whisper) is not built in llm-workflows; serve it with the "
        "cluster's whisper image, not with ray-local",
    )
