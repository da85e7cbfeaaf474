"""``llmw embeddings export``'s work: trace, quantize or convert, gate against fp32, and
write the folder (or ``s3://`` prefix) with its manifest, only when the gate passes.

backend/precision: onnx fp32; onnx int8 (dynamic, or static with a calibration source);
openvino fp32 or bf16 (the same IR, computed in bfloat16 where the CPU has it); openvino int8
(static: calibrated on the calibration source, else on the gate set's chunks).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from components.embedding_export.gate import (
    GateSet,
    compare,
    figures,
    gate_texts,
    measure,
    measure_reference,
    shipped_gate_set,
)
from components.embedding_export.manifest import (
    Backend,
    ExportManifest,
    Precision,
    Quality,
    Quantization,
    checksum,
    file_digests,
    sha256_file,
    write_manifest,
)
from components.embedding_export.onnx_export import MODEL_FILE, TracedModel, export_onnx
from components.embedding_export.quantize import (
    DEFAULT_STATIC_EXCLUSIONS,
    quantize_dynamic_int8,
    quantize_static_int8,
)

if TYPE_CHECKING:
    from components.ingest.embedders import Embedder
    from components.ingest.retrieval_eval import GateResult
    from components.settings import Settings

OPENVINO_FILE = "openvino_model.xml"
SUPPORTED: tuple[tuple[Backend, Precision], ...] = (
    ("onnx", "fp32"),
    ("onnx", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
)


class GateRefusedError(RuntimeError):
    """The export lost more quality than the thresholds allow; ``result`` is the table."""

    def __init__(self, label: str, result: GateResult) -> None:
        self.result = result
        super().__init__(f"{label} refused by the quality gate: " + "; ".join(result.reasons))


@dataclass(frozen=True)
class ExportRequest:
    """What to export, and how."""

    model: str
    backend: Backend
    precision: Precision
    calibration: str | None = None  # a source (folder, file, s3://) to calibrate static int8
    calibration_chunks: int = 64
    exclude: tuple[str, ...] | None = None  # None: the mode's defaults

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"


@dataclass(frozen=True)
class ExportOutcome:
    """A built export: its folder, manifest and gate table."""

    folder: Path
    manifest: ExportManifest
    gate: GateResult


def check_supported(backend: str, precision: str) -> None:
    """Refuse a backend/precision pair no export makes, naming the ones there are."""
    if (backend, precision) not in SUPPORTED:
        pairs = ", ".join(f"{b} {p}" for b, p in SUPPORTED)
        raise ValueError(f"no {backend} {precision} export (there are: {pairs}; torch is fp32)")


def build_export(
    request: ExportRequest,
    folder: Path,
    settings: Settings,
    gate_set: GateSet | None = None,
    reference: Embedder | None = None,
) -> ExportOutcome:
    """Export into the new folder ``folder``, gate it and write its manifest; on a refusal
    the folder is removed and GateRefusedError carries the table."""
    from components.ingest.embedders import SentenceTransformerEmbedder, resolve_model_path

    check_supported(request.backend, request.precision)
    source = resolve_model_path(request.model)
    if not Path(source).is_dir():
        raise ValueError(f"{request.model}: not a local sentence-transformers model folder")
    gate_set = gate_set or shipped_gate_set()
    folder.mkdir(parents=True)
    try:
        work = folder / ".work"
        traced = export_onnx(source, work)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (work / name).is_file():
                shutil.copyfile(work / name, folder / name)
        quantization, model_file = _finish(request, traced, folder, settings, gate_set)
        shutil.rmtree(work)
        manifest = _manifest(request, traced, Path(source), folder, model_file, quantization)
        reference = reference or SentenceTransformerEmbedder(request.model, device="cpu")
        result = gate(folder, manifest, reference, gate_set, settings)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    manifest.quality = Quality(
        gate_set=gate_set.name,
        queries=len(gate_set.queries),
        chunks=len(gate_set.ids),
        passed=result.passed,
        table=result.table(),
        figures=figures(result),
    )
    if not result.passed:
        shutil.rmtree(folder, ignore_errors=True)
        raise GateRefusedError(request.label, result)
    write_manifest(folder, manifest)
    return ExportOutcome(folder, manifest, result)


def gate(
    folder: Path,
    manifest: ExportManifest,
    reference: Embedder,
    gate_set: GateSet,
    settings: Settings,
) -> GateResult:
    """The export in ``folder`` against ``reference`` (fp32) on ``gate_set``."""
    from components.embedding_export.runtime import ExportedEmbedder

    batch = settings.embedding_batch_size
    candidate = ExportedEmbedder(folder, batch_size=batch, manifest=manifest)
    return compare(
        measure_reference(reference, gate_set),
        measure(candidate, gate_set),
        settings.embedding_gate_max_recall_drop,
        settings.embedding_gate_max_mrr_drop,
        ("fp32 (torch)", f"{manifest.backend} {manifest.precision}"),
    )


def _finish(
    request: ExportRequest,
    traced: TracedModel,
    folder: Path,
    settings: Settings,
    gate_set: GateSet,
) -> tuple[Quantization | None, str]:
    """From the traced fp32 graph to the backend's model file, quantized when asked."""
    onnx_file, quantization = traced.path, None
    if request.precision == "int8":
        static = request.backend == "openvino" or request.calibration is not None
        target = traced.path.with_name("model.int8.onnx")
        if static:
            quantization = _static(request, traced, target, settings, gate_set)
        else:
            exclude = list(request.exclude or ())
            kept = quantize_dynamic_int8(traced.path, target, exclude)
            quantization = Quantization(mode="dynamic", exclusions=exclude, excluded_nodes=kept)
        onnx_file = target
    if request.backend == "onnx":
        shutil.move(onnx_file, folder / MODEL_FILE)
        return quantization, MODEL_FILE
    import openvino as ov

    # The runtime's ONNX frontend reads the graph as ov.convert_model would, without the
    # converter's argument handling.
    model = ov.Core().read_model(str(onnx_file))
    ov.save_model(model, str(folder / OPENVINO_FILE), compress_to_fp16=False)
    return quantization, OPENVINO_FILE


