"""Fixtures for the Argo room: settings independent of the developer's environment."""

from __future__ import annotations

import os
from typing import Any

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LLMW_* variable (nor config file) from the developer's shell leaks into settings."""
    for key in list(os.environ):
        if key.startswith("LLMW_"):
            monkeypatch.delenv(key)


@pytest.fixture
def default_settings(clean_env: None) -> Any:
    """The shipped defaults: what the golden files are rendered with."""
    from components.settings import Settings

    return Settings()
