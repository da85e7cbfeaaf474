"""The ``llmw`` command: one typer app; each room's commands live in their own module.

Imports stay light here (no torch, unstructured or pymilvus) so ``llmw --help`` is fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from llmw import (
    bridge_commands,
    collections_command,
    embeddings_commands,
    engine_commands,
    events_commands,
    infer_command,
    ingest_commands,
    rollout_commands,
    rollout_embeddings,
    rollout_local,  # noqa: F401 (registers rollout status|history|undo on rollout_app)
    serve_commands,
)

app = typer.Typer(
    name="llmw",
    help="llm-workflows: document ingestion into Milvus, batch inference and model rollout, "
    "on Kubeflow Pipelines and Argo Workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Docstrings are paragraphs (wrapped to the terminal), and "[default: …]" is text, not markup.
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"llmw {version('llm-workflows')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """The options every command shares."""


app.command("ingest")(ingest_commands.ingest)
app.command("search")(ingest_commands.search)
app.command("collections")(collections_command.collections_command)
app.command("infer")(infer_command.infer)
app.command("compile")(engine_commands.compile_command)
app.command("run")(engine_commands.run_command)
app.command("submit")(engine_commands.submit_command)
app.command("status")(engine_commands.status_command)
app.command("trigger")(bridge_commands.trigger_command)
app.command("bridge")(bridge_commands.bridge_command)
app.add_typer(events_commands.events_app, name="events")
rollout_commands.rollout_app.command("embeddings")(rollout_embeddings.rollout_embeddings_command)
app.add_typer(rollout_commands.rollout_app, name="rollout")
app.add_typer(serve_commands.serve_app, name="serve")
embeddings_commands.embeddings_app.command("export")(embeddings_commands.export_command)
embeddings_commands.embeddings_app.command("default")(embeddings_commands.default_command)
app.add_typer(embeddings_commands.embeddings_app, name="embeddings")


def main() -> None:
    """The ``llmw`` entry point: the app, with every failure one line and an exit code."""
    from llmw.errors import run_cli

    run_cli(app)


if __name__ == "__main__":  # pragma: no cover
    main()
