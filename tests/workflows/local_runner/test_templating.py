"""``{{...}}`` substitution: strings, whole structures, fan-out items, and unresolved names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.local_runner.builders import document, run, script, step
from workflows.local_runner import UnsupportedFeatureError, substitute
from workflows.local_runner.model import NodeError
from workflows.local_runner.templating import item_scope, item_text, substitute_all


def test_substitute() -> None:
    scope = {"inputs.parameters.x": "1", "item": "a"}
    assert substitute("{{inputs.parameters.x}}-{{ item }}-{x}", scope, "here") == "1-a-{x}"
    with pytest.raises(NodeError, match=r"here: unresolved variable \{\{nope\}\}"):
        substitute("{{nope}}", scope, "here")
    with pytest.raises(UnsupportedFeatureError, match="here: expressions"):
        substitute("{{=item}}", scope, "here")


def test_substitute_all_names_where_it_failed() -> None:
    scope = {"a": "A"}
    value = {"list": ["{{a}}", 3, {"deep": "x{{a}}"}], "n": None}
    assert substitute_all(value, scope, "t") == {"list": ["A", 3, {"deep": "xA"}], "n": None}
    with pytest.raises(NodeError, match=r"t\.list\[1\]\.deep: unresolved variable"):
        substitute_all({"list": ["{{a}}", {"deep": "{{b}}"}]}, scope, "t")


def test_items_print_as_argo_prints_them() -> None:
    assert [item_text(v) for v in ("s", True, False, 3, 2.5)] == ["s", "true", "false", "3", "2.5"]
    assert item_text({"b": 1, "a": [1, "x"]}) == '{"a":[1,"x"],"b":1}'
    scoped = item_scope({"keep": "k"}, {"shard": 2, "of": "3"})
    assert scoped == {
        "keep": "k",
        "item": '{"of":"3","shard":2}',
        "item.shard": "2",
        "item.of": "3",
    }


def test_unresolved_variables_are_errors(tmp_path: Path) -> None:
    doc = document(
        [
            {"name": "main", "steps": [[step("show", "show", x="{{steps.nope.outputs.result}}")]]},
            script("show", "print('{{inputs.parameters.x}}')", "x"),
        ]
    )
    result = run(doc, tmp_path)
    assert result.phase == "Failed"
    assert "unresolved variable {{steps.nope.outputs.result}}" in (result.nodes[-1].message or "")
