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

    def _session(self, device: str | None) -> Runner:
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
        # Each batch is cut in as many parts as the runtime runs at once (OpenVINO's streams).
        size = max(1, self.batch_size // self._run.parallel)
        parts = [order[start : start + size] for start in range(0, len(order), size)]
        outputs = self._run([self.encoder.feeds([texts[i] for i in rows]) for rows in parts])
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for rows, output in zip(parts, outputs, strict=True):
            vectors[rows] = output
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms == 0, 1.0, norms)  # int8 drifts off unit length a little
        result: list[list[float]] = vectors.tolist()
        del vectors, outputs
        release_freed_memory()
        return result


class Runner:
    """Runs the model on a list of input batches; ``parallel`` of them at once."""

    def __init__(self, run: Callable[[list[dict[str, Any]]], list[Any]], parallel: int) -> None:
        self.run = run
        self.parallel = max(1, parallel)

    def __call__(self, feeds: list[dict[str, Any]]) -> list[Any]:
        return self.run(feeds)


def _onnxruntime(model: str) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return Runner(lambda feeds: [session.run(None, feed)[0] for feed in feeds], 1)


def _openvino(model: str, device: str | None, hint: str) -> Runner:
    import threading

    import openvino as ov

    core = ov.Core()
    asked = (device or "").upper()
    # No device, or the Intel GPU's torch name: its GPU when OpenVINO sees one, else the CPU.
    wants_gpu = asked in ("", "GPU", "XPU", "AUTO") or asked.startswith("GPU.")
    target = "GPU" if wants_gpu and "GPU" in core.available_devices else "CPU"
    # THROUGHPUT: one stream per core or so, each batch split across them (measured on 2
    # cores: 65 chunks/s against 52 with one latency-bound stream).
    config: dict[str, str] = {"PERFORMANCE_HINT": "THROUGHPUT"}
    if target == "CPU":
        config["INFERENCE_PRECISION_HINT"] = hint
    elif hint == "f32":  # the GPU plugin computes in f16 unless told otherwise
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = core.compile_model(core.read_model(model), target, config)
    parallel = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, parallel)
    results: dict[int, Any] = {}
    queue.set_callback(lambda request, index: results.__setitem__(index, _first(request)))

    lock = threading.Lock()  # one caller's batches at a time (a serve app's threads share it)

    def run(feeds: list[dict[str, Any]]) -> list[Any]:
        with lock:
            results.clear()
            for index, feed in enumerate(feeds):
                queue.start_async(feed, index)
            queue.wait_all()
            return [results.pop(index) for index in range(len(feeds))]

    return Runner(run, parallel)


def _first(request: Any) -> Any:
    return request.get_output_tensor(0).data.copy()
