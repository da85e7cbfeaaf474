"""Run a whole registered pipeline on this machine with ``kfp.local``.

kfp.local (2.17) runs the real DAG: ``dsl.ParallelFor`` (honouring its parallelism),
``dsl.Collected``, retries with backoff, artifacts and the pipeline's outputs.
``SubprocessRunner(use_venv=False)`` runs each component in a subprocess of this interpreter,
where ``components`` is importable. The pipeline is built ``for_cluster=False``: kfp.local would
ignore its Kubernetes platform config (secrets, node selector, tolerations, accelerators)
anyway, and the in-cluster environment (the Milvus server URI, GPU variables) must not replace
the user's settings here.

The settings reach the subprocesses as ``LLMW_*`` environment variables: during the run, the
environment holds exactly the given settings (so values passed to ``Settings(...)`` in code or
read from ``LLMW_CONFIG_FILE`` apply in the components too), and is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kfp import local
from kfp.local import config as local_config

from components.settings import Settings, settings_env
from pipelines.registry import get_pipeline, normalize_result, pipeline_arguments

DEFAULT_PIPELINE_ROOT = Path(".llmw/kfp-local")
ENV_PREFIX = "LLMW_"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours task names in its messages


class LocalRunError(RuntimeError):
    """A local pipeline run that failed; the message names the task that failed."""


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Replace every ``LLMW_*`` variable with ``values`` for the duration (the config file too:
    the values already include what it said)."""
    saved = {key: value for key, value in os.environ.items() if key.startswith(ENV_PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[key]
        os.environ.update(saved)


def run_local(
    name: str,
    params: dict[str, Any],
    settings: Settings | None = None,
    pipeline_root: Path | None = None,
) -> dict[str, Any]:
    """Run pipeline ``name`` with ``params`` through kfp.local; returns its final report.

    ``params`` are checked against the job's model first (ParameterError, UnknownPipelineError).
    Task outputs and artifacts (the Metrics and Markdown summary) are kept under
    ``pipeline_root`` (default ``.llmw/kfp-local``). Raises LocalRunError when a task fails
    after its retries. Without ``settings`` the inherited environment is used as it is.
    """
    arguments = pipeline_arguments(name, params)
    pipeline = get_pipeline(name, settings, for_cluster=False)
    root = (pipeline_root or DEFAULT_PIPELINE_ROOT).resolve()
    root.mkdir(parents=True, exist_ok=True)
    env = settings_env(settings) if settings is not None else None
    previous = local_config.LocalExecutionConfig.instance
    with (
        # kfp.local deletes the workspace itself at the end of the run.
        tempfile.TemporaryDirectory(
            prefix="llmw-kfp-workspace-", ignore_cleanup_errors=True
        ) as workspace,
        _environment(env) if env is not None else contextlib.nullcontext(),
        warnings.catch_warnings(),
    ):
        # The component image is not a python image, which the runner warns about; here the
        # components run in this interpreter, where the project is installed.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        # Display names are for the Kubeflow UI; kfp.local says it ignores them.
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner")
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            workspace_root=workspace,
            raise_on_error=True,
        )
        try:
            task = pipeline(**arguments)
        except RuntimeError as exc:
            raise LocalRunError(f"{name}: {ANSI.sub('', str(exc))}") from exc
        finally:
            local_config.LocalExecutionConfig.instance = previous
    result = normalize_result(name, task.output)
    if not isinstance(result, dict):
        raise LocalRunError(f"{name}: expected a report mapping, got {type(result).__name__}")
    return result
