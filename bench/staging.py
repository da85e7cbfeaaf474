"""Staging throughput against a plain minio upload: `python -m bench.staging [--total-mb N]`.

Builds a model-like folder (one large random ``model.safetensors``, or ``--shards`` of them,
a tokenizer, several small JSON files; ``--total-mb`` in all), starts moto's S3 server as a
child process on 127.0.0.1 (testing/s3_server.py: the server does not share this
interpreter's GIL; objects kept in memory unless ``--server-disk``), and measures in each
round, side by side and in alternating order, the plain upload of the same files with the
minio client (``fput_object`` of each file, one after another, the client's defaults) and
``stage_model`` into ``s3://bench/store``, then a re-staging of that version (the no-op: the
files are hashed, nothing is sent). Each upload starts on an empty bucket with no dirty
pages. Prints medians over the rounds as a table, or JSON with ``--json``; the server is
stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BUCKET = "bench"
MB = 1_000_000
# The small files of a Hugging Face model folder: name -> size in bytes.
SMALL_FILES = {
    "config.json": 1_200,
    "generation_config.json": 180,
    "special_tokens_map.json": 600,
    "tokenizer_config.json": 4_000,
    "vocab.txt": 230_000,
}
TOKENIZER_BYTES = 7_000_000


def build_model(folder: Path, total_mb: int, shards: int = 1) -> list[Path]:
    """The model folder: ``total_mb`` MB in all, most of it in the weights.

    The weights are ``model.safetensors``, or ``shards`` files ``model-0000i-of-0000n`` as a
    large model's checkpoint is split.
    """
    folder.mkdir(parents=True, exist_ok=True)
    weights = total_mb * MB - TOKENIZER_BYTES - sum(SMALL_FILES.values())
    if weights <= 0:
        raise SystemExit(f"--total-mb {total_mb} is too small: use at least 10")
    sizes = {**SMALL_FILES, "tokenizer.json": TOKENIZER_BYTES}
    if shards <= 1:
        sizes["model.safetensors"] = weights
    for i in range(shards if shards > 1 else 0):
        sizes[f"model-{i + 1:05d}-of-{shards:05d}.safetensors"] = weights // shards
    for name, size in sizes.items():
        with open(folder / name, "wb") as out:
            left = size
            while left:
                chunk = os.urandom(min(left, 16 * 1024 * 1024))
                out.write(chunk)
                left -= len(chunk)
    return sorted(folder / name for name in sizes)


def plain_upload(client: Any, files: list[Path], root: Path, prefix: str) -> float:
    """Seconds to upload ``files`` with ``fput_object``, one after another, minio's defaults."""
    started = time.perf_counter()
    for path in files:
        client.fput_object(BUCKET, f"{prefix}/{path.relative_to(root).as_posix()}", str(path))
    return time.perf_counter() - started


def staged_upload(folder: Path, version: str, settings: Any, workers: int) -> float:
    """Seconds for ``stage_model`` of ``folder`` as a new version."""
    from components.rollout.staging import stage_model

    started = time.perf_counter()
    result = stage_model(str(folder), "bench-model", version, settings, workers=workers)
    elapsed = time.perf_counter() - started
    if result.action != "stage":
        raise RuntimeError(f"version {version} was not staged: {result.action}")
    return elapsed


def settle(client: Any) -> None:
    """An empty bucket and no dirty pages: each upload starts as the other did.

    moto keeps objects over 5 MB in temporary files: without this, the upload that comes second
    in a round shares the disk with the writeback of the first one's bytes.
    """
    for obj in client.list_objects(BUCKET, recursive=True):
        client.remove_object(BUCKET, obj.object_name)
    os.sync()


def cpu_seconds(server_pid: int) -> float:
    """CPU seconds used so far by this process and the server's (Linux: /proc)."""
    mine = os.times()
    fields = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
    server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return mine.user + mine.system + server


def one_round(
    client: Any, folder: Path, files: list[Path], settings: Any, i: int, options: Any
) -> dict[str, float]:
    """The plain upload and the staging (then its no-op), in an order that alternates."""
    times: dict[str, float] = {}
    for kind in ("plain", "staged") if i % 2 == 0 else ("staged", "plain"):
        settle(client)
        cpu = cpu_seconds(options.server_pid)
        if kind == "plain":
            times["plain_s"] = plain_upload(client, files, folder, f"plain/r{i}")
        else:
            times["staged_s"] = staged_upload(folder, f"r{i}", settings, options.workers)
        times[f"{kind}_cpu_s"] = cpu_seconds(options.server_pid) - cpu
        if kind == "staged":
            times["noop_s"] = noop_restage(folder, f"r{i}", settings, options.workers)
    return times


