"""Rollout rehearsal benchmark on ray-local: `python -m bench.rollout [--switches N]`.

Starts a ray-local head (127.0.0.1, free ports), deploys the packaged MiniLM as embeddings v1
through the rollout (gate included), then replaces it in place N times (v2, v3, ...: the
app's args change, as a rollout's does) while one client sends a steady stream of embedding
requests. For each switch: seconds from the PUT to the first reply from the new version, to
the application being RUNNING with the new version, and the failed requests of the stream
(and the seconds between the first and last failure). Prints JSON. The head is stopped at
the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


class Stream:
    """A client sending one embeddings request after another, recording each outcome."""

    def __init__(self, url: str, pause_s: float) -> None:
        self.url, self.pause_s = url, pause_s
        self.outcomes: list[tuple[float, bool, str]] = []  # (time, ok, version)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx

        from components.rollout.ray_local import VERSION_HEADER

        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, json={"input": "a steady request"})
                    ok, version = r.status_code == 200, r.headers.get(VERSION_HEADER, "")
                except httpx.HTTPError:
                    ok, version = False, ""
                self.outcomes.append((time.monotonic(), ok, version))
                time.sleep(self.pause_s)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def switch(ray: Any, settings: Any, version: str, pause_s: float) -> dict[str, Any]:
    """Replace the embeddings app in place with ``version`` under a request stream."""
    from components.rollout.local_rollout import wait_serving
    from components.rollout.ray_local import deployed_config

    config = deployed_config(ray.details())
    for app in config["applications"]:
        if app["name"] == "embeddings":
            app["args"] = {**app["args"], "model_version": version}
    with Stream(f"{ray.http_url}/embeddings/v1/embeddings", pause_s) as stream:
        time.sleep(1.0)
        applied = time.monotonic()
        ray.apply(config)
        wait_serving(ray, "embeddings", version, "/embeddings", 300)
        running_at = time.monotonic()
        time.sleep(1.0)
    after = [o for o in stream.outcomes if o[0] >= applied]
    first_new = next((t for t, ok, v in after if ok and v == version), None)
    failed = [t for t, ok, _ in stream.outcomes if not ok]
    return {
        "version": version,
        "apply_to_first_new_reply_s": None if first_new is None else round(first_new - applied, 2),
        "apply_to_running_s": round(running_at - applied, 2),
        "requests": len(stream.outcomes),
        "failed": len(failed),
        "failed_window_s": round(failed[-1] - failed[0], 2) if failed else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=3)
    parser.add_argument("--pause-ms", type=float, default=20.0)
    options = parser.parse_args(argv)
    from components.rollout.gate import GateThresholds
    from components.rollout.local_rollout import GateOptions, start_local
    from components.rollout.plan import RolloutRequest
    from testing.ray_local import minilm_copy, running_ray_local

    with tempfile.TemporaryDirectory(prefix="llmw-bench-") as tmp:
        model = minilm_copy(Path(tmp) / "minilm")
        started = time.monotonic()
        with running_ray_local() as (settings, ray):
            head_s = round(time.monotonic() - started, 2)
            request = RolloutRequest(source=str(model), app="embeddings", version="v1")
            first = start_local(request, settings, GateOptions(GateThresholds(), rounds=1))
            switches = [
                switch(ray, settings, f"v{i + 2}", options.pause_ms / 1000)
                for i in range(options.switches)
            ]
    ready = [s["apply_to_running_s"] for s in switches]
    result = {
        "ray_head_start_s": head_s,
        "first_rollout": {k: first.get(k) for k in ("outcome", "ready_s", "apply_to_decision_s")},
        "switches": switches,
        "median_apply_to_running_s": statistics.median(ready),
        "failed_requests_total": sum(s["failed"] for s in switches),
        "requests_total": sum(s["requests"] for s in switches),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
