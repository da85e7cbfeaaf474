"""`llmw rollout start`: the plan of a model rollout (a dry run) onto the cluster's GPUs.

Applying needs an engine (``ray-local``, ``kubernetes``) that is not built yet; until then the
command plans only, with ``--dry-run``, and says so otherwise. Imports stay light: the rollout
package loads inside the command.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from llmw.progress import fail

EXIT_REFUSED = 2

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
) -> None:
    """Plan a rollout: what would be staged, the object's diff, the placement.

    With --json the plan includes the whole object it would apply under "object". Exit codes:
    0 planned; 2 refused (no GPU fits, the share is taken, a change KubeRay would answer with a
    new RayCluster, an unknown app, a version that exists with other bytes, an unusable store)
    or bad input. Applying needs the ray-local or kubernetes engine, which is not built yet.
    """
    if not dry_run:
        raise fail(
            "applying a rollout needs the ray-local or kubernetes engine, which is not built "
            "yet: nothing was staged or applied. Run with --dry-run to see the plan",
            EXIT_REFUSED,
        )
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
