"""JSON log lines on stderr, and no secret in any of them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.logs import configure_logging, secrets_of
from components.settings import Settings

SECRETS: dict[str, Any] = {
    "nats_password": "nats-pw-Zx81",
    "nats_token": "nats-token-Qq42",
    "kfp_token": "kfp-token-Aa17",
    "argo_token": "argo-token-Bb29",
    "s3_access_key": "s3-access-Cc33",
    "s3_secret_key": "s3-secret-Dd44",
    "milvus_token": "root:milvus-Ee55",
    "embedding_api_key": "embed-key-Ff66",
    "llm_api_key": "llm-key-Gg77",
}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_secrets_of_finds_every_secret_that_is_set() -> None:
    found = secrets_of(Settings(**SECRETS))
    assert sorted(found) == sorted(SECRETS.values())
    assert secrets_of(Settings()) == []


def test_one_json_object_per_record_with_the_context_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    log = logging.getLogger("bridge.service")
    context = {
        "request_id": "req-1",
        "pipeline": "document-ingestion",
        "engine": "argo",
        "run_id": "run-9",
        "state": "submitted",
        "code": None,
    }
    log.info("submitted %s", "req-1", extra=context)
    log.debug("not shown at INFO")
    (line,) = _lines(capsys)
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert (line["level"], line["logger"], line["message"]) == (
        "INFO",
        "bridge.service",
        "submitted req-1",
    )
    for key, value in context.items():
        assert line[key] == value
    assert "exc" not in line


def test_exceptions_come_as_exc(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug")
    try:
        raise RuntimeError("engine said no")
    except RuntimeError:
        logging.getLogger("bridge").exception("submission failed", extra={"code": "engine_error"})
    (line,) = _lines(capsys)
    assert line["level"] == "ERROR"
    assert line["code"] == "engine_error"
    assert "RuntimeError: engine said no" in line["exc"]
    assert "Traceback" in line["exc"]


def test_no_secret_ever_reaches_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(**SECRETS)
    configure_logging("INFO", secrets_of(settings))
    log = logging.getLogger("bridge.service")
    nats_pw, token = SECRETS["nats_password"], SECRETS["nats_token"]
    log.info("connecting with password %s", nats_pw)
    log.warning(f"token is {token} and kfp's is {SECRETS['kfp_token']}")
    log.info(
        "extras",
        extra={
            "request_id": f"id-{SECRETS['argo_token']}",
            "engine": {"auth": SECRETS["s3_secret_key"], "list": [SECRETS["s3_access_key"]]},
            "state": 3,
        },
    )
    log.info("url nats://bridge:not-a-known-secret@nats:4222 and tls://tok3n-unknown@nats:4443")
    try:
        raise ValueError(f"milvus refused {SECRETS['milvus_token']}")
    except ValueError:
        log.exception("failed with %s", SECRETS["llm_api_key"])
    log.error("embedding key %r", SECRETS["embedding_api_key"], stack_info=True)
    lines = _lines(capsys)
    assert len(lines) == 6
    text = json.dumps(lines)
    for secret in [*SECRETS.values(), "not-a-known-secret", "tok3n-unknown", "milvus-Ee55"]:
        assert secret not in text
    assert lines[0]["message"] == "connecting with password ***"
    assert lines[2]["request_id"] == "id-***"
    assert lines[2]["engine"] == {"auth": "***", "list": ["***"]}
    assert lines[2]["state"] == 3
    assert lines[3]["message"] == "url nats://bridge:***@nats:4222 and tls://***@nats:4443"
    assert "ValueError: milvus refused ***" in lines[4]["exc"]
    assert lines[4]["message"] == "failed with ***"


def test_configuring_twice_keeps_one_handler_and_the_new_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", ["first-secret"])
    configure_logging("INFO", ["second-secret"])
    logging.getLogger("x").info("first-secret second-secret")
    (line,) = _lines(capsys)
    assert line["message"] == "first-secret ***"


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("LOUD")
