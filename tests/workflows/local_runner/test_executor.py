"""The executor: one leaf node's attempts, backoff, subprocess, environment and outputs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.workflows.local_runner.builders import FLAKY, document, run, script, step
from workflows.local_runner.retrying import backoff_delay, retries


def test_a_failing_step_is_retried_then_succeeds(tmp_path: Path) -> None:
    # Uncut, these backoffs would wait 30 s then 60 s; max_backoff_s (0 here) cuts each wait.
    retry = {"limit": 3, "retryPolicy": "OnFailure", "backoff": {"duration": "30s", "factor": 2}}
    doc = document(
        [
            {
                "name": "main",
                "steps": [[step("flaky", "flaky", counter=str(tmp_path / "n"), succeed_on="3")]],
                "outputs": {
                    "parameters": [
                        {
                            "name": "said",
                            "valueFrom": {"parameter": "{{steps.flaky.outputs.result}}"},
                        }
                    ]
                },
            },
            script("flaky", FLAKY, "counter", "succeed_on", retryStrategy=retry),
        ]
    )
    started = time.monotonic()
    result = run(doc, tmp_path)
    assert time.monotonic() - started < 30  # the 30 s and 60 s backoffs are cut to max_backoff_s
    assert result.phase == "Succeeded", result.message
    (node,) = result.node("flaky")
    assert node.attempts == 3 and node.phase == "Succeeded"
    assert result.outputs == {"said": "succeeded on attempt 3"}
    # Each attempt keeps its script and log.
    logs = sorted((result.work_dir / "nodes").glob("*flaky/attempt-*/stderr.log"))
    assert [p.read_text().strip() for p in logs] == ["attempt 1 fails", "attempt 2 fails", ""]


def test_backoff_follows_argo() -> None:
    backoff = {"duration": "5s", "factor": 2, "cap": "15s"}
    assert [backoff_delay(backoff, n) for n in range(4)] == [5, 10, 15, 15]
    assert backoff_delay({}, 3) == 0
    assert backoff_delay({"duration": "1m"}, 2) == 60  # no factor: 1


@pytest.mark.parametrize(
    ("policy", "on_failed", "on_error"),
    [
        ("Always", True, True),
        ("OnFailure", True, False),
        ("OnError", False, True),
        ("OnTransientError", False, True),
    ],
)
def test_retry_policies(policy: str, on_failed: bool, on_error: bool) -> None:
    assert retries(policy, "Failed") is on_failed and retries(policy, "Error") is on_error


def test_a_retry_stops_once_max_duration_has_passed(tmp_path: Path) -> None:
    retry = {"limit": 5, "backoff": {"duration": "1h", "maxDuration": "30m"}}
    doc = document([script("main", FLAKY, "counter", "succeed_on", retryStrategy=retry)])
    doc["spec"]["templates"][0]["inputs"]["parameters"] = [
        {"name": "counter", "value": str(tmp_path / "n")},
        {"name": "succeed_on", "value": "3"},
    ]
    result = run(doc, tmp_path)
    # The first wait (1 h) would pass maxDuration (30 min): no retry at all.
    assert result.phase == "Failed" and result.nodes[0].attempts == 1


def test_timeouts_and_missing_outputs(tmp_path: Path) -> None:
    doc = document(
        [
            {"name": "main", "steps": [[step("slow", "slow"), step("quiet", "quiet")]]},
            script("slow", "import time; time.sleep(60)", timeout="1s"),
            script(
                "quiet",
                "print('no file')",
                outputs={"parameters": [{"name": "p", "valueFrom": {"path": "never.txt"}}]},
            ),
        ]
    )
    result = run(doc, tmp_path, max_parallel=2)
    (slow,) = result.node("slow")
    assert slow.phase == "Failed" and "exceeded timeout (1s)" in (slow.message or "")
    (quiet,) = result.node("quiet")
    assert quiet.phase == "Error" and quiet.result == "no file"
    assert "output parameter 'p': never.txt not written" in (quiet.message or "")


def test_template_env_is_dropped_but_the_runner_env_applies(tmp_path: Path) -> None:
    doc = document(
        [
            {"name": "main", "steps": [[step("show", "show")]]},
            {
                **script(
                    "show",
                    "import os; print(os.environ.get('LLMW_X'), os.environ.get('FROM_SECRET'))",
                ),
                "nodeSelector": {"kubernetes.io/hostname": "drizzt"},
            },
        ]
    )
    doc["spec"]["templates"][1]["script"]["env"] = [
        {"name": "LLMW_X", "value": "cluster"},
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    result = run(doc, tmp_path, env={"LLMW_X": "local", "PATH": "/usr/bin:/bin"})
    assert result.nodes[-1].result == "local None"


def test_hera_outputs_land_in_the_node_folder_and_artifacts_are_copied(tmp_path: Path) -> None:
    source = """
        import os, pathlib
        out = pathlib.Path(os.environ["hera__outputs_directory"])
        (out / "parameters").mkdir(parents=True)
        (out / "parameters" / "count").write_text("7")
        (out / "artifacts").mkdir()
        (out / "artifacts" / "summary.md").write_text("# done")
    """
    outputs = {
        "parameters": [
            {"name": "count", "valueFrom": {"path": "/tmp/hera-outputs/parameters/count"}}
        ],
        "artifacts": [
            {"name": "summary", "path": "/tmp/hera-outputs/artifacts/summary.md"},
            {
                "name": "keyed",
                "path": "/tmp/hera-outputs/artifacts/summary.md",
                "s3": {"key": "k/s.md"},
            },
            {"name": "absent", "path": "/tmp/hera-outputs/artifacts/none", "optional": True},
        ],
    }
    doc = document([script("main", source, outputs=outputs)])
    doc["spec"]["templates"][0]["script"]["env"] = [
        {"name": "hera__outputs_directory", "value": "/tmp/hera-outputs"}
    ]
    result = run(doc, tmp_path, workflow_name="wf")
    (node,) = result.nodes
    assert node.phase == "Succeeded", node.message
    assert node.parameters == {"count": "7"}
    assert set(node.artifacts) == {"summary", "keyed"}
    assert Path(node.artifacts["keyed"]) == tmp_path / "work" / "artifacts" / "k" / "s.md"
    assert Path(node.artifacts["summary"]).read_text() == "# done"
    assert list((result.work_dir / "nodes").glob("wf/attempt-0/hera-outputs/parameters/count"))
