"""What the sensors restate from rooms they may not import agrees with those rooms: the bridge's
subjects and forbidden keys, Argo's parameter text, the ingestible suffixes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bridge import messages
from components.ingest.sources import SUPPORTED_TYPES
from components.orchestration.parameter_text import argument_text
from components.settings import Settings
from sensors import config, filters


def test_the_bridge_subjects() -> None:
    assert config.TRIGGER_PREFIX == messages.TRIGGER_PREFIX
    assert config.DEAD_LETTER_SUBJECT.startswith(messages.DEAD_LETTER_PREFIX)
    # The dead letter is kept by the bridge's stream, and never consumed as a request.
    assert not config.DEAD_LETTER_SUBJECT.startswith(messages.TRIGGER_PREFIX)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("", ""),
        ("text", "text"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (0.5, "0.5"),
        (["s3://a/b"], '["s3://a/b"]'),
        ({"k": [1, None]}, '{"k":[1,null]}'),
    ],
)
def test_argument_text_is_argos(value: Any, text: str) -> None:
    # What the sensors and the WorkflowTemplates both send as an Argo parameter.
    assert argument_text(value) == text


def test_the_default_suffixes_are_what_ingestion_reads(clean_env: None) -> None:
    assert sorted(Settings().events_suffixes) == sorted(SUPPORTED_TYPES)


def _refused_by_bridge(key: str) -> bool:
    return bool(messages._forbidden_paths({key: 1}))


@pytest.mark.parametrize(
    "key",
    [
        *sorted(messages.FORBIDDEN_KEYS),
        "IMAGE",
        "Service_Account",
        "serviceAccountName",
        "node-selector",
        "_env_",
        "Pod-Spec-Patch",
        "engine",
        "source",
        "environments",
        "nodes",
        "my_image",
        "prune",
    ],
)
def test_the_forbidden_key_filter_refuses_exactly_what_the_bridge_refuses(key: str) -> None:
    pattern = re.compile(filters.forbidden_key_pattern())
    body = json.dumps({"source": "s3://documents/docs/", "nested": [{key: "x"}]})
    assert bool(pattern.search(body)) == _refused_by_bridge(key)


def test_a_forbidden_word_inside_a_value_is_not_a_key() -> None:
    pattern = re.compile(filters.forbidden_key_pattern())
    assert not pattern.search(json.dumps({"source": 'a "image": b', "note": "env"}))
