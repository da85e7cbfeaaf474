"""Stable YAML for what rollout renders: block style, keys in the order given, no wrapping.

A string of several lines (a RayService's ``serveConfigV2``) is written as a literal block
(``|``), as KubeRay's own samples write it, so that a diff of two RayServices shows the lines of
the serve config that changed. The same input always gives the same bytes.
"""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump_yaml(document: Any) -> str:
    """``document`` as YAML: the order of its keys, block style, literal multi-line strings."""
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=10_000,
    )


def load_yaml(text: str) -> Any:
    """YAML text as plain data (safe loader)."""
    return yaml.safe_load(text)
