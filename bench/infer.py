"""Batch inference benchmark: `python -m bench.infer`.

Prints, from one run, side by side:
- the openai engine against a local server with a fixed per-request delay and a concurrency cap:
  achieved rows/s and the server's ceiling (cap / delay), and their ratio (target >= 0.9);
- the transformers engine on a tiny random-weight model: batched rows/s / one-by-one rows/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _requests(path: Path, count: int, words: int = 8) -> Path:
    lines = []
    for i in range(count):
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": " ".join(["question"] * words) + f" {i}"}],
            "max_tokens": 8,
        }
        line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        lines.append(json.dumps(line))
    path.write_text("\n".join(lines) + "\n")
    return path


def openai_ratio(rows: int, delay_s: float, cap: int) -> tuple[float, float]:
    """The server runs in a process of its own, so it never competes with the client's GIL."""
    import subprocess

    from components.inference.batch import run_batch
    from components.inference.models import BatchParams
    from components.settings import Settings

    server = subprocess.Popen(
        [sys.executable, "-m", "testing.openai_server", "--delay", str(delay_s)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            source = _requests(Path(tmp) / "in.jsonl", rows)
            params = BatchParams(
                input=str(source),
                output=f"{tmp}/out.jsonl",
                engine="openai",
                model="m",
                concurrency=cap,
            )
            report = run_batch(params, Settings(llm_url=url))
            assert report.rows == rows and report.errors == 0, report
    finally:
        server.terminate()
        server.wait(timeout=10)
    return report.rows_per_second, cap / delay_s


def transformers_ratio(rows: int, batch_size: int) -> tuple[float, float]:
    from components.inference.batch import run_batch
    from components.inference.engines.transformers_engine import TransformersEngine
    from components.inference.models import BatchParams
    from testing.tiny_lm import build_tiny_lm

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_lm(Path(tmp) / "lm", context=256)
        source = _requests(Path(tmp) / "in.jsonl", rows)
        rates = []
        for size in (batch_size, 1):
            engine = TransformersEngine(str(model), batch_size=size, device="cpu")
            params = BatchParams(
                input=str(source),
                output=f"{tmp}/out-{size}.jsonl",
                model=str(model),
                batch_size=size,
            )
            report = run_batch(params, engine=engine)
            assert report.rows == rows and report.errors == 0, report
            rates.append(report.rows_per_second)
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=0.1, help="server delay per request, s")
    parser.add_argument("--cap", type=int, default=16, help="concurrency cap")
    parser.add_argument("--lm-rows", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    achieved, ceiling = openai_ratio(args.rows, args.delay, args.cap)
    batched, single = transformers_ratio(args.lm_rows, args.batch_size)

    from rich.console import Console
    from rich.table import Table

    table = Table(title="Batch inference benchmark")
    for column in ("figure", "measured", "target"):
        table.add_column(column)
    table.add_row(f"openai: rows/s ({args.rows} rows, cap {args.cap})", f"{achieved:.1f}", "")
    table.add_row(f"openai: server ceiling ({args.cap} / {args.delay} s)", f"{ceiling:.1f}", "")
    table.add_row("openai: achieved / ceiling", f"{achieved / ceiling:.3f}", ">= 0.9")
    table.add_row(f"transformers: batched rows/s (batch {args.batch_size})", f"{batched:.1f}", "")
    table.add_row("transformers: one-by-one rows/s", f"{single:.1f}", "")
    table.add_row("transformers: batched / one-by-one", f"{batched / single:.2f}", "")
    Console().print(table)


if __name__ == "__main__":
    main()
