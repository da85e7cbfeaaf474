"""The ``kfp_config.ini`` a component image keeps in its working folder.

In the cluster a component runs ``python3 -m kfp.dsl.executor_main --function_to_execute
<name>`` (``pipelines.common.make_component``): KFP's executor reads ``kfp_config.ini`` in its
working folder to find the file that defines ``<name>``, and runs that function. The image build
writes the file after installing the project, so the paths are the installed modules'::

    WORKDIR /opt/llmw
    RUN python -m pipelines.kfp_config /opt/llmw

It lists every step function of every registered pipeline (``step_functions``).
"""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp.dsl.kfp_config import KFPConfig

from components.settings import Settings
from pipelines.common import STEP_FUNCTIONS
from pipelines.registry import PIPELINES, get_pipeline

FILE_NAME = "kfp_config.ini"


def step_functions(settings: Settings | None = None) -> dict[str, Callable[..., Any]]:
    """Every function the registered pipelines' cluster components run, by name (building
    them is what names them)."""
    for name in sorted(PIPELINES):
        get_pipeline(name, settings, for_cluster=True)
    return dict(sorted(STEP_FUNCTIONS.items()))


def write_config(folder: Path, settings: Settings | None = None) -> Path:
    """Write ``<folder>/kfp_config.ini`` (KFP's own writer): each step function's name and the
    absolute path of the file defining it. Returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No existing KFP Config file found": it is new
        config = KFPConfig(config_directory=folder)
    for name, func in step_functions(settings).items():
        source = inspect.getsourcefile(func)
        if source is None:
            raise ValueError(f"step function {name!r} has no source file")
        config.add_component(name, Path(source).resolve())
    config.save()
    return folder / FILE_NAME


if __name__ == "__main__":
    print(write_config(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
