"""Fixtures of the embedding-rollout tests: the second models, built once per module, and a lab
(the labelled corpus ingested by a plain first ingest: generation 1 behind the alias)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.components.rollout_lab import Lab, make_lab, second_models_at


@pytest.fixture(scope="module")
def second_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return second_models_at(tmp_path_factory.getbasetemp())


@pytest.fixture
def lab(tmp_path: Path, make_settings: Any) -> Lab:
    return make_lab(tmp_path, make_settings)
