"""What the bridge's parts share once it is connected: settings, JetStream, claims, engines."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext

from bridge.claims import ClaimStore
from bridge.engines import EngineSet
from bridge.metrics import BridgeMetrics
from components.settings import Settings


@dataclass(frozen=True)
class BridgeContext:
    """Handed to the message handler and the watcher, which both act on claims and runs."""

    settings: Settings
    js: JetStreamContext
    claims: ClaimStore
    engines: EngineSet
    metrics: BridgeMetrics
