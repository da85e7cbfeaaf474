"""A sentence-transformers model to one ONNX graph: token ids in, unit-length sentence
embeddings out (the transformer, the model's own pooling and normalization, traced together).

Hand-written on purpose: sentence-transformers' ``backend="onnx"`` exports through
optimum-onnx, whose only release (0.1.0) needs transformers < 4.58 and fails to import on the
transformers 5 that sentence-transformers 6 requires (``get_parameter_dtype`` is gone), so
the library route can't be installed beside this project's stack.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "model.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
# What the runtime needs beside the graph: the fast tokenizer and its settings.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class TracedModel:
    """What the export learned about the model while tracing it."""

    path: Path
    dimension: int
    max_seq_length: int
    do_lower_case: bool
    inputs: tuple[str, ...]


def export_onnx(source: str, folder: Path) -> TracedModel:
    """Trace the model at ``source`` (a local sentence-transformers folder) into
    ``folder/model.onnx`` in fp32, and copy its tokenizer beside it."""
    import torch
    from sentence_transformers import SentenceTransformer

    from components.offline import configure_offline

    configure_offline()
    model = SentenceTransformer(source, device="cpu", local_files_only=True).eval()
    _check_tokenizer(Path(source))
    prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in ST 6
    features = prepare(["an example sentence", "a second, somewhat longer sentence"])
    inputs = tuple(name for name in INPUT_NAMES if name in features)
    wrapper = _wrap(model, inputs).eval()
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_FILE
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python branches it fixed
        torch.onnx.export(
            wrapper,
            tuple(features[name] for name in inputs),
            str(target),
            input_names=list(inputs),
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript
        )
    copy_tokenizer(Path(source), folder)
    dimension = model.get_embedding_dimension()
    return TracedModel(
        path=target,
        dimension=int(dimension or 0),
        max_seq_length=int(model.max_seq_length or 512),
        do_lower_case=bool(getattr(model[0], "do_lower_case", False)),
        inputs=inputs,
    )


def _check_tokenizer(source: Path) -> None:
    if not (source / "tokenizer.json").is_file():
        raise ValueError(
            f"{source} has no tokenizer.json (a fast tokenizer): the exported model's runtime "
            "tokenizes with it"
        )


def copy_tokenizer(source: Path, folder: Path) -> None:
    """The tokenizer files the runtime reads, copied from the model folder."""
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)


def pad_token(folder: Path) -> str:
    """The tokenizer's padding token (tokenizer_config.json), ``[PAD]`` when it names none."""
    config = folder / "tokenizer_config.json"
    data: dict[str, Any] = json.loads(config.read_text()) if config.is_file() else {}
    token = data.get("pad_token") or "[PAD]"
    return str(token.get("content", "[PAD]") if isinstance(token, dict) else token)


def _wrap(model: Any, inputs: tuple[str, ...]) -> Any:
    """The model's forward over positional tensors (what torch.onnx.export traces)."""
    import torch

    class Embedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            features = dict(zip(inputs, tensors, strict=True))
            return self.model(features)["sentence_embedding"]

    return Embedding()
