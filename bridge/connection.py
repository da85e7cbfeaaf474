"""NATS connection options from settings: servers, reconnect forever, one kind of auth, TLS.

The connection callbacks (errors, disconnects, reconnects) are the caller's to add.
"""

from __future__ import annotations

import importlib.util
import re
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from components.settings import Settings

RECONNECT_TIME_WAIT_S = 2  # between reconnect attempts to the same server
CONNECT_TIMEOUT_S = 5  # per attempt, TLS handshake included
PING_INTERVAL_S = 20  # with 3 unanswered pings, a dead link is noticed within a minute
MAX_OUTSTANDING_PINGS = 3


def _env(field: str) -> str:
    return f"LLMW_{field.upper()}"


def _existing_file(settings: Settings, field: str) -> Path | None:
    """The path in ``field`` when set; ValueError naming the setting when it is not a file."""
    path: Path | None = getattr(settings, field)
    if path is not None and not path.is_file():
        raise ValueError(f"{_env(field)} names {path}, which is not a file")
    return path


def _auth_options(settings: Settings) -> dict[str, Any]:
    """user/password, token, nkey seed or creds file: at most one of them, each complete."""
    if (settings.nats_user is None) != (settings.nats_password is None):
        raise ValueError("LLMW_NATS_USER and LLMW_NATS_PASSWORD must be set together")
    chosen = {
        "LLMW_NATS_USER/LLMW_NATS_PASSWORD": settings.nats_user is not None,
        "LLMW_NATS_TOKEN": settings.nats_token is not None,
        "LLMW_NATS_NKEY_SEED_FILE": settings.nats_nkey_seed_file is not None,
        "LLMW_NATS_CREDS_FILE": settings.nats_creds_file is not None,
    }
    names = [name for name, is_set in chosen.items() if is_set]
    if len(names) > 1:
        raise ValueError(f"NATS auth: choose one of {' or '.join(names)}, not several")
    parts = urlsplit(settings.nats_url)
    if names and (parts.username or parts.password):
        raise ValueError(f"LLMW_NATS_URL carries credentials and {names[0]} is set too")

    options: dict[str, Any] = {}
    if settings.nats_user is not None and settings.nats_password is not None:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password.get_secret_value()
    if settings.nats_token is not None:
        options["token"] = settings.nats_token.get_secret_value()
    for field, option in (
        ("nats_nkey_seed_file", "nkeys_seed"),
        ("nats_creds_file", "user_credentials"),
    ):
        path = _existing_file(settings, field)
        if path is None:
            continue
        if importlib.util.find_spec("nkeys") is None:
            raise ValueError(f"{_env(field)} needs the nkeys package: pip install 'nats-py[nkeys]'")
        options[option] = str(path)
    return options


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying client context from the CA and optional client certificate; None if unset."""
    ca = _existing_file(settings, "nats_tls_ca_file")
    cert = _existing_file(settings, "nats_tls_cert_file")
    key = _existing_file(settings, "nats_tls_key_file")
    if (cert is None) != (key is None):
        raise ValueError("LLMW_NATS_TLS_CERT_FILE and LLMW_NATS_TLS_KEY_FILE must be set together")
    if ca is None and cert is None:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except ssl.SSLError as exc:
        raise ValueError(f"LLMW_NATS_TLS_CA_FILE {ca}: not a usable CA bundle ({exc})") from None
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(certfile=cert, keyfile=key)
        except ssl.SSLError as exc:
            raise ValueError(
                f"LLMW_NATS_TLS_CERT_FILE {cert} / LLMW_NATS_TLS_KEY_FILE {key}: {exc}"
            ) from None
    return context


def connect_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect``; ValueError naming the setting when contradictory.

    The client reconnects forever, so ``nats.connect`` itself keeps trying until a server answers.
    """
    options: dict[str, Any] = {
        "servers": [settings.nats_url],
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_TIME_WAIT_S,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "ping_interval": PING_INTERVAL_S,
        "max_outstanding_pings": MAX_OUTSTANDING_PINGS,
    }
    options.update(_auth_options(settings))
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
    return options


def redact_url(url: str) -> str:
    """``url`` with any password or token in it replaced by ``***`` (comma lists each done)."""
    return ",".join(_redact_one(part) for part in url.split(","))


_USERINFO = re.compile(
    r"^(?P<scheme>\s*[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>.*)@(?P<rest>[^@]*)$", re.S
)


def _redact_one(url: str) -> str:
    match = _USERINFO.match(url)
    if match is None:
        return url
    user, sep, _secret = match["userinfo"].partition(":")
    # A lone userinfo is a token (nats://TOKEN@host); user:password keeps the user name.
    hidden = f"{user}:***" if sep else "***"
    return f"{match['scheme']}{hidden}@{match['rest']}"
