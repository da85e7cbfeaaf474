"""The bridge's Prometheus metrics, in a registry of their own (names prefixed ``llmw_bridge_``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "llmw_bridge_"
# Submission latency from 1 ms (a local no-op engine) to a minute (a slow API server).
SUBMIT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class BridgeMetrics:
    """Counters, a latency histogram and an in-flight gauge; ``render`` is the text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            f"{PREFIX}requests_received", "Request messages received.", registry=r
        )
        self.rejected = Counter(
            f"{PREFIX}requests_rejected", "Requests rejected, by reason.", ["reason"], registry=r
        )
        self.submitted = Counter(
            f"{PREFIX}runs_submitted", "Runs submitted, by engine.", ["engine"], registry=r
        )
        self.failed = Counter(
            f"{PREFIX}runs_failed", "Runs that failed, submission included.", ["engine"], registry=r
        )
        self.runs_succeeded = Counter(
            f"{PREFIX}runs_succeeded", "Runs that succeeded, by engine.", ["engine"], registry=r
        )
        self.redelivered = Counter(
            f"{PREFIX}messages_redelivered", "Messages delivered more than once.", registry=r
        )
        self.duplicates = Counter(
            f"{PREFIX}duplicate_requests",
            "Requests whose request_id was already claimed (no second run).",
            registry=r,
        )
        self.submit_latency = Histogram(
            f"{PREFIX}submit_latency_seconds",
            "Time to submit a run to its engine.",
            buckets=SUBMIT_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            f"{PREFIX}requests_in_flight", "Requests being handled now.", registry=r
        )

    def sample(self, name: str, **labels: str) -> float:
        """The current value of sample ``llmw_bridge_<name>`` (a counter's ends in ``_total``)."""
        value = self.registry.get_sample_value(f"{PREFIX}{name}", labels)
        if value is None:
            raise KeyError(f"no sample {PREFIX}{name} with labels {labels}")
        return value

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
