"""The ``llmw`` command: one typer app; each room's commands live in their own module.

Imports stay light here (no torch, unstructured or pymilvus) so ``llmw --help`` is fast.
"""

from __future__ import annotations

import typer

from llmw import bridge_commands, engine_commands, infer_command, ingest_commands

app = typer.Typer(
    name="llmw",
    help="llm-workflows: document ingestion into Milvus, batch inference and model rollout, "
    "on Kubeflow Pipelines and Argo Workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("ingest")(ingest_commands.ingest)
app.command("search")(ingest_commands.search)
app.command("infer")(infer_command.infer)
app.command("compile")(engine_commands.compile_command)
app.command("run")(engine_commands.run_command)
app.command("submit")(engine_commands.submit_command)
app.command("status")(engine_commands.status_command)
app.command("trigger")(bridge_commands.trigger_command)
app.command("bridge")(bridge_commands.bridge_command)


def main() -> None:
    """The ``llmw`` entry point: the app, with every failure one line and an exit code."""
    from llmw.errors import run_cli

    run_cli(app)


if __name__ == "__main__":  # pragma: no cover
    main()
