"""Second embedding models for tests and benchmarks: real sentence-transformers models saved to a
folder and loaded by path, built offline from the packaged MiniLM.

- ``build_projected_minilm``: MiniLM followed by a fixed random linear projection to 128
  dimensions (a random projection keeps cosine similarities close, so retrieval stays about as
  good: another model, another dimension, a gate it should pass);
- ``build_scrambled_minilm``: MiniLM's architecture with every weight replaced by random values
  (retrieval about as good as chance: a gate it must fail).
"""

from __future__ import annotations

from pathlib import Path


def _minilm() -> object:
    from sentence_transformers import SentenceTransformer

    from components.ingest.embedders import resolve_model_path

    return SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")


def build_projected_minilm(folder: Path, dimension: int = 128) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense

    base = _minilm()
    torch.manual_seed(13)
    projection = Dense(384, dimension, bias=False, activation_function=torch.nn.Identity())
    SentenceTransformer(modules=[*base, projection], device="cpu").save(str(folder))  # type: ignore[misc]
    return folder


def build_scrambled_minilm(folder: Path) -> Path:
    import torch

    model = _minilm()
    torch.manual_seed(7)
    with torch.no_grad():
        for parameter in model[0].auto_model.parameters():  # type: ignore[index]
            parameter.normal_(0.0, 0.5)
    model.save(str(folder))  # type: ignore[attr-defined]
    return folder
