"""JSON log lines on stderr; every known secret and any password in a URL becomes ``***``."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import SecretStr

from components.settings import Settings

MASK = "***"
# The fields the bridge passes with ``extra=``, first and in this order; any other extra follows.
CONTEXT_FIELDS = ("request_id", "pipeline", "engine", "run_id", "state", "code")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# scheme://user:password@ or scheme://token@ anywhere in a text.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/@]+)@")


def secrets_of(settings: Settings) -> list[str]:
    """Every SecretStr value that is set in ``settings`` (passwords, tokens, keys)."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            found.append(value.get_secret_value())
    return found


class Redactor:
    """Replaces the given secrets (longest first) and URL passwords or tokens with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        unique = {s for s in secrets if s}
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in sorted(unique, key=len, reverse=True)))
            if unique
            else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return _URL_USERINFO.sub(_mask_userinfo, text)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _secret = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}:{MASK}@" if sep else f"{match['scheme']}{MASK}@"


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, extras and exception text with secrets masked."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # the text below is what gets logged, so nothing unmasked remains
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        for key in _extra_keys(record):
            record.__dict__[key] = _redact_value(record.__dict__[key], self._redact)
        return True


def _redact_value(value: Any, redact: Redactor) -> Any:
    """Strings masked; maps and sequences masked inside; numbers kept; anything else as text."""
    if isinstance(value, bool | int | float | type(None)):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _redact_value(v, redact) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        value = sorted(value, key=str)
    if isinstance(value, list | tuple):
        return [_redact_value(v, redact) for v in value]
    return redact(str(value))


def _extra_keys(record: logging.LogRecord) -> list[str]:
    extras = [k for k in record.__dict__ if k not in _STANDARD and not k.startswith("_")]
    known = [k for k in CONTEXT_FIELDS if k in record.__dict__]
    return known + sorted(k for k in extras if k not in CONTEXT_FIELDS)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the extras, ``exc``."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _extra_keys(record):
            entry.setdefault(key, record.__dict__[key])
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if exc:
            entry["exc"] = exc
        if record.stack_info:
            entry["stack"] = record.stack_info
        return self._redact(json.dumps(entry, ensure_ascii=False, default=str))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (so redirections are honoured)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Send every logger to one JSON-lines stderr handler that masks ``secrets``; idempotent."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_llmw_json", False)]:
        root.removeHandler(handler)
        handler.close()
    redact = Redactor(secrets)
    handler = _StderrHandler()
    handler._llmw_json = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter(redact))
    handler.setFormatter(JsonFormatter(redact))
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)
