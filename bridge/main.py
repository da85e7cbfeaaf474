"""Run the bridge as a process: logging, health and metrics endpoints, signals, the service."""

from __future__ import annotations

import asyncio
import logging
import signal

from bridge.engines import EngineSet
from bridge.metrics import BridgeMetrics
from components import tracing
from components.settings import Settings

log = logging.getLogger("llmw.bridge")


def serve(settings: Settings, engines: EngineSet | None = None, log_level: str = "INFO") -> None:
    """Serve until SIGTERM or SIGINT: then stop fetching, finish in-flight work and drain."""
    from bridge.health import HealthServer
    from bridge.logs import configure_logging, secrets_of
    from bridge.service import Bridge

    configure_logging(log_level, secrets_of(settings))
    if tracing.configure(settings, "llmw-bridge"):
        log.info("tracing to %s", settings.otlp_endpoint)
    metrics = BridgeMetrics()
    bridge = Bridge(settings, engines, metrics)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await bridge.run(stop)

    health = HealthServer(
        settings.bridge_http_host, settings.bridge_http_port, lambda: bridge.ready, metrics
    )
    with health:
        log.info("health and metrics on %s:%d", settings.bridge_http_host, health.port)
        asyncio.run(main())
    tracing.flush()
    log.info("bridge stopped")
