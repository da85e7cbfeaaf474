"""A YAML data file users can replace (the GPU inventory, the serving catalog), read into its
pydantic model, every failure an error that names the file and the field."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)
Where = Callable[[Sequence[Any], Any], str]


def dotted(loc: Sequence[Any], data: Any) -> str:
    """A field's location as ``a.b.0.c`` (``(top level)`` for the document itself)."""
    return ".".join(str(part) for part in loc) or "(top level)"


def load_yaml_model(
    path: Path,
    model: type[Model],
    what: str,
    error: type[Exception],
    where: Where = dotted,
) -> Model:
    """``path`` parsed and validated as ``model``; else ``error`` naming ``what`` and the file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{where(e['loc'], data)}: {e['msg']}" for e in exc.errors())
        raise error(f"{what} {path} is invalid: {problems}") from None
