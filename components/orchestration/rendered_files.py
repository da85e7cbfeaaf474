"""Writing rendered documents (compiled pipelines, workflow templates) into a folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_rendered(texts: Mapping[str, str], out_dir: Path, suffix: str) -> list[Path]:
    """Write each ``name -> text`` as ``<out_dir>/<name><suffix>``; the paths, in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        path = out_dir / f"{name}{suffix}"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
