"""``python -m testing.bridge_process``: a bridge process on the recording engine, for tests
and benches that kill it (SIGKILL) and start it again."""

from __future__ import annotations

import argparse
from pathlib import Path

from bridge.engines import EngineSet
from bridge.main import serve
from components.settings import Settings
from testing.recording_engine import RecordingEngine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--run-s", type=float, default=0.0)
    parser.add_argument("--submit-s", type=float, default=0.0, help="each submission's duration")
    parser.add_argument("--hang-after-create-s", type=float, default=0.0)
    parser.add_argument("--idempotent", action="store_true")
    parser.add_argument("--poll-s", type=float, default=0.2)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--http-port", type=int, default=0)
    args = parser.parse_args()
    settings = Settings(
        nats_url=args.nats_url,
        bridge_poll_s=args.poll_s,
        bridge_http_host="127.0.0.1",
        bridge_http_port=args.http_port,
        bridge_ack_wait_s=5.0,
        bridge_retry_base_s=0.05,
        bridge_retry_max_s=1.0,
        bridge_max_deliver=50,
    )

    def factory(name: str, _settings: Settings) -> RecordingEngine:
        return RecordingEngine(
            name,
            args.runs_dir,
            idempotent=args.idempotent,
            fail_rate=args.fail_rate,
            run_s=args.run_s,
            submit_s=args.submit_s,
            hang_after_create_s=args.hang_after_create_s,
        )

    serve(settings, EngineSet(settings, factory=factory), log_level=args.log_level)


if __name__ == "__main__":
    main()
