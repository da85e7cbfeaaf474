"""What the serving applications share: their ``args``, the model's local folder, replies."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from components.rollout.ray_local import VERSION_HEADER

# Every reply names the version that produced it (VERSION_HEADER), so a caller (the rollout,
# a benchmark) can tell the old model from the new one while a replacement is under way.


class ModelArgs(BaseModel):
    """The serve config's ``args`` of an application (components/rollout/application.py)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)  # a model-store folder, an s3:// prefix, or a model name
    served_model_name: str = Field(min_length=1)
    model_version: str | None = None
    model_digest: str | None = None
    engine: str = "auto"  # llm only: auto, transformers or vllm


def parse_args(args: dict[str, Any] | None) -> ModelArgs:
    """The builder's ``args``; a ValueError that names the field when one is wrong."""
    return ModelArgs.model_validate(args or {})


def model_folder(uri: str) -> str:
    """A local path for ``uri``: a folder as it is, an ``s3://`` prefix downloaded (once per
    digest of its name) under the temporary folder, a model name (the packaged MiniLM's short
    names, a Hugging Face id in the local cache) as it is."""
    from components.offline import configure_offline
    from components.storage.objects import is_s3

    configure_offline()
    if is_s3(uri):
        return str(_download(uri))
    from components.ingest.embedders import resolve_model_path

    return resolve_model_path(uri.rstrip("/") if Path(uri).is_dir() else uri)


def _download(uri: str) -> Path:
    from components.settings import get_settings
    from components.storage.s3 import minio_client, parse_s3_uri

    settings = get_settings()
    bucket, prefix = parse_s3_uri(uri.rstrip("/") + "/")
    target = Path(tempfile.gettempdir()) / "llmw-models" / hashlib.sha256(uri.encode()).hexdigest()
    if (target / ".complete").exists():
        return target
    client = minio_client(settings)
    for item in client.list_objects(bucket, prefix=prefix, recursive=True):
        name = str(item.object_name)
        client.fget_object(bucket, name, str(target / name[len(prefix) :]))
    if not target.is_dir():
        raise FileNotFoundError(f"{uri}: no objects under this prefix")
    (target / ".complete").touch()
    return target


def models_reply(args: ModelArgs) -> dict[str, Any]:
    """``GET /v1/models``: the one model this application serves."""
    return {
        "object": "list",
        "data": [
            {
                "id": args.served_model_name,
                "object": "model",
                "owned_by": "llmw",
                "root": args.model,
                "version": args.model_version,
            }
        ],
    }


def headers(args: ModelArgs) -> dict[str, str]:
    return {VERSION_HEADER: args.model_version or ""}


def refuse(name: str, why: str) -> None:
    """Raise the error a builder gives for an application this project does not serve."""
    raise NotImplementedError(f"serving.{name}: {why}")
