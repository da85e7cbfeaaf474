"""Compile the registered pipelines to KFP IR YAML, and check the IR by parsing it into protos.

The output depends only on the code and the settings (component image, Secret names, inventory):
the same inputs give byte-identical files. Every file is checked before it is written: the
pipeline document must parse strictly (no unknown fields) into ``PipelineSpec`` with its
``deploymentSpec`` into ``PipelineDeploymentConfig``, the platform document (when KFP emits one)
into ``PlatformSpec`` with each Kubernetes executor config into ``KubernetesExecutorConfig``,
and every reference between them must resolve.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from kfp import compiler
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from components.orchestration.rendered_files import write_rendered
from components.settings import Settings
from pipelines.registry import PIPELINES, get_pipeline

SUFFIX = ".kfp.yaml"


class PipelineSpecError(ValueError):
    """Compiled IR that KFP's backend would refuse; the message says where and why."""


def compile_text(name: str, settings: Settings | None = None) -> str:
    """The checked IR YAML of one registered pipeline."""
    pipeline = get_pipeline(name, settings)
    with tempfile.TemporaryDirectory(prefix="llmw-kfp-") as tmp:
        path = Path(tmp) / f"{name}{SUFFIX}"
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(path))
        text = _stable_yaml(path.read_text(encoding="utf-8"))
    check_ir(text, name)
    return text


class _StableDumper(yaml.SafeDumper):
    """PyYAML's string style is process-global state (hera, for one, replaces it on import);
    KFP dumps with the global one. Re-dumping with our own keeps the bytes independent of what
    else the process imported."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_StableDumper.add_representer(str, _represent_str)


def _stable_yaml(text: str) -> str:
    documents = list(yaml.safe_load_all(text))
    dumped: str = yaml.dump_all(
        documents, Dumper=_StableDumper, sort_keys=True, default_flow_style=False, width=1 << 16
    )
    return dumped


def compile_pipeline(name: str, out_dir: Path, settings: Settings | None = None) -> Path:
    """Write ``<out_dir>/<name>.kfp.yaml``; PipelineSpecError (and nothing written) if invalid."""
    return write_rendered({name: compile_text(name, settings)}, out_dir, SUFFIX)[0]


def compile_all(out_dir: Path, settings: Settings | None = None) -> list[Path]:
    """Compile every registered pipeline (sorted by name); returns the files written.

    Every pipeline is compiled and checked first; on any error nothing is written.
    """
    texts = {name: compile_text(name, settings) for name in sorted(PIPELINES)}
    return write_rendered(texts, out_dir, SUFFIX)


def _parse(what: str, data: Any, message: Message) -> None:
    if not isinstance(data, dict):
        raise PipelineSpecError(f"{what}: expected a mapping, got {type(data).__name__}")
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise PipelineSpecError(f"{what}: {exc}") from None


def check_ir(text: str, source: str = "pipeline") -> pipeline_spec_pb2.PipelineSpec:
    """Parse IR YAML strictly into the pipeline-spec protos; PipelineSpecError on any problem."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise PipelineSpecError(f"{source}: not YAML: {exc}") from None
    if not 1 <= len(documents) <= 2:
        raise PipelineSpecError(
            f"{source}: expected a PipelineSpec and at most one PlatformSpec document, "
            f"got {len(documents)} documents"
        )
    spec = pipeline_spec_pb2.PipelineSpec()
    _parse(f"{source}: PipelineSpec", documents[0], spec)
    deployment = pipeline_spec_pb2.PipelineDeploymentConfig()
    _parse(
        f"{source}: PipelineSpec.deploymentSpec",
        documents[0].get("deploymentSpec", {}),
        deployment,
    )
    problems = _dangling_references(spec, deployment)
    if len(documents) == 2:
        platform = pipeline_spec_pb2.PlatformSpec()
        _parse(f"{source}: PlatformSpec", documents[1], platform)
        kubernetes = documents[1].get("platforms", {}).get("kubernetes", {})
        executors = kubernetes.get("deploymentSpec", {}).get("executors", {})
        for label, config in executors.items():
            _parse(
                f"{source}: PlatformSpec kubernetes executor {label!r}",
                config,
                kubernetes_executor_config_pb2.KubernetesExecutorConfig(),
            )
            if label not in deployment.executors:
                problems.append(f"platform config for unknown executor {label!r}")
    if problems:
        raise PipelineSpecError(f"{source}: " + "; ".join(problems))
    return spec


def _dangling_references(
    spec: pipeline_spec_pb2.PipelineSpec, deployment: pipeline_spec_pb2.PipelineDeploymentConfig
) -> list[str]:
    """Tasks whose component, and components whose executor, do not exist."""
    problems: list[str] = []
    if not spec.pipeline_info.name:
        problems.append("pipelineInfo.name is empty")
    dags = {"root": spec.root, **dict(spec.components.items())}
    for owner, component in dags.items():
        label = component.executor_label
        if label and label not in deployment.executors:
            problems.append(f"component {owner!r} names unknown executor {label!r}")
        for task_name, task in component.dag.tasks.items():
            ref = task.component_ref.name
            if ref not in spec.components:
                problems.append(f"task {task_name!r} in {owner!r} names unknown component {ref!r}")
    return problems
