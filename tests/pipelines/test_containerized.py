"""In the cluster every component runs the image's own code: KFP's executor finds the step
function by name through the image's kfp_config.ini; the IR holds no copy of its source."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.common import make_component
from pipelines.compiler import compile_text
from pipelines.kfp_config import write_config
from pipelines.registry import PIPELINES

EXECUTOR = ["python3", "-m", "kfp.dsl.executor_main"]


def executors(name: str, settings: Any) -> dict[str, Any]:
    spec = next(yaml.safe_load_all(compile_text(name, settings)))
    found: dict[str, Any] = spec["deploymentSpec"]["executors"]
    return found


def listed(config: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(config)
    return dict(parser["Components"])


@pytest.fixture(scope="module")
def image_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kfp_config.ini an image build writes (``python -m pipelines.kfp_config``)."""
    from components.settings import Settings

    folder = tmp_path_factory.mktemp("image")
    return write_config(folder, Settings())


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_step_names_a_function_the_image_lists(
    name: str, default_settings: Any, image_config: Path
) -> None:
    functions = listed(image_config)
    for label, executor in executors(name, default_settings).items():
        container = executor["container"]
        assert container["command"] == EXECUTOR, label
        flag, function = container["args"][-2:]
        assert flag == "--function_to_execute", label
        # The file the image lists defines that function.
        source = Path(functions[function]).read_text(encoding="utf-8")
        assert f"\ndef {function}(" in source, label
        # Nothing in the IR is code that could drift from the image.
        assert not any("def " in part for part in container["command"] + container["args"])


def test_the_cluster_command_runs_a_step_from_the_images_config(
    clean_env: None, tmp_path: Path, image_config: Path, default_settings: Any
) -> None:
    """The plan step's exact command and arguments from the IR, in the image's working folder
    (here: the folder holding its kfp_config.ini, with this interpreter as python3)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nSome text.\n")
    container = executors("document-ingestion", default_settings)["exec-plan"]["container"]
    executor_input = {
        "inputs": {
            "parameterValues": {
                "source": str(docs),
                "collection": "documents",
                "milvus_uri": "",
                "prune": False,
            }
        },
        "outputs": {
            "parameters": {"Output": {"outputFile": str(tmp_path / "out" / "Output")}},
            "outputFile": str(tmp_path / "out" / "executor_output.json"),
        },
    }
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    command = [sys.executable, *container["command"][1:], *args]
    env = {"PATH": "/usr/bin:/bin", "LLMW_RUN_DATA_URI": str(tmp_path / "runs")}

    ran = subprocess.run(
        command, cwd=image_config.parent, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    output = json.loads((tmp_path / "out" / "executor_output.json").read_text())
    (spec,) = output["parameterValues"]["Output"]
    assert spec["shard"] == "0/1"
    assert Path(spec["listing"]).is_relative_to(tmp_path / "runs")

    # Without the image's config the executor cannot find the function.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = subprocess.run(
        command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert lost.returncode != 0 and "No components found in `kfp_config.ini`" in lost.stderr


def plan(source: str) -> list:
    """A different function named like ingestion's plan step."""
    return [source]


plan.__annotations__ = {"source": str, "return": list}  # KFP reads types, not strings


def test_two_step_functions_may_not_share_a_name(default_settings: Any) -> None:
    from pipelines.registry import get_pipeline

    get_pipeline("document-ingestion", default_settings)  # registers ingestion's plan
    with pytest.raises(ValueError, match="step function name 'plan' is taken by pipelines"):
        make_component(plan, "image", for_cluster=True)
    make_component(plan, "image", for_cluster=False)  # locally the name is no one's key


RECIPES = sorted((Path(__file__).resolve().parents[2] / "images").glob("*.Containerfile"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_every_image_writes_the_config_where_its_steps_run(recipe: Path) -> None:
    """The executor reads kfp_config.ini in the container's working folder: the recipe's last
    WORKDIR, where the recipe writes it after installing the project."""
    lines = [line.split() for line in recipe.read_text().splitlines() if line.strip()]
    workdirs = [i for i, words in enumerate(lines) if words[0] == "WORKDIR"]
    written = [
        i
        for i, words in enumerate(lines)
        if words[:4] == ["RUN", "python3", "-m", "pipelines.kfp_config"]
    ]
    assert written and workdirs, recipe.name
    assert written[-1] > workdirs[-1], f"{recipe.name}: WORKDIR changes after the config"
    assert lines[written[-1]][4] == lines[workdirs[-1]][1]
