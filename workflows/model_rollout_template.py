"""The ``model-rollout`` WorkflowTemplate, built from the steps in ``workflows.model_rollout``
(see its docstring for the course of a run) and two ``resource`` templates on the RayService.

The manifests name the RayService literally (the serving catalog's name and namespace), so the
job's ServiceAccount gets exactly ``get`` and ``patch`` on that one object (``workflows.rbac``).
The patch's ``serveConfigV2`` is the render step's output, a JSON string, which is a YAML scalar
too; the apply patch carries the ``resourceVersion`` it was computed from, the restore patch none
(it must win). One rollout per application at a time (a mutex on the app's name).
"""

from __future__ import annotations

from typing import Any

from hera.workflows import (
    NoneArchiveStrategy,
    Parameter,
    Resource,
    S3Artifact,
    Script,
    Steps,
    WorkflowTemplate,
)
from hera.workflows import models as m

from components.registry import JobSpec, get_job
from components.rollout.job_params import STEP_RETRIES, ModelRolloutParams
from components.settings import Settings, get_settings
from workflows import common
from workflows import model_rollout as steps

TEMPLATE_NAME = steps.TEMPLATE_NAME
PARAMETERS = tuple(ModelRolloutParams.model_fields)
IDENTITY = ("model", "app", "version", "name", "target", "engine")
RAYSERVICE = "{{workflow.parameters.target}} == rayservice"
MUTEX = "llmw-rollout-{{workflow.parameters.app}}"
STAGE = "{{steps.stage.outputs.result}}"


def _metadata(settings: Settings) -> str:
    from components.rollout.catalog import load_catalog

    rs = load_catalog(settings.serving_catalog).rayservice
    return (
        "apiVersion: ray.io/v1\nkind: RayService\nmetadata:\n"
        f"  name: {rs.name}\n  namespace: {rs.namespace}\n"
    )


def report_artifact() -> S3Artifact:
    """The gate's HTML report, at ``model-rollout/<workflow name>/report.html``."""
    return S3Artifact(
        name=steps.REPORT_ARTIFACT,
        path=f"{common.OUTPUTS_DIRECTORY}/artifacts/{steps.REPORT_ARTIFACT}",
        key=TEMPLATE_NAME + "/{{workflow.name}}/report.html",
        archive=NoneArchiveStrategy(),
    )


def _retry(job: JobSpec, step: str) -> Any:
    kind = STEP_RETRIES.get(step)
    return None if kind is None else getattr(job.retries, kind)


def scripts(job: JobSpec, settings: Settings) -> dict[str, Script]:
    """The script templates, by name (inside a template's context)."""
    store = {"LLMW_MODEL_STORE_URI": settings.cluster_model_store_uri}
    artifacts = [common.summary_artifact(TEMPLATE_NAME), report_artifact()]
    built = {}
    for name, func in (
        ("stage", steps.stage),
        ("render", steps.render),
        ("baseline", steps.baseline),
        ("gate", steps.gate),
        ("promote", steps.promote),
        ("collection", steps.collection),
        ("outcome", steps.outcome),
        ("restore-plan", steps.restore_plan),
        ("restored", steps.restored),
    ):
        milvus = name == "collection"
        built[name] = Script(
            name=name,
            source=func,
            constructor="runner",
            image=settings.component_image,
            env=common.step_env(settings, milvus=milvus, extra=store, run_data=milvus),
            outputs=artifacts if name in ("gate", "collection") else None,
            **common.step_kwargs(job, name, settings, _retry(job, name)),
        )
    return built


def resources(job: JobSpec, settings: Settings) -> dict[str, Resource]:
    """``read-rayservice`` (get: spec, resourceVersion, generation), ``apply-change`` (merge
    patch with the resourceVersion, waiting on the conditions it is given), ``restore-change``
    (merge patch)."""
    metadata = _metadata(settings)
    spec = "spec:\n  serveConfigV2: {{inputs.parameters.serve-config}}\n"
    read = Resource(
        name="read-rayservice",
        action="get",
        manifest=metadata,
        outputs=[
            Parameter(name="spec", value_from=m.ValueFrom(json_path="{.spec}")),
            Parameter(
                name="resource-version",
                value_from=m.ValueFrom(json_path="{.metadata.resourceVersion}"),
            ),
            Parameter(
                name="generation", value_from=m.ValueFrom(json_path="{.metadata.generation}")
            ),
        ],
        retry_strategy=common.retry_strategy(job.retries.plan),
    )
    apply = Resource(
        name="apply-change",
        action="patch",
        merge_strategy="merge",
        manifest=metadata + '  resourceVersion: "{{inputs.parameters.resource-version}}"\n' + spec,
        success_condition="{{inputs.parameters.success-condition}}",
        failure_condition="{{inputs.parameters.failure-condition}}",
        inputs=[
            Parameter(name=n)
            for n in ("serve-config", "resource-version", "success-condition", "failure-condition")
        ],
    )
    restore = Resource(
        name="restore-change",
        action="patch",
        merge_strategy="merge",
        manifest=metadata + spec,
        inputs=[Parameter(name="serve-config")],
        retry_strategy=common.retry_strategy(job.retries.finish),
    )
    return {"read": read, "apply": apply, "restore": restore}


