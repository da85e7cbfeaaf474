"""The simulator reads paths, templates, filters and parameters as Argo Events v1.9 does
(gjson v1.19, sjson v1.2, text/template; pkg/sensors/dependencies/filter.go,
pkg/sensors/triggers/params.go)."""

from __future__ import annotations

from typing import Any

import pytest

from sensors.simulate.events import Event
from sensors.simulate.filters import check
from sensors.simulate.gotemplate import NO_VALUE, TemplateError, render
from sensors.simulate.jsonpath import Unsupported, get, set_path
from sensors.simulate.params import ParamError, apply_params, construct_payload, resolve

DATA = {
    "notification": [{"s3": {"object": {"key": "docs/a.md", "size": 12}}, "eventName": "x"}],
    "flag": True,
    "nothing": None,
    "ratio": 0.25,
    "dotted.key": "yes",
}
EVENT = Event(context={"id": "abc123", "source": "src", "subject": "ev"}, data=DATA, form="test")


def src(**values: Any) -> dict[str, Any]:
    return {"dependencyName": "dep", **values}


@pytest.mark.parametrize(
    ("path", "kind", "text"),
    [
        ("notification.0.s3.object.key", "String", "docs/a.md"),
        ("notification.0.s3.object.size", "Number", "12"),
        ("ratio", "Number", "0.25"),
        ("flag", "True", "true"),
        ("nothing", "Null", ""),
        ("notification.0.s3", "JSON", '{"object":{"key":"docs/a.md","size":12}}'),
        ("dotted\\.key", "String", "yes"),
        ("@this", "JSON", None),
        ("!true", "True", "true"),
        ("!false", "False", "false"),
        ("!3", "Number", "3"),
        ('!"text"', "String", "text"),
    ],
)
def test_gjson_reads(path: str, kind: str, text: str | None) -> None:
    found = get(DATA, path)
    assert found is not None and found.kind == kind
    if text is not None:
        assert found.text() == text


@pytest.mark.parametrize("path", ["notification.1.s3", "notification.0.s3.bucket", "flag.x", "no"])
def test_gjson_missing(path: str) -> None:
    assert get(DATA, path) is None


@pytest.mark.parametrize("path", ["notification.#", "notif*", "a|b", "@reverse", "[a,b]"])
def test_gjson_syntax_it_does_not_implement_is_refused(path: str) -> None:
    with pytest.raises(Unsupported):
        get(DATA, path)


def test_sjson_writes_objects_and_arrays_as_needed() -> None:
    document = set_path(None, "parameters.source", "s3://b/k")
    document = set_path(document, "parameters.uris.0", "s3://b/k")
    document = set_path(document, "list.2", True)
    document = set_path(document, "list.-1", 4)
    assert document == {
        "parameters": {"source": "s3://b/k", "uris": ["s3://b/k"]},
        "list": [None, None, True, 4],
    }
    assert set_path(None, "0", "x") == ["x"]


def test_templates() -> None:
    assert render("id-{{ .Input.id }}", {"id": "abc"}) == "id-abc"
    key = "{{ (index .Input.notification 0).s3.object.key }}"
    assert render(f"s3://b/{key}", DATA) == "s3://b/docs/a.md"
    assert render("{{ .Input.missing }}", DATA) == NO_VALUE  # Go prints a missing key so
    assert render("{{.Input.flag}}", DATA) == "true"
    with pytest.raises(TemplateError, match="index out of range"):
        render("{{ (index .Input.notification 3).s3 }}", DATA)
    with pytest.raises(TemplateError, match="nil pointer"):
        render("{{ .Input.missing.deeper }}", DATA)
    with pytest.raises(TemplateError, match="can't evaluate field"):
        render("{{ .Input.flag.x }}", DATA)
    with pytest.raises(Unsupported):
        render("{{ .Input.id | upper }}", {"id": "a"})
    with pytest.raises(Unsupported):
        render("{{ .Input.ratio }}", DATA)  # Go would print a float its own way


