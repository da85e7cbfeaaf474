"""``activeDeadlineSeconds`` on argo-local: the workflow's and a template's, killing the step's
whole process group, and the retries the rendered templates ask for (``retryPolicy: OnFailure``
with the expression that leaves bad input alone)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from components.exit_codes import EXIT_BAD_INPUT
from components.settings import Settings
from tests.workflows.local_runner.builders import document, run, script, step
from workflows.local_runner import ArgoLocalRunner, UnsupportedFeatureError, deadlines
from workflows.render import render_template

# Starts a worker of its own (its pid in a file), then works for a minute.
WITH_WORKER = """
    import pathlib, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    pathlib.Path("{{inputs.parameters.pids}}").write_text(str(worker.pid))
    time.sleep(float("{{inputs.parameters.seconds}}"))
"""


def rendered_retry_strategy() -> dict[str, Any]:
    """The retry strategy of document-removal's step as rendered (its waits cut to 0 here)."""
    templates = render_template("document-removal", Settings())["spec"]["templates"]
    strategy: dict[str, Any] = next(t for t in templates if t["name"] == "remove")["retryStrategy"]
    return strategy


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, killed but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def worker_document(**workflow: object) -> dict[str, object]:
    return document(
        [
            {
                "name": "main",
                "steps": [
                    [step("work", "work", pids="{{workflow.parameters.pids}}", seconds="60")],
                    [step("after", "after")],
                ],
            },
            script(
                "work",
                WITH_WORKER,
                "pids",
                "seconds",
                retryStrategy={"limit": 3, "retryPolicy": "OnFailure"},
            ),
            script("after", "print('ran')"),
            script("bye", "import pathlib; pathlib.Path('{{workflow.status}}.txt').write_text('')"),
        ],
        arguments={"parameters": [{"name": "pids"}]},
        onExit="bye",
        **workflow,
    )


def test_the_workflow_deadline_kills_the_step_and_its_workers(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    started = time.monotonic()
    result = run(worker_document(activeDeadlineSeconds=2), tmp_path, {"pids": str(pids)})
    took = time.monotonic() - started
    assert result.phase == "Failed"
    assert result.message is not None
    assert result.message.startswith("the workflow exceeded its activeDeadlineSeconds (2)")
    (work,) = result.node("work")
    assert work.message is not None and "exceeded the workflow's activeDeadlineSeconds" in (
        work.message
    )
    # Killed at the deadline, not retried past it; nothing after it ran.
    assert work.attempts == 1 and work.exit_code is None
    assert not result.node("after")
    assert took < 2 + deadlines.KILL_GRACE_S + 5
    assert gone(int(pids.read_text())), "the step's worker outlived it"
    # The exit handler runs past the workflow's deadline, as in Argo.
    assert (tmp_path / "Failed.txt").exists()


def test_no_pod_starts_once_the_deadline_has_passed(tmp_path: Path) -> None:
    # One at a time: "second" would start once "first" has ended, as a group's steps do.
    doc = document(
        [
            {"name": "main", "steps": [[step("first", "first"), step("second", "second")]]},
            script("first", "import time; time.sleep(30)"),
            script("second", "print('ran')"),
        ],
        activeDeadlineSeconds="1",
    )
    result = run(doc, tmp_path, max_parallel=1)
    assert result.phase == "Failed"
    (first,) = result.node("first")
    assert first.phase == "Failed" and first.exit_code is None  # killed at the deadline
    (second,) = result.node("second")
    assert second.phase == "Failed" and second.message == deadlines.STEP_PAST_DEADLINE
    assert second.attempts == 0 and second.result is None


def test_a_template_deadline_limits_each_attempt_and_is_retried(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    doc = worker_document()
    work = doc["spec"]["templates"][1]  # type: ignore[index]
    work["activeDeadlineSeconds"] = 1
    work["retryStrategy"] = {**rendered_retry_strategy(), "limit": 1}
    result = run(doc, tmp_path, {"pids": str(pids)})
    (node,) = result.node("work")
    # Killed (no exit code: -1 to the expression) is a failure that may pass: retried once.
    assert node.phase == "Failed" and node.attempts == 2
    assert node.message is not None
    assert node.message.startswith("exceeded activeDeadlineSeconds (1s): its processes were")
    assert gone(int(pids.read_text()))
    assert (tmp_path / "Failed.txt").exists()


def test_what_a_finished_step_left_running_is_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    quick = document([script("main", WITH_WORKER, "pids", "seconds")])
    quick["spec"]["templates"][0]["inputs"]["parameters"] = [
        {"name": "pids", "value": str(pids)},
        {"name": "seconds", "value": "0"},
    ]
    assert run(quick, tmp_path).phase == "Succeeded"
    assert gone(int(pids.read_text())), "a worker outlived the step that started it"


def test_a_step_ignoring_sigterm_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deadlines, "KILL_GRACE_S", 0.5)
    stubborn = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
    """
    doc = document([script("main", stubborn, activeDeadlineSeconds=1)])
    started = time.monotonic()
    result = run(doc, tmp_path)
    assert result.phase == "Failed" and time.monotonic() - started < 10


@pytest.mark.parametrize(("exit_code", "attempts"), [(1, 3), (EXIT_BAD_INPUT, 1)])
def test_the_rendered_retry_strategy_leaves_bad_input_alone(
    tmp_path: Path, exit_code: int, attempts: int
) -> None:
    strategy = rendered_retry_strategy()
    assert strategy["retryPolicy"] == "OnFailure" and strategy["limit"] == 2
    doc = document([script("main", f"raise SystemExit({exit_code})", retryStrategy=strategy)])
    result = run(doc, tmp_path)
    assert result.phase == "Failed" and result.nodes[0].attempts == attempts


@pytest.mark.parametrize("value", ["{{inputs.parameters.seconds}}", "1h"])
def test_a_deadline_that_is_not_seconds_is_refused(tmp_path: Path, value: str) -> None:
    doc = document([script("main", "print(1)", activeDeadlineSeconds=value)])
    with pytest.raises(UnsupportedFeatureError, match=r"activeDeadlineSeconds: .* not a number"):
        ArgoLocalRunner(doc, work_dir=tmp_path)
