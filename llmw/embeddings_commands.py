"""`llmw embeddings export|default`: thin wrappers over components.embedding_export."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmw.progress import fail

if TYPE_CHECKING:
    from components.embedding_export.export import ExportRequest
    from components.ingest.retrieval_eval import GateResult
    from components.settings import Settings

EXIT_REFUSED = 3  # the quality gate refused the export (the table says why)

embeddings_app = typer.Typer(
    help="Embedding models exported to ONNX Runtime or OpenVINO, quantized where the quality "
    "gate allows.",
    no_args_is_help=True,
)

ModelArgument = Annotated[str, typer.Argument(help="A model name or sentence-transformers folder.")]
BackendOption = Annotated[
    str, typer.Option("--backend", help="onnx or openvino.", show_default=True)
]
QuantizeOption = Annotated[
    str,
    typer.Option(
        "--quantize",
        help="none (fp32), int8 (dynamic; static with --calibration, always static on "
        "openvino) or bf16 (openvino: bfloat16 where the CPU has it).",
    ),
]
CalibrationOption = Annotated[
    str | None,
    typer.Option(
        "--calibration",
        help="A folder, file or s3:// source whose chunks calibrate static int8 "
        "[default: the shipped gate set's chunks, for openvino int8]",
    ),
]
ChunksOption = Annotated[
    int, typer.Option("--calibration-chunks", min=8, max=2048, help="Chunks to calibrate on.")
]
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        help="Keep nodes in fp32 (repeatable): attention, embeddings, last, layer.N, or a "
        "node-name substring [default: attention for static int8, none for dynamic]",
    ),
]
OutOption = Annotated[
    str | None,
    typer.Option(
        "--out",
        help="A folder or s3://bucket/prefix "
        "[default: LLMW_EMBEDDING_CACHE_DIR/exports/<model>-<backend>-<precision>]",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def export_command(
    model: ModelArgument = "all-MiniLM-L6-v2",
    backend: BackendOption = "onnx",
    quantize: QuantizeOption = "int8",
    calibration: CalibrationOption = None,
    calibration_chunks: ChunksOption = 64,
    exclude: ExcludeOption = None,
    out: OutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export MODEL once, offline, for ingestion and the serve apps to load by path
    (LLMW_EMBEDDING_MODEL=<folder or s3://…>): the graph, its tokenizer and a manifest
    (llmw-embedding.json: source model, backend, precision, checksums, quality figures).

    Every export passes the quality gate first: recall@5 and MRR@10 on a labelled set (the
    shipped one), with mean cosine to fp32, side by side with torch fp32. One that loses more
    than LLMW_EMBEDDING_GATE_MAX_RECALL_DROP (or ..._MRR_DROP; 0.01 each) is refused with the
    table and nothing is written (exit 3). Exit 2: bad input.
    """
    from components.embedding_export.export import ExportRequest, check_supported
    from components.settings import get_settings

    precision = {"none": "fp32", "int8": "int8", "bf16": "bf16"}.get(quantize)
    if precision is None or backend not in ("onnx", "openvino"):
        raise fail(f"use --backend onnx|openvino and --quantize none|int8|bf16, not {quantize}")
    try:
        check_supported(backend, precision)
    except ValueError as exc:
        raise fail(str(exc)) from None
    settings = get_settings()
    request = ExportRequest(
        model=model,
        backend=backend,  # type: ignore[arg-type]
        precision=precision,  # type: ignore[arg-type]
        calibration=calibration,
        calibration_chunks=calibration_chunks,
        exclude=tuple(exclude) if exclude else None,
    )
    default = Path(settings.embedding_cache_dir) / "exports" / _name(model, request.label)
    _export(request, out or str(default), settings, as_json)


def _export(request: ExportRequest, target: str, settings: Settings, as_json: bool) -> None:
    """Build in a staging folder beside a local target (the final move is a rename), gate,
    publish; a refusal prints the table and exits 3 with nothing written."""
    import shutil

    from components.embedding_export.export import GateRefusedError, build_export, publish

    staging = Path(tempfile.mkdtemp(prefix=".llmw-export-", dir=_staging_dir(target)))
    try:
        try:
            outcome = build_export(request, staging / "model", settings)
        except GateRefusedError as exc:
            _report(exc.result, None, as_json)
            raise fail(str(exc), EXIT_REFUSED) from None
        where = publish(outcome, target, settings)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _report(outcome.gate, where, as_json, outcome.manifest.model_dump())


def default_command(
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Export and gate the candidates again.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The packaged model's default backend and precision: the fastest that passes the
    quality gate on the shipped labelled set (OpenVINO bf16, ONNX int8, OpenVINO fp32, ONNX
    fp32, in that order), exported once and cached under LLMW_EMBEDDING_CACHE_DIR; torch fp32
    when none passes. `make demo` runs it; ingestion does the same on first use."""
    from components.embedding_export.resolve import default_choice
    from components.settings import get_settings

    folder, record = default_choice(get_settings(), refresh)
    manifest = json.loads((Path(folder) / "llmw-embedding.json").read_text()) if folder else {}
    chosen = f"{manifest['backend']} {manifest['precision']}" if folder else "torch fp32"
    if as_json:
        typer.echo(json.dumps({**record, "choice": chosen, "folder": folder or None}))
        return
    typer.echo(f"default embedding runtime: {chosen}" + (f" ({folder})" if folder else ""))
    for line in record.get("refused", []):
        typer.echo(f"  refused: {line}")
    for row in manifest.get("quality", {}).get("table", []):
        typer.echo("  " + " | ".join(row))


def _name(model: str, label: str) -> str:
    import re

    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model.strip("/").split("/")[-1])
    return f"{slug}-{label.replace(' ', '-')}"


def _staging_dir(target: str) -> str | None:
    """Build beside a local target (so the final move is a rename); S3: the temp folder."""
    if target.startswith("s3://"):
        return None
    parent = Path(target).absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    return str(parent)


def _report(
    result: GateResult, where: str | None, as_json: bool, manifest: dict[str, object] | None = None
) -> None:
    if as_json:
        body = {"exported": where, "gate": result.to_json(), "manifest": manifest}
        typer.echo(json.dumps(body))
        return
    typer.echo(result.markdown(), nl=False)
    if where:
        typer.echo(f"exported to {where}")
