"""An exported embedding model's manifest (``llmw-embedding.json``): what it was made from,
how, the checksums of its files and the quality gate's figures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST_NAME = "llmw-embedding.json"
FORMAT = 1
Backend = Literal["onnx", "openvino"]
Precision = Literal["fp32", "bf16", "int8"]


class ManifestError(ValueError):
    """A folder whose manifest or files can't be used; the message names the file."""


class Quantization(BaseModel):
    """How int8 was made: dynamic (activation ranges at run time) or static (calibrated)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["dynamic", "static"]
    per_channel: bool = True
    exclusions: list[str] = Field(default_factory=list)  # what was asked to stay fp32
    excluded_nodes: int = 0  # how many graph nodes that kept in fp32
    calibration: str | None = None  # the source calibrated on (static)
    calibration_chunks: int = 0


class Quality(BaseModel):
    """The gate's figures, fp32 and the export side by side."""

    model_config = ConfigDict(extra="forbid")

    gate_set: str
    queries: int
    chunks: int
    passed: bool
    table: list[list[str]]  # header first: metric, fp32, export, change, limit, ok
    figures: dict[str, float]  # recall_at_5, mrr_at_10 (both sides), mean/min cosine


class ExportManifest(BaseModel):
    """Everything a loader needs, and what a reader of the folder wants to know."""

    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    source_model: str = Field(min_length=1)  # the name embedders report: same vector space
    source_digest: str
    backend: Backend
    precision: Precision
    quantization: Quantization | None = None
    dimension: int = Field(gt=0)
    max_seq_length: int = Field(gt=0)
    do_lower_case: bool = False
    inputs: list[str]
    model_file: str
    files: dict[str, str]  # file name -> sha256
    checksum: str  # sha256 over the files' names and digests
    quality: Quality
    created: str
    llmw_version: str


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def checksum(files: dict[str, str]) -> str:
    """One digest for the set of files (their names and digests, sorted)."""
    text = "\n".join(f"{name}:{digest}" for name, digest in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file in ``folder`` but the manifest (flat: exports have no subfolders)."""
    return {
        p.name: sha256_file(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST_NAME
    }


def is_export(folder: str | Path) -> bool:
    """Whether ``folder`` holds an exported model (it has a manifest)."""
    return (Path(folder) / MANIFEST_NAME).is_file()


def read_manifest(folder: Path, verify: bool = True) -> ExportManifest:
    """The folder's manifest; with ``verify``, every file must be there with its digest."""
    path = folder / MANIFEST_NAME
    try:
        manifest = ExportManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise ManifestError(f"{path}: not a usable export manifest ({reason})") from None
    if verify:
        for name, digest in manifest.files.items():
            file = folder / name
            if not file.is_file():
                raise ManifestError(f"{file}: missing (the manifest lists it)")
            if sha256_file(file) != digest:
                raise ManifestError(f"{file}: checksum differs from the manifest's")
    return manifest


def write_manifest(folder: Path, manifest: ExportManifest) -> None:
    """Write the manifest into ``folder`` (last, so a folder with one is complete)."""
    data: dict[str, Any] = manifest.model_dump()
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
