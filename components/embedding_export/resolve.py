"""Which local embedder the settings mean: torch, an exported folder, an ``s3://`` export, or
an export made once and cached (``embedding_cache_dir``) for a backend and precision.

``embedding_backend=auto`` gives the packaged model its gated default: the first of
DEFAULT_ORDER (fastest first, as bench/ingest.py measured them) whose export passes the
quality gate on the shipped set, exported on first use (or by ``llmw embeddings default``)
and cached; torch fp32 when none passes. Any other model runs on torch unless a backend is
named. The choice is recorded, so later processes load it without gating again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.embedding_export.export import (
    SUPPORTED,
    ExportRequest,
    GateRefusedError,
    build_export,
    check_supported,
    note,
    replace_folder,
)
from components.embedding_export.manifest import Backend, Precision, is_export

if TYPE_CHECKING:
    from components.ingest.embedders import Embedder
    from components.settings import Settings

# Fastest first on the CPUs measured (README, bench/ingest.py): the default's candidates.
DEFAULT_ORDER: tuple[tuple[Backend, Precision], ...] = (
    ("openvino", "bf16"),
    ("onnx", "int8"),
    ("openvino", "fp32"),
    ("onnx", "fp32"),
)
RECIPE = 1  # bump when the export recipe changes: cached exports are made again


def local_embedder(settings: Settings) -> Embedder:
    """The local embedder for ``settings.embedding_model`` as backend and precision say."""
    from components.ingest.embedders import SentenceTransformerEmbedder, resolve_model_path
    from components.settings import DEFAULT_EMBEDDING_MODEL

    model = settings.embedding_model
    backend, precision = settings.embedding_backend, settings.embedding_precision
    if model.startswith("s3://"):
        return _exported(download_export(model, settings), settings)
    path = resolve_model_path(model)
    if is_export(path):
        return _exported(Path(path), settings)
    packaged = path != model or model == DEFAULT_EMBEDDING_MODEL
    if backend == "torch" or (backend == "auto" and not packaged):
        if precision not in ("auto", "fp32"):
            raise ValueError(f"the torch backend runs fp32 only, not {precision}")
        return SentenceTransformerEmbedder(
            model, device=settings.embedding_device, batch_size=settings.embedding_batch_size
        )
    return cached_embedder(model, Path(path), candidates(backend, precision), settings)


def default_choice(settings: Settings, refresh: bool = False) -> tuple[str, dict[str, Any]]:
    """The packaged model's gated default (exported and gated now if not yet, or again with
    ``refresh``): its folder (empty for torch) and the choice record."""
    from components.ingest.embedders import resolve_model_path
    from components.settings import DEFAULT_EMBEDDING_MODEL

    model = DEFAULT_EMBEDDING_MODEL
    source = Path(resolve_model_path(model))
    folder = Path(settings.embedding_cache_dir) / cache_key(model, source)
    pairs = candidates("auto", "auto")
    record = folder / f"choice-{_pairs_name(pairs)}.json"
    if refresh:  # gate every candidate again: drop the record and the exports it chose from
        record.unlink(missing_ok=True)
        for backend, precision in pairs:
            shutil.rmtree(folder / f"{backend}-{precision}", ignore_errors=True)
    auto = settings.model_copy(update={"embedding_backend": "auto"})
    choice = _choose(model, cache_key(model, source), folder, pairs, auto)
    data: dict[str, Any] = json.loads(record.read_text())
    return ("" if choice is None else str(folder / choice)), data


def candidates(backend: str, precision: str) -> list[tuple[Backend, Precision]]:
    """The exports to try, in order, for a backend and precision (either may be auto)."""
    if backend != "auto" and precision != "auto":
        check_supported(backend, precision)
    # Static int8 (OpenVINO's) is tried only when int8 is asked for: it needs calibration.
    order = DEFAULT_ORDER if precision == "auto" else SUPPORTED
    return [(b, p) for b, p in order if backend in ("auto", b) and precision in ("auto", p)]


def _exported(folder: Path, settings: Settings) -> Embedder:
    """An exported folder runs as its manifest says, whatever embedding_backend names (the
    placement's per-stack backend is for models that are not exports)."""
    from components.embedding_export.runtime import ExportedEmbedder

    return ExportedEmbedder(
        folder, device=settings.embedding_device, batch_size=settings.embedding_batch_size
    )


def cached_embedder(
    model: str,
    source: Path,
    pairs: Sequence[tuple[Backend, Precision]],
    settings: Settings,
) -> Embedder:
    """The first of ``pairs`` whose export passes the gate (made once, then cached); torch
    fp32 when none does and the backend was auto, else the gate's refusal."""
    from components.ingest.embedders import SentenceTransformerEmbedder

    key = cache_key(model, source)
    folder = Path(settings.embedding_cache_dir) / key
    choice = _choose(model, key, folder, pairs, settings)
    if choice is None:
        return SentenceTransformerEmbedder(
            model, device=settings.embedding_device, batch_size=settings.embedding_batch_size
        )
    return _exported(folder / choice, settings)


def _choose(
    model: str,
    key: str,
    folder: Path,
    pairs: Sequence[tuple[Backend, Precision]],
    settings: Settings,
) -> str | None:
    """The cached export's folder name for ``pairs``, exporting and gating once if needed."""
    record = folder / f"choice-{_pairs_name(pairs)}.json"
    known, choice = _read_choice(record, folder)
    if known:
        return choice
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        known, choice = _read_choice(record, folder)  # another process may have made it
        if known:
            return choice
        choice, refusals = _first_passing(model, folder, pairs, settings)
        if choice is None and settings.embedding_backend != "auto":
            raise ValueError("; ".join(refusals))
        tmp = record.with_suffix(".partial")
        tmp.write_text(json.dumps({"choice": choice, "refused": refusals}, indent=2) + "\n")
        os.replace(tmp, record)
        return choice


def _first_passing(
    model: str, folder: Path, pairs: Sequence[tuple[Backend, Precision]], settings: Settings
) -> tuple[str | None, list[str]]:
    from components.ingest.embedders import SentenceTransformerEmbedder

    refusals: list[str] = []
    reference: Embedder | None = None  # torch fp32, loaded once for every candidate's gate
    for backend, precision in pairs:
        name = f"{backend}-{precision}"
        if is_export(folder / name):
            return name, refusals
        note(f"exporting {model} to {backend} {precision} and gating it (once; cached in {folder})")
        request = ExportRequest(model=model, backend=backend, precision=precision)
        building = folder / f".{name}.building-{os.getpid()}"
        reference = reference or SentenceTransformerEmbedder(model, device="cpu")
        try:
            outcome = build_export(request, building, settings, reference=reference)
        except GateRefusedError as exc:
            refusals.append(str(exc))
            note(exc.result.markdown())
            continue
        except ImportError as exc:  # a backend whose runtime isn't installed here
            refusals.append(f"{backend} {precision}: {exc}")
            continue
        replace_folder(outcome.folder, folder / name)
        note(outcome.gate.markdown())
        return name, refusals
    return None, refusals


def _read_choice(record: Path, folder: Path) -> tuple[bool, str | None]:
    """(True, the recorded folder name, or None for torch); (False, None) when nothing is
    recorded yet or the folder it names is gone."""
    try:
        choice = json.loads(record.read_text())["choice"]
    except (OSError, ValueError, KeyError):
        return False, None
    if choice is not None and not is_export(folder / str(choice)):
        return False, None
    return True, None if choice is None else str(choice)


def _pairs_name(pairs: Sequence[tuple[str, str]]) -> str:
    return hashlib.sha256(repr(list(pairs)).encode()).hexdigest()[:12]


def cache_key(model: str, source: Path) -> str:
    """A folder name for one source model's exports: its name, and a digest of its files'
    names, sizes and times (cheap, unlike hashing the weights at every start) and RECIPE."""
    stats = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in source.rglob("*") if p.is_file()
    )
    digest = hashlib.sha256(repr((RECIPE, stats)).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model.strip("/").split("/")[-1])[:60]
    return f"{slug}-{digest}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process exports at a time; the others wait and then find its export."""
    import fcntl

    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def download_export(uri: str, settings: Settings) -> Path:
    """An ``s3://`` export's local copy (under the cache, by its manifest's checksum)."""
    from components.embedding_export.manifest import MANIFEST_NAME, ExportManifest
    from components.storage.objects import read_text
    from components.storage.s3 import minio_client, parse_s3_uri

    prefix = uri.rstrip("/")
    try:
        text = read_text(f"{prefix}/{MANIFEST_NAME}", settings)
    except Exception as exc:
        raise ValueError(f"{uri}: no exported model there ({MANIFEST_NAME} unreadable)") from exc
    manifest = ExportManifest.model_validate_json(text)
    target = Path(settings.embedding_cache_dir) / "downloads" / manifest.checksum[:16]
    if is_export(target):
        return target
    bucket, key = parse_s3_uri(prefix + "/")
    client: Any = minio_client(settings)
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    partial.mkdir(parents=True, exist_ok=True)
    for name in manifest.files:
        client.fget_object(bucket, f"{key}{name}", str(partial / name))
    (partial / MANIFEST_NAME).write_text(text)
    replace_folder(partial, target)
    return target
