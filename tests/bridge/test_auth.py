"""nkey and creds (JWT) authentication against a real nats-server configured for each: the
settings' options connect, the server refuses a key it does not trust, and the bridge serves a
request end to end over a creds file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nats
import pytest

from bridge.client import trigger
from bridge.connection import connect_options
from bridge.engines import EngineSet
from bridge.messages import RunState
from components.settings import Settings
from testing.bridge_harness import BridgeThread, bridge_settings, request
from testing.nats_server import JwtAuth, NatsServer, NkeyPair
from testing.recording_engine import RecordingEngine, runs_by_name


async def _round_trip(settings: Settings) -> bytes:
    """Connect with the settings' options, publish to ourselves, and read it back."""

    async def quiet(_exc: Exception) -> None:
        return None

    options = {**connect_options(settings), "allow_reconnect": False, "error_cb": quiet}
    nc = await asyncio.wait_for(nats.connect(**options), timeout=15)
    try:
        sub = await nc.subscribe("llmw.auth")
        await nc.publish("llmw.auth", b"signed in")
        return bytes((await sub.next_msg(timeout=5)).data)
    finally:
        await nc.close()


def _refused(settings: Settings) -> None:
    with pytest.raises(nats.errors.Error, match=r"[Aa]uthorization"):
        asyncio.run(_round_trip(settings))


def test_an_nkey_user_signs_in_and_a_seed_the_server_does_not_know_is_refused(
    tmp_path: Path,
) -> None:
    user, stranger = NkeyPair(), NkeyPair()
    config = f"authorization {{\n  users = [ {{ nkey: {user.public} }} ]\n}}\n"
    with NatsServer(tmp_path / "nats", config=config) as server:
        seed = user.write_seed(tmp_path / "user.nk")
        settings = Settings(nats_url=server.url, nats_nkey_seed_file=seed)
        assert asyncio.run(_round_trip(settings)) == b"signed in"
        other = stranger.write_seed(tmp_path / "stranger.nk")
        _refused(Settings(nats_url=server.url, nats_nkey_seed_file=other))
        _refused(Settings(nats_url=server.url))  # and nobody gets in without a key


def test_a_creds_file_signs_in_and_a_user_signed_by_another_key_is_refused(
    tmp_path: Path,
) -> None:
    auth = JwtAuth(tmp_path / "jwt")
    with NatsServer(tmp_path / "nats", config=auth.config) as server:
        creds = auth.creds("bridge")
        assert asyncio.run(_round_trip(Settings(nats_url=server.url, nats_creds_file=creds))) == (
            b"signed in"
        )
        forged = auth.creds("forged", forged=True)
        _refused(Settings(nats_url=server.url, nats_creds_file=forged))


def test_the_bridge_serves_a_request_over_a_creds_file(tmp_path: Path, runs_dir: Path) -> None:
    auth = JwtAuth(tmp_path / "jwt")
    with NatsServer(tmp_path / "nats", config=auth.config) as server:
        settings = bridge_settings(server.url, nats_creds_file=auth.creds("bridge"))

        def factory(name: str, _settings: Settings) -> Any:
            return RecordingEngine(name, runs_dir, run_s=0.1)

        bridge = BridgeThread(settings, EngineSet(settings, factory)).start()
        try:
            client = Settings(nats_url=server.url, nats_creds_file=auth.creds("requester"))
            last = asyncio.run(trigger(client, request("jwt-1"), wait=True, timeout_s=30))
        finally:
            bridge.stop()
    assert last is not None and last.state is RunState.succeeded
    assert sum(runs_by_name(runs_dir).values()) == 1
