"""``synchronization`` mutexes on argo-local: runs holding the same mutex never overlap, as in
Argo; runs holding different ones do. Real runs, in threads and in separate processes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from components.settings import Settings
from tests.workflows.local_runner.builders import document, run, script, step
from workflows.local_runner import ArgoLocalRunner, LocalWorkflowRun, UnsupportedFeatureError
from workflows.local_runner.synchronization import lock_path, mutex_keys
from workflows.render import render_template

REPO = Path(__file__).resolve().parents[3]
MUTEX = "collection-{{workflow.parameters.collection}}"
# Records when it ran (start, end) in a file of its own, holding the run for a while.
SPAN = """
    import json, pathlib, time
    start = time.time()
    time.sleep(float("{{inputs.parameters.hold}}"))
    out = pathlib.Path("{{inputs.parameters.out}}")
    out.write_text(json.dumps([start, time.time()]))
"""
# Waits until the other run has written its file: the two must run at the same time.
MEET = """
    import pathlib, sys, time
    pathlib.Path("{{inputs.parameters.out}}").write_text("here")
    other = pathlib.Path("{{inputs.parameters.other}}")
    deadline = time.time() + 30
    while not other.exists():
        if time.time() > deadline:
            sys.exit("the other run never ran alongside")
        time.sleep(0.05)
"""


def locked_document(source: str, *params: str, mutex: str = MUTEX) -> dict[str, Any]:
    arguments = {p: f"{{{{workflow.parameters.{p}}}}}" for p in params}
    return document(
        [
            {"name": "main", "steps": [[step("work", "work", **arguments)]]},
            script("work", source, *params),
        ],
        arguments={"parameters": [{"name": "collection"}, *({"name": p} for p in params)]},
        synchronization={"mutexes": [{"name": mutex}]},
    )


def run_both(docs: list[dict[str, Any]], args: list[dict[str, str]], tmp_path: Path) -> list[Any]:
    """Two runs side by side, in threads, sharing the lock folder."""
    results: list[LocalWorkflowRun | None] = [None, None]

    def one(index: int) -> None:
        results[index] = run(docs[index], tmp_path, args[index], workflow_name=f"run-{index}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def spans(*paths: Path) -> list[list[float]]:
    return sorted(json.loads(path.read_text()) for path in paths)


def test_runs_into_the_same_collection_take_turns(tmp_path: Path) -> None:
    doc = locked_document(SPAN, "hold", "out")
    args = [
        {"collection": "docs", "hold": "1", "out": str(tmp_path / f"span-{i}")} for i in range(2)
    ]
    results = run_both([doc, doc], args, tmp_path)
    assert [r.phase for r in results] == ["Succeeded", "Succeeded"]
    first, second = spans(tmp_path / "span-0", tmp_path / "span-1")
    assert second[0] >= first[1], "the second run started before the first ended"
    assert lock_path(tmp_path / "work" / "locks", "test/collection-docs").exists()


def test_runs_into_other_collections_run_side_by_side(tmp_path: Path) -> None:
    doc = locked_document(MEET, "out", "other")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    args = [
        {"collection": "docs", "out": a, "other": b},
        {"collection": "notes", "out": b, "other": a},
    ]
    results = run_both([doc, doc], args, tmp_path)
    assert [r.phase for r in results] == ["Succeeded", "Succeeded"]


# One local run in its own process: ArgoLocalRunner on the document in argv[1].
RUN_IN_PROCESS = """
import json, sys
from pathlib import Path
from workflows.local_runner import ArgoLocalRunner
doc, work, args = json.loads(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
print(ArgoLocalRunner(doc, work_dir=work, max_backoff_s=0).run(args).phase)
"""


def test_two_processes_into_the_same_collection_take_turns(tmp_path: Path) -> None:
    doc = locked_document(SPAN, "hold", "out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMW_")}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RUN_IN_PROCESS,
                json.dumps(doc),
                str(tmp_path / "work"),
                json.dumps({"collection": "docs", "hold": "1", "out": str(tmp_path / f"s{i}")}),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [process.communicate(timeout=120)[0].strip() for process in processes]
    assert outputs == ["Succeeded", "Succeeded"]
    first, second = spans(tmp_path / "s0", tmp_path / "s1")
    assert second[0] >= first[1], "the second process's run started before the first ended"


def test_a_template_mutex_serializes_its_fan_out(tmp_path: Path) -> None:
    items = [str(tmp_path / f"item-{i}") for i in range(3)]
    doc = document(
        [
            {
                "name": "main",
                "steps": [
                    [
                        {
                            **step("work", "work", hold="0.5", out="{{item}}"),
                            "withItems": items,
                        }
                    ]
                ],
            },
            script(
                "work", SPAN, "hold", "out", synchronization={"mutexes": [{"name": "one-at-once"}]}
            ),
        ]
    )
    result = run(doc, tmp_path, max_parallel=3)
    assert result.phase == "Succeeded"
    ordered = spans(*(Path(item) for item in items))
    for earlier, later in itertools.pairwise(ordered):
        assert later[0] >= earlier[1]


def test_what_cannot_be_held_is_refused(tmp_path: Path) -> None:
    semaphore = locked_document(SPAN, "hold", "out")
    semaphore["spec"]["synchronization"] = {"semaphores": [{"configMapKeyRef": {"key": "k"}}]}
    with pytest.raises(UnsupportedFeatureError, match=r"spec\.synchronization: .*semaphores"):
        ArgoLocalRunner(semaphore, work_dir=tmp_path)
    nameless = locked_document(SPAN, "hold", "out")
    nameless["spec"]["synchronization"] = {"mutexes": [{"namespace": "x"}]}
    with pytest.raises(UnsupportedFeatureError, match=r"mutexes\[0\]: a mutex needs a name"):
        ArgoLocalRunner(nameless, work_dir=tmp_path)


def test_an_unresolvable_mutex_name_ends_the_run_in_error(tmp_path: Path) -> None:
    doc = locked_document(SPAN, "hold", "out", mutex="m-{{workflow.parameters.nope}}")
    result = run(doc, tmp_path, {"collection": "c", "hold": "0", "out": str(tmp_path / "o")})
    assert result.phase == "Error" and "workflow.parameters.nope" in (result.message or "")


def test_ingestion_and_removal_share_the_collection_mutex(default_settings: Settings) -> None:
    scope = {"workflow.parameters.collection": "docs"}
    keys = {
        name: mutex_keys(
            render_template(name, default_settings)["spec"].get("synchronization"),
            scope,
            default_settings.argo_namespace,
            name,
        )
        for name in ("document-ingestion", "document-removal", "batch-inference")
    }
    assert keys["document-ingestion"] == keys["document-removal"] == ["ai-ml/llmw-collection-docs"]
    assert keys["batch-inference"] == []
