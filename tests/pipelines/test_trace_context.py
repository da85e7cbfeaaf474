"""The run's trace context on KFP: every pipeline has a ``traceparent`` parameter that each task
receives and joins (``components.tracing.join_trace``); kfp-local runs put the steps' spans in
that trace, or in the one ``$TRACEPARENT`` names when the parameter is empty."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kfp.pipeline_spec import pipeline_spec_pb2
from opentelemetry import context as otel_context

from components import tracing
from pipelines.compiler import check_ir, compile_text
from pipelines.local_run import run_local
from pipelines.registry import PIPELINES
from testing.spans import OtlpReceiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
CHANNEL = "pipelinechannel--traceparent"  # the parameter's name inside a sub-DAG


def _tasks_receiving_the_trace(
    spec: pipeline_spec_pb2.PipelineSpec, dag: Any, source: str, where: str
) -> set[str]:
    """The executor components under ``dag`` (recursively), after checking that each task binds
    its trace input to ``source`` (the DAG's own traceparent input)."""
    reached: set[str] = set()
    for task_name, task in dag.tasks.items():
        ref = task.component_ref.name
        component = spec.components[ref]
        is_dag = component.WhichOneof("implementation") == "dag"
        name = CHANNEL if is_dag else "traceparent"
        bound = task.inputs.parameters.get(name)
        assert bound is not None, f"{where}: task {task_name!r} gets no {name}"
        assert bound.component_input_parameter == source, f"{where}: task {task_name!r}"
        assert name in component.input_definitions.parameters, f"{where}: component {ref!r}"
        if is_dag:
            reached |= _tasks_receiving_the_trace(spec, component.dag, CHANNEL, f"{where}/{ref}")
        else:
            reached.add(ref)
    return reached


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_task_receives_the_pipelines_traceparent(name: str, default_settings: Any) -> None:
    spec = check_ir(compile_text(name, default_settings), name)
    declared = spec.root.input_definitions.parameters["traceparent"]
    assert declared.default_value.string_value == "" and declared.is_optional
    reached = _tasks_receiving_the_trace(spec, spec.root.dag, "traceparent", name)
    executors = {
        ref
        for ref, component in spec.components.items()
        if component.WhichOneof("implementation") == "executor_label"
    }
    assert executors and reached == executors  # the exit handler's task included


@contextlib.contextmanager
def _in_trace() -> Iterator[None]:
    """The trace TRACEPARENT names, current (what the bridge's submit span is)."""
    token = otel_context.attach(tracing.context_from(TRACEPARENT))
    try:
        yield
    finally:
        otel_context.detach(token)


@pytest.fixture
def receiver(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OtlpReceiver]:
    monkeypatch.chdir(tmp_path)  # the default pipeline root, .llmw/kfp-local, lands here
    monkeypatch.delenv("TRACEPARENT", raising=False)
    with OtlpReceiver() as running:
        monkeypatch.setenv("LLMW_OTLP_ENDPOINT", running.endpoint)
        yield running


def _removal(tmp_path: Path) -> None:
    params = {"uris": [(tmp_path / "gone.md").as_uri()], "milvus_uri": str(tmp_path / "t.db")}
    run_local("document-removal", params)


@pytest.mark.slow
def test_a_kfp_local_run_inside_a_trace_puts_its_steps_in_it(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    with _in_trace():
        _removal(tmp_path)
    (step,) = receiver.spans()
    assert (step.name, step.trace_id, step.parent_id) == ("remove documents", TRACE_ID, PARENT_ID)
    assert step.service == "llmw-step"


@pytest.mark.slow
def test_an_untraced_kfp_local_run_keeps_the_inherited_traceparent(
    receiver: OtlpReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bridge's local engine worker sets $TRACEPARENT; no span is current there.
    monkeypatch.setenv("TRACEPARENT", TRACEPARENT)
    _removal(tmp_path)
    (step,) = receiver.spans()
    assert (step.trace_id, step.parent_id) == (TRACE_ID, PARENT_ID)
