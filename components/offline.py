"""Process-wide switches that keep third-party libraries offline and quiet."""

from __future__ import annotations

import os

# Read by huggingface_hub, transformers and unstructured at import or first use. Set, never
# overridden, so that a user who deliberately enables the hub still can.
_OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}


def configure_offline() -> None:
    """Default the environment so no library downloads or phones home at run time."""
    for key, value in _OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