def rounds(folder: Path, files: list[Path], settings: Any, options: Any) -> list[dict[str, float]]:
    """Every round's seconds: ``plain_s``, ``staged_s``, their CPU seconds, and ``noop_s``."""
    from components.storage.s3 import minio_client

    client = minio_client(settings)
    measured = [
        one_round(client, folder, files, settings, i, options) for i in range(options.rounds)
    ]
    settle(client)
    return measured


def noop_restage(folder: Path, version: str, settings: Any, workers: int) -> float:
    """Seconds to stage ``version`` again with the same bytes (hashed, nothing sent)."""
    from components.rollout.staging import stage_model

    started = time.perf_counter()
    result = stage_model(str(folder), "bench-model", version, settings, workers=workers)
    elapsed = time.perf_counter() - started
    if result.action != "unchanged":
        raise RuntimeError(f"re-staging {version} was not a no-op: {result.action}")
    return elapsed


def summarize(measured: list[dict[str, float]], total: int) -> dict[str, Any]:
    """Medians over the rounds, MB/s and the ratio staging ÷ plain (throughput).

    The ratio is the median of each round's own ratio: both uploads of a round ran a few
    seconds apart, so a machine whose load drifts between rounds moves both alike.
    """
    plain = statistics.median(r["plain_s"] for r in measured)
    staged = statistics.median(r["staged_s"] for r in measured)
    ratios = [r["plain_s"] / r["staged_s"] for r in measured]
    noop_s = statistics.median(r["noop_s"] for r in measured)
    return {
        "bytes": total,
        "rounds": [{k: round(v, 3) for k, v in r.items()} for r in measured],
        "plain_s": round(plain, 3),
        "plain_mb_s": round(total / MB / plain, 1),
        "staged_s": round(staged, 3),
        "staged_mb_s": round(total / MB / staged, 1),
        "ratio_staged_to_plain": round(statistics.median(ratios), 3),
        "ratio_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
        # CPU seconds of client and server together: what a loaded machine's share must cover.
        "plain_cpu_s": round(statistics.median(r["plain_cpu_s"] for r in measured), 3),
        "staged_cpu_s": round(statistics.median(r["staged_cpu_s"] for r in measured), 3),
        "noop_restage_s": round(noop_s, 3),
        "noop_restage_mb_s": round(total / MB / noop_s, 1),
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Staging {result['bytes'] / MB:.0f} MB into moto's S3 server")
    for column in ("", "seconds (median)", "MB/s", "CPU s, client + server"):
        table.add_column(column)
    table.add_row(
        "plain minio fput_object",
        *(str(result[k]) for k in ("plain_s", "plain_mb_s", "plain_cpu_s")),
    )
    table.add_row(
        "stage_model", *(str(result[k]) for k in ("staged_s", "staged_mb_s", "staged_cpu_s"))
    )
    table.add_row("re-stage (no-op)", str(result["noop_restage_s"]), "", "")
    Console().print(table)
    low, high = result["ratio_min_max"]
    print(
        f"staging ÷ plain (throughput, median of the rounds): {result['ratio_staged_to_plain']} "
        f"(rounds {low}..{high}; goal >= 0.9)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mb", type=int, default=300, help="the model folder's size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shards", type=int, default=1, help="weights split into N files")
    parser.add_argument("--workers", type=int, default=None, help="files staged at once")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--server-disk", action="store_true", help="let moto spill objects to temporary files"
    )
    options = parser.parse_args(argv)
    from components.rollout.copying import WORKERS
    from components.settings import Settings
    from components.storage.s3 import minio_client
    from testing.s3_server import s3_server_process

    options.workers = options.workers or WORKERS
    with tempfile.TemporaryDirectory(prefix="llmw-bench-staging-") as tmp:
        folder = Path(tmp) / "model"
        files = build_model(folder, options.total_mb, options.shards)
        total = sum(p.stat().st_size for p in files)
        os.sync()  # the model's own bytes on disk before anything is timed
        with s3_server_process(in_memory=not options.server_disk) as server:
            settings = Settings(
                s3_endpoint=server["endpoint"],
                s3_access_key=server["access_key"],
                s3_secret_key=server["secret_key"],
                s3_region=server["region"],
                s3_secure=False,
                model_store_uri=f"s3://{BUCKET}/store",
            )
            minio_client(settings).make_bucket(BUCKET)
            options.server_pid = int(server["pid"])
            measured = rounds(folder, files, settings, options)
    result = summarize(measured, total)
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