def test_resolve_order_template_then_key_then_value() -> None:
    assert resolve(src(dataTemplate="{{ .Input.missing.x }}", value="d"), "dep", EVENT) == (
        "d",
        "String",
    )
    assert resolve(src(dataKey="flag", dataTemplate="{{ .Input.nope }}"), "dep", EVENT) == (
        "true",
        "True",
    )
    assert resolve(src(dataKey="no", value="fallback"), "dep", EVENT) == ("fallback", "String")
    assert resolve(src(contextKey="id"), "dep", EVENT) == ("abc123", "String")
    # Data wins over context when a source names both.
    assert resolve(src(contextKey="id", dataKey="flag"), "dep", EVENT)[0] == "true"
    # Another dependency: the default, or nothing.
    assert resolve({"dependencyName": "other", "value": "v"}, "dep", EVENT) == ("v", "String")
    with pytest.raises(ParamError, match="no such value"):
        resolve(src(dataKey="no"), "dep", EVENT)


def test_payload_raw_only_for_json_types_with_use_raw_data() -> None:
    params = [
        {"src": src(dataKey="flag", useRawData=True), "dest": "raw"},
        {"src": src(dataKey="flag"), "dest": "text"},
        {"src": src(dataKey="notification.0.s3", useRawData=True), "dest": "object"},
        {"src": src(dataKey="!true", useRawData=True), "dest": "literal"},
        {"src": src(value="true", useRawData=True), "dest": "value"},
        {"src": src(dataKey="nothing", useRawData=True), "dest": "null"},
    ]
    assert construct_payload(params, "dep", EVENT) == {
        "raw": True,
        "text": "true",
        "object": {"object": {"key": "docs/a.md", "size": 12}},
        "literal": True,
        "value": "true",  # a value is always a string
        "null": None,
    }


def test_resource_parameters_and_operations() -> None:
    resource = {"spec": {"arguments": {"parameters": [{"name": "a", "value": "x"}]}}}
    dest = "spec.arguments.parameters.0.value"
    params = [
        {"src": src(dataKey="flag"), "dest": dest},
        {"src": src(value="pre-"), "dest": dest, "operation": "prepend"},
        {"src": src(value="!"), "dest": dest, "operation": "append"},
        {"src": {"dependencyName": "other"}, "dest": "skipped"},  # no value: nothing written
    ]
    out = apply_params(resource, params, "dep", EVENT)
    assert out["spec"]["arguments"]["parameters"][0]["value"] == "pre-true!"
    assert "skipped" not in out
    assert resource["spec"]["arguments"]["parameters"][0]["value"] == "x"  # a copy was changed


def _filters(*data_filters: dict[str, Any]) -> dict[str, Any]:
    return {"filters": {"data": list(data_filters)}}


def test_string_filters_search_unless_anchored() -> None:
    key = "notification.0.s3.object.key"
    assert check(_filters({"path": key, "type": "string", "value": ["a"]}), DATA) == []
    reasons = check(_filters({"path": key, "type": "string", "value": ["^a"]}), DATA)
    assert reasons == ["notification.0.s3.object.key: 'docs/a.md' does not match '^a'"]
    refused = {"path": key, "type": "string", "value": ["docs"], "comparator": "!="}
    assert check(_filters(refused), DATA) == [
        "notification.0.s3.object.key: holds 'docs', which is refused (in 'docs/a.md')"
    ]
    assert check(_filters({"path": "no.such", "type": "string", "value": [".*"]}), DATA) == [
        "no.such: missing (the event has no such field)"
    ]
    # Any value passing passes the filter; every filter must pass.
    either = {"path": key, "type": "string", "value": ["^x", r"\.md$"]}
    assert check(_filters(either), DATA) == []
    assert len(check(_filters(either, {"path": "no", "type": "string", "value": ["."]}), DATA)) == 1


def test_a_final_dollar_is_the_end_of_the_text_as_in_re2() -> None:
    data = {"key": "docs/a.md\n"}
    assert check(_filters({"path": "key", "type": "string", "value": [r"\.md$"]}), data) != []


def test_filters_it_does_not_implement_are_refused() -> None:
    with pytest.raises(Unsupported):
        check({"filters": {"exprs": [{"expr": "a == 1"}]}}, DATA)
    with pytest.raises(Unsupported):
        check(_filters({"path": "ratio", "type": "number", "value": ["1"]}), DATA)