def _static(
    request: ExportRequest,
    traced: TracedModel,
    target: Path,
    settings: Settings,
    gate_set: GateSet,
) -> Quantization:
    from components.embedding_export.calibration import calibration_texts, tokenized

    if request.calibration is not None:
        texts = calibration_texts(request.calibration, settings, request.calibration_chunks)
    else:
        texts = list(gate_texts(gate_set, request.calibration_chunks))
    exclude = list(DEFAULT_STATIC_EXCLUSIONS if request.exclude is None else request.exclude)
    feeds = tokenized(traced.path.parent, traced, texts)
    kept = quantize_static_int8(traced.path, target, feeds, exclude)
    return Quantization(
        mode="static",
        exclusions=exclude,
        excluded_nodes=kept,
        calibration=request.calibration or f"gate set ({gate_set.name})",
        calibration_chunks=len(texts),
    )


def _manifest(
    request: ExportRequest,
    traced: TracedModel,
    source: Path,
    folder: Path,
    model_file: str,
    quantization: Quantization | None,
) -> ExportManifest:
    from importlib.metadata import version

    digests = file_digests(folder)
    weights = sorted(source.glob("*.safetensors")) or sorted(source.glob("*.bin"))
    source_digest = checksum({p.name: sha256_file(p) for p in weights})
    return ExportManifest(
        source_model=request.model,
        source_digest=source_digest,
        backend=request.backend,
        precision=request.precision,
        quantization=quantization,
        dimension=traced.dimension,
        max_seq_length=traced.max_seq_length,
        do_lower_case=traced.do_lower_case,
        inputs=list(traced.inputs),
        model_file=model_file,
        files=digests,
        checksum=checksum(digests),
        quality=Quality(gate_set="", queries=0, chunks=0, passed=False, table=[], figures={}),
        created=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        llmw_version=version("llm-workflows"),
    )


def publish(outcome: ExportOutcome, out: str, settings: Settings) -> str:
    """Put a built export at ``out``: a local folder (replaced whole, by renames) or an
    ``s3://`` prefix (files first, the manifest last: a prefix with one is complete)."""
    from components.embedding_export.manifest import MANIFEST_NAME
    from components.storage.objects import is_s3, upload_file

    if is_s3(out):
        prefix = out.rstrip("/")
        names = [n for n in sorted(os.listdir(outcome.folder)) if n != MANIFEST_NAME]
        for name in [*names, MANIFEST_NAME]:
            upload_file(outcome.folder / name, f"{prefix}/{name}", settings)
        return prefix + "/"
    target = Path(out)
    if target.resolve() == outcome.folder.resolve():
        return str(target)
    replace_folder(outcome.folder, target)
    return str(target)


def replace_folder(built: Path, target: Path) -> None:
    """Move ``built`` to ``target``; an existing export there is replaced, anything else
    there is refused (never deleted)."""
    from components.embedding_export.manifest import is_export

    replaceable = target.is_dir() and (is_export(target) or not any(target.iterdir()))
    if target.exists() and not replaceable:
        raise ValueError(f"{target} exists and is not an exported model: refusing to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    if target.exists():
        os.replace(target, old / "previous")
    os.replace(built, target)
    shutil.rmtree(old, ignore_errors=True)


def note(message: str) -> None:
    """A progress line on stderr (stdout stays for the commands' output)."""
    print(message, file=sys.stderr, flush=True)
