"""Embedding with an exported model: the fast tokenizer, then ONNX Runtime or OpenVINO, with
no torch in the process. Texts are sorted by length into batches (as sentence-transformers
does) so that padding stays short, and the vectors come back in the callers' order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from components.embedding_export.manifest import ExportManifest, read_manifest
from components.embedding_export.onnx_export import pad_token

# OpenVINO's CPU plugin runs bf16 by default where the CPU has it: each precision says which.
OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


class TextEncoder:
    """The exported model's tokenizer: texts to its input arrays, padded to the batch's
    longest and truncated at the model's maximum sequence length."""

    def __init__(
        self,
        folder: Path,
        max_seq_length: int,
        do_lower_case: bool,
        inputs: Sequence[str],
    ) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_seq_length)
        pad = pad_token(folder)
        pad_id = self.tokenizer.token_to_id(pad)
        self.tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token=pad)
        self.do_lower_case = do_lower_case
        self.inputs = tuple(inputs)

    def feeds(self, texts: Sequence[str]) -> dict[str, Any]:
        """The model's inputs for one batch of texts."""
        import numpy as np

        if self.do_lower_case:
            texts = [text.lower() for text in texts]
        encoded = self.tokenizer.encode_batch(list(texts))
        columns = {
            "input_ids": [e.ids for e in encoded],
            "attention_mask": [e.attention_mask for e in encoded],
            "token_type_ids": [e.type_ids for e in encoded],
        }
        return {name: np.asarray(columns[name], dtype=np.int64) for name in self.inputs}


class ExportedEmbedder:
    """An exported model folder (``llmw embeddings export``) behind the Embedder protocol."""

    def __init__(
        self,
        folder: str | Path,
        device: str | None = None,
        batch_size: int = 64,
        manifest: ExportManifest | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.manifest: ExportManifest = manifest or read_manifest(self.folder)
        self.name = self.manifest.source_model
        self.dimension = self.manifest.dimension
        self.batch_size = batch_size
        self.backend: str = self.manifest.backend
        self.precision: str = self.manifest.precision
        m = self.manifest
        self.encoder = TextEncoder(self.folder, m.max_seq_length, m.do_lower_case, m.inputs)
        self._run = self._session(device)

    def _session(self, device: str | None) -> Callable[[dict[str, Any]], Any]:
        model = str(self.folder / self.manifest.model_file)
        if self.backend == "onnx":
            return _onnxruntime(model)
        return _openvino(model, device, OPENVINO_HINTS[self.precision])

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np

        from components.ingest.embedders import release_freed_memory

        if not texts:
            return []
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors[rows] = self._run(self.encoder.feeds([texts[i] for i in rows]))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms == 0, 1.0, norms)  # int8 drifts off unit length a little
        result: list[list[float]] = vectors.tolist()
        del vectors
        release_freed_memory()
        return result


def _onnxruntime(model: str) -> Callable[[dict[str, Any]], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def _openvino(model: str, device: str | None, hint: str) -> Callable[[dict[str, Any]], Any]:
    import openvino as ov

    core = ov.Core()
    asked = (device or "").upper()
    # No device, or the Intel GPU's torch name: its GPU when OpenVINO sees one, else the CPU.
    wants_gpu = asked in ("", "GPU", "XPU", "AUTO") or asked.startswith("GPU.")
    target = "GPU" if wants_gpu and "GPU" in core.available_devices else "CPU"
    if target == "CPU":
        config = {"INFERENCE_PRECISION_HINT": hint}
    else:  # the GPU plugin computes in f16 unless told otherwise
        config = {"INFERENCE_PRECISION_HINT": "f32"} if hint == "f32" else {}
    compiled = core.compile_model(core.read_model(model), target, config)
    request = compiled.create_infer_request()
    output = compiled.output(0)
    return lambda feeds: request.infer(feeds)[output].copy()
