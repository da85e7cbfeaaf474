"""Each compiled pipeline uploaded once per content: a KFP pipeline per job, a version per hash.

A submission compiles the pipeline, names its version by the sha256 of the compiled YAML
(``content_version``), and runs that version: the first submission of a content uploads it
(``upload_pipeline`` for a new pipeline, ``upload_pipeline_version`` for a new version), every
later one reuses it, so the Kubeflow UI lists one version per content with the runs of each.
Two submitters racing to upload the same content meet KFP's unique names (HTTP 409): the loser
looks the winner's upload up and uses it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import kfp
from pydantic import BaseModel

from components.ids import sha256_hex
from components.orchestration.runs import SubmitError
from components.registry import get_job
from components.settings import Settings
from pipelines.compiler import SUFFIX
from pipelines.kfp_client import api_call, quiet

VERSION_HASH_CHARS = 16
CONFLICT = 409


class PipelineVersion(BaseModel):
    """An uploaded pipeline version: its pipeline, its id and its name (the content hash)."""

    pipeline_id: str
    version_id: str
    name: str


def content_version(text: str) -> str:
    """The version name of a compiled pipeline: the start of the sha256 of its YAML."""
    return sha256_hex(text)[:VERSION_HASH_CHARS]


def _by_name(name: str) -> str:
    """A list filter: display_name equals ``name`` (as kfp.Client's own look-ups send it)."""
    predicate = {"operation": "EQUALS", "key": "display_name", "stringValue": name}
    return json.dumps({"predicates": [predicate]})


def _namespace(settings: Settings) -> str | None:
    """Where pipelines live: shared (None) in single-user KFP, whose namespace is "kubeflow"."""
    return None if settings.kfp_namespace == "kubeflow" else settings.kfp_namespace


def find_pipeline(client: kfp.Client, name: str, settings: Settings) -> str | None:
    """The id of the pipeline called ``name``, if there is one."""
    with api_call(f"looking up pipeline {name!r}", settings):
        found = quiet(
            lambda: client.list_pipelines(
                filter=_by_name(name), page_size=1, namespace=_namespace(settings)
            )
        )
    pipelines = found.pipelines or []
    return str(pipelines[0].pipeline_id) if pipelines else None


def find_version(
    client: kfp.Client, pipeline_id: str, version: str, settings: Settings
) -> PipelineVersion | None:
    """The version of pipeline ``pipeline_id`` called ``version``, if there is one."""
    with api_call(f"looking up pipeline version {version!r}", settings):
        found = quiet(
            lambda: client.list_pipeline_versions(
                pipeline_id, filter=_by_name(version), page_size=1
            )
        )
    versions = found.pipeline_versions or []
    if not versions:
        return None
    return PipelineVersion(
        pipeline_id=pipeline_id, version_id=str(versions[0].pipeline_version_id), name=version
    )


def ensure_version(client: kfp.Client, name: str, text: str, settings: Settings) -> PipelineVersion:
    """The version of pipeline ``name`` holding the compiled ``text``: found, or uploaded (and
    the pipeline created) when this content is new. SubmitError when the API refuses."""
    version = content_version(text)
    pipeline_id = find_pipeline(client, name, settings)
    if pipeline_id is not None:
        found = find_version(client, pipeline_id, version, settings)
        if found is not None:
            return found
    with tempfile.TemporaryDirectory(prefix="llmw-upload-") as tmp:
        package = Path(tmp) / f"{name}{SUFFIX}"
        package.write_text(text, encoding="utf-8")
        if pipeline_id is None:
            pipeline_id = _create_pipeline(client, name, str(package), settings)
        return _upload_version(client, pipeline_id, version, str(package), settings)


def _create_pipeline(client: kfp.Client, name: str, package: str, settings: Settings) -> str:
    """Create pipeline ``name`` (with KFP's own first version, named like the pipeline); on a
    conflict, the one a concurrent submitter created."""
    try:
        with api_call(f"uploading pipeline {name!r}", settings):
            created = quiet(
                lambda: client.upload_pipeline(
                    package,
                    pipeline_name=name,
                    description=get_job(name).description,
                    namespace=_namespace(settings),
                )
            )
        return str(created.pipeline_id)
    except SubmitError as exc:
        found = find_pipeline(client, name, settings) if exc.status == CONFLICT else None
        if found is None:
            raise
        return found


def _upload_version(
    client: kfp.Client, pipeline_id: str, version: str, package: str, settings: Settings
) -> PipelineVersion:
    """Upload ``package`` as version ``version``; on a conflict, the concurrent upload's."""
    try:
        with api_call(f"uploading pipeline version {version!r}", settings):
            uploaded = quiet(
                lambda: client.upload_pipeline_version(
                    package,
                    pipeline_version_name=version,
                    pipeline_id=pipeline_id,
                    description=f"content sha256 {version}…",
                )
            )
    except SubmitError as exc:
        found = (
            find_version(client, pipeline_id, version, settings) if exc.status == CONFLICT else None
        )
        if found is None:
            raise
        return found
    return PipelineVersion(
        pipeline_id=pipeline_id, version_id=str(uploaded.pipeline_version_id), name=version
    )
