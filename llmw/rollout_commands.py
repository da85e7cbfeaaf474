"""`llmw rollout start|status|history|undo`: a model rollout onto the cluster's GPUs.

``--dry-run`` plans (what would be staged, the object's diff, the placement). Without it the
``ray-local`` or ``kubernetes`` engine stages, applies, gates and promotes or rolls back
(llmw/rollout_local.py). Imports stay light: the rollout package (and Ray) load inside the
commands.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from llmw.progress import fail

EXIT_ENGINE = 1  # the engine failed part way: `llmw rollout status` recovers
EXIT_REFUSED = 2
EXIT_ROLLED_BACK = 3

rollout_app = typer.Typer(
    name="rollout",
    help="Roll a model out onto the cluster's GPUs: stage it, change one application of the "
    "RayService in place (or a KServe canary), placed by the GPU inventory.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Target(StrEnum):
    rayservice = "rayservice"
    kserve = "kserve"


class Engine(StrEnum):
    ray_local = "ray-local"
    kubernetes = "kubernetes"


class KServeMode(StrEnum):
    serverless = "Serverless"
    raw = "RawDeployment"


ModelArg = Annotated[str, typer.Argument(help="The model: a folder, a file or s3://bucket/prefix.")]
AppOpt = Annotated[str, typer.Option("--app", help="The application: llm, embeddings, ...")]
VersionOpt = Annotated[str, typer.Option("--version", help="The version to stage it as.")]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="Its name in the model store [default: APP].")
]
TargetOpt = Annotated[Target, typer.Option("--target", help="What serves it.")]
CanaryOpt = Annotated[
    int | None,
    typer.Option("--canary", min=1, max=99, help="KServe: the new model's share of traffic, %."),
]
MemoryOpt = Annotated[
    float | None,
    typer.Option("--memory-gb", min=0.001, help="GPU memory it needs [default: weights x factor]."),
]
FractionOpt = Annotated[
    float | None,
    typer.Option(
        "--gpu-fraction", min=0.01, max=1.0, help="Its share of a GPU [default: the current one]."
    ),
]
NodeOpt = Annotated[str | None, typer.Option("--node", help="Pin a GPU node.")]
ModeOpt = Annotated[
    KServeMode | None,
    typer.Option("--kserve-mode", help="KServe mode [default: LLMW_KSERVE_DEPLOYMENT_MODE]."),
]
FromOpt = Annotated[
    Path | None,
    typer.Option("--from", help="The current RayService (YAML) [default: the one llmw renders]."),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Plan only: stage and apply nothing.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")]
EngineOpt = Annotated[Engine, typer.Option("--engine", help="Where to apply it.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Wait for the decision (both engines always do).")
]


@rollout_app.command("start")
def start_command(
    model: ModelArg,
    app: AppOpt,
    version: VersionOpt,
    name: NameOpt = None,
    target: TargetOpt = Target.rayservice,
    canary: CanaryOpt = None,
    memory_gb: MemoryOpt = None,
    gpu_fraction: FractionOpt = None,
    node: NodeOpt = None,
    kserve_mode: ModeOpt = None,
    current: FromOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
    engine: EngineOpt = Engine.ray_local,
    wait: WaitOpt = False,
) -> None:
    """Roll a model out, or plan it (--dry-run).

    The engine stages the model, records the previous serve config (or InferenceService spec),
    applies the change (ray-local: the local Ray, llmw serve up; kubernetes: the RayService's
    serveConfigV2, or --target kserve an InferenceService, through the Kubernetes API of
    LLMW_KUBECONFIG), waits until it serves, runs the gate, then promotes or restores the
    previous one. A rollout that was interrupted is rolled back first. With --json the plan
    (or the result) is printed as JSON. Exit codes: 0 planned or promoted; 2 refused (no GPU
    fits, the share is taken, a change KubeRay would answer with a new RayCluster, an unknown
    app, a version that exists with other bytes, an unusable store, the engine not reachable)
    or bad input; 3 the gate or the apply failed and the previous model serves again; 1 the
    engine failed while restoring (llmw rollout status recovers).
    """
    from components.rollout.plan import RolloutRequest, plan_rollout
    from components.settings import get_settings

    request = RolloutRequest(
        source=model,
        app=app,
        version=version,
        name=name,
        target=target.value,
        canary=canary,
        memory_gb=memory_gb,
        gpu_fraction=gpu_fraction,
        node=node,
        kserve_mode=kserve_mode.value if kserve_mode else None,
        current=current,
    )
    if not dry_run:
        from llmw.rollout_local import apply_rollout

        apply_rollout(request, engine.value, as_json, EXIT_REFUSED, EXIT_ROLLED_BACK)
        return
    try:
        plan = plan_rollout(request, get_settings())
    except (ValueError, OSError) as exc:
        raise fail(str(exc), EXIT_REFUSED) from None
    typer.echo(json.dumps(plan, indent=2) if as_json else describe(plan))
    refused = plan["refused"]
    if refused:
        raise fail(f"refused ({refused['reason']}): {refused['message']}", EXIT_REFUSED)


def describe(plan: dict[str, Any]) -> str:
    """The plan for a person: what would be staged, where it runs, the diff."""
    model = plan.get("model") or {}
    lines = [
        f"rollout of {plan['app']} {model.get('version', '')} onto the {plan['target']} "
        "(dry run: nothing staged or applied)".replace("  ", " ")
    ]
    stage = plan.get("stage")
    if stage:
        what = "already staged, same bytes (nothing to copy)"
        if stage["action"] == "stage":
            what = f"would copy {stage['files']} files, {stage['bytes']:,} bytes"
        lines.append(f"stage:     {stage['into']}: {what}; sha256 {stage['digest'][:16]}…")
    if "memory_gb" in plan:
        lines.append(f"memory:    {plan['memory_gb']:g} GB ({plan['memory_from']})")
    placement = plan.get("placement")
    if placement:
        env = ", ".join(f"{k}={v}" for k, v in placement["env"].items())
        lines.append(
            f"placement: {placement['node']}: {placement['accelerator']} "
            f"({placement['architecture']}), {placement['gpu_fraction']:g} GPU, "
            f"{placement['resource']}" + (f", env {env}" if env else "")
        )
    if plan.get("diff"):
        lines += ["", plan["diff"].rstrip("\n")]
    return "\n".join(lines)