def _main(parts: dict[str, Any]) -> None:
    """The entrypoint's steps (inside its Steps context)."""
    identity = common.parameter_refs(PARAMETERS)
    parts["stage"](name="stage", arguments=identity)
    parts["read"](name="read-rayservice", when=RAYSERVICE)
    read = "{{steps.read-rayservice.outputs.parameters.%s}}"
    parts["render"](
        name="render",
        arguments={
            "stage": STAGE,
            "spec": read % "spec",
            "resource_version": read % "resource-version",
            "generation": read % "generation",
        },
        when=RAYSERVICE,
    )
    plan = "{{steps.render.outputs.result}}"
    parts["baseline"](name="baseline", arguments={"stage": STAGE, "plan": plan}, when=RAYSERVICE)
    rendered = "{{steps.render.outputs.parameters.%s}}"
    parts["apply"](
        name="apply",
        arguments={
            "serve-config": rendered % "serve-config",
            "resource-version": read % "resource-version",
            "success-condition": rendered % "success-condition",
            "failure-condition": rendered % "failure-condition",
        },
        when=RAYSERVICE,
    )
    measured = {"stage": STAGE, "plan": plan, "baseline": "{{steps.baseline.outputs.result}}"}
    parts["gate"](name="gate", arguments=measured, when=RAYSERVICE)
    gated = {"stage": STAGE, "plan": plan, "gate": "{{steps.gate.outputs.result}}"}
    parts["promote"](name="promote", arguments=gated, when=RAYSERVICE)
    collection = "{{workflow.parameters.target}} == collection"
    parts["collection"](name="collection", arguments={"stage": STAGE}, when=collection)
    parts["outcome"](name="outcome", arguments={"stage": STAGE})


def _restore(parts: dict[str, Any]) -> None:
    """The exit handler's restore (inside its Steps context)."""
    identity = common.parameter_refs(IDENTITY)
    parts["read"](name="read-rayservice")
    read = "{{steps.read-rayservice.outputs.parameters.%s}}"
    parts["restore-plan"](
        name="restore-plan",
        arguments={
            **identity,
            "status": "{{inputs.parameters.status}}",
            "spec": read % "spec",
            "resource_version": read % "resource-version",
        },
    )
    planned = "{{steps.restore-plan.outputs.parameters.%s}}"
    restore = f"{planned % 'action'} == restore"
    parts["restore"](
        name="restore-change", arguments={"serve-config": planned % "serve-config"}, when=restore
    )
    reason = {**identity, "reason": "{{inputs.parameters.reason}}"}
    parts["restored"](name="restored", arguments=reason, when=restore)


def build_template(settings: Settings | None = None) -> WorkflowTemplate:
    """The ``model-rollout`` WorkflowTemplate for ``settings`` (the process's by default)."""
    settings = settings or get_settings()
    job = get_job(TEMPLATE_NAME)
    arguments = common.model_arguments(ModelRolloutParams)
    with common.workflow_template(
        job, settings, arguments, mutex=MUTEX, exit_handler=True
    ) as template:
        parts: dict[str, Any] = {**scripts(job, settings), **resources(job, settings)}
        status = Script(
            name=common.STATUS_STEP,
            source=steps.record_status,
            constructor="runner",
            image=settings.component_image,
            env=[common.trace_env()],
            **common.step_kwargs(job, common.STATUS_STEP, settings),
        )
        report = m.ValueFrom(parameter="{{steps.outcome.outputs.result}}")
        with Steps(name=common.ENTRYPOINT, outputs=[Parameter(name="report", value_from=report)]):
            _main(parts)
        with Steps(
            name="restore", inputs=[Parameter(name="status"), Parameter(name="reason")]
        ) as restore:
            _restore(parts)
        with Steps(name=common.EXIT_HANDLER):
            status(
                name=common.STATUS_STEP,
                arguments={"workflow": "{{workflow.name}}", "status": "{{workflow.status}}"},
            )
            restore(
                name="restore",
                arguments={"status": "{{workflow.status}}", "reason": "{{workflow.failures}}"},
                when="{{workflow.status}} != Succeeded && " + RAYSERVICE,
            )
    return template
