"""The evaluation gate's report: a self-contained HTML page with plots, and a Markdown summary.

One renderer for both gates: the model rollout's (``components.rollout.gate.GateReport``:
success rate, p50/p95, quality) and the embedding rollout's
(``components.ingest.retrieval_eval.GateResult``: recall@k, MRR@k, latency), given as the object
or as its ``to_json()`` (what the rollout result, the history and the stored reports hold).

The page holds the decision with its reasons, the latency distributions old vs new, the quality
metrics side by side and the gate table. Everything is inline (the charts are ``<svg>``
elements, the style a ``<style>`` block) and a Content-Security-Policy forbids any load, so the
page renders the same offline, from a file or as a Kubeflow ``HTML`` artifact.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.rollout.gate_charts import Series

if TYPE_CHECKING:
    from components.settings import Settings

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class GateReportError(ValueError):
    """What was given is not a gate report either gate writes; the message names the field."""


@dataclass(frozen=True)
class GateView:
    """What the page and the Markdown show, the same for both gates."""

    title: str
    passed: bool
    reasons: list[str]
    header: list[str]
    rows: list[list[str]]
    row_ok: list[bool]
    quality_metrics: list[str]
    sides: list[Series]  # old first, when there is one
    thresholds: dict[str, Any]


def gate_view(report: Any, title: str | None = None) -> GateView:
    """Either gate's report (object or JSON) as a GateView; GateReportError when it is neither."""
    data = report.to_json() if hasattr(report, "to_json") else report
    if not isinstance(data, Mapping):
        raise GateReportError(f"a gate report is an object, not {type(data).__name__}")
    try:
        if "app" in data:
            return _rollout_view(data, title)
        if "k" in data:
            return _retrieval_view(data, title)
    except KeyError as exc:
        raise GateReportError(f"the gate report has no {exc.args[0]!r}") from None
    raise GateReportError(
        "not a gate report: expected the rollout gate's fields (app, rows, new) or the "
        f"embedding gate's (k, rows, old, new); got {sorted(data)}"
    )


def _number(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _rollout_view(data: Mapping[str, Any], title: str | None) -> GateView:
    metrics = ["success_rate", "quality"]
    sides = [
        Series(
            side,
            str(data[side].get("label", side)),
            _latencies(data[side]),
            {m: float(data[side][m]) for m in metrics},
        )
        for side in ("old", "new")
        if data.get(side)
    ]
    rows = [
        [r["metric"], _number(r["old"]), _number(r["new"]), str(r["limit"]), _ok(r["ok"])]
        for r in data["rows"]
    ]
    return GateView(
        title=title or f"Rollout gate: {data['app']}",
        passed=bool(data["passed"]),
        reasons=list(data.get("reasons", [])),
        header=["metric", "old", "new", "limit", "ok"],
        rows=rows,
        row_ok=[bool(r["ok"]) for r in data["rows"]],
        quality_metrics=metrics,
        sides=sides,
        thresholds=dict(data.get("thresholds") or {}),
    )


def _retrieval_view(data: Mapping[str, Any], title: str | None) -> GateView:
    k = int(data["k"])
    metrics = {f"recall@{k}": "recall", f"MRR@{k}": "mrr"}
    sides = [
        Series(
            side,
            str(data[side].get("label", side)),
            _latencies(data[side]),
            {name: float(data[side][key]) for name, key in metrics.items()},
        )
        for side in ("old", "new")
    ]
    header, *rows = data["table"]
    return GateView(
        title=title or f"Embedding gate: {sides[0].label} vs {sides[1].label}",
        passed=bool(data["passed"]),
        reasons=list(data.get("reasons", [])),
        header=list(header),
        rows=[list(row) for row in rows],
        row_ok=[bool(r["ok"]) for r in data["rows"]],
        quality_metrics=list(metrics),
        sides=sides,
        thresholds={},
    )


def _latencies(side: Mapping[str, Any]) -> list[float] | None:
    values = side.get("latencies_ms")
    return None if values is None else [float(v) for v in values]


def _ok(ok: Any) -> str:
    return "yes" if ok else "NO"


def _latency_summary(series: Series) -> str:
    from components.ingest.retrieval_eval import percentile

    name = series.side if series.label == series.side else f"{series.side} ({series.label})"
    if series.latencies_ms is None:
        return f"{name}: no latencies recorded"
    values = sorted(series.latencies_ms)
    if not values:
        return f"{name}: no successful requests"
    p50, p95 = percentile(values, 50), percentile(values, 95)
    return f"{name}: {len(values)} answered, p50 {p50:.1f} ms, p95 {p95:.1f} ms"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<title>{{ view.title }}</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fff; max-width: 1100px; }
.decision { padding: 0.6em 1em; border-radius: 4px; font-weight: bold; }
.decision.passed { background: #e3f4e1; border: 1px solid #2e7d32; }
.decision.failed { background: #fbe4e4; border: 1px solid #c62828; }
figure.chart { margin: 1em 0; }
figure.chart svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.failed td { background: #fbe4e4; }
.note { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>{{ view.title }}</h1>
<p class="note">Generated {{ generated }}.</p>
<section id="decision">
<p class="decision {{ 'passed' if view.passed else 'failed' }}">
{% if view.passed %}Gate passed: promote the new model.{% else %}Gate FAILED: roll back.{% endif %}
</p>
{% if view.reasons %}<ul class="reasons">{% for reason in view.reasons %}
<li>{{ reason }}</li>{% endfor %}
</ul>{% endif %}
</section>
<h2>Latency, old vs new</h2>
<figure class="chart" id="latency-chart">{{ latency_svg }}
<figcaption class="note">{% for line in latency_lines %}{{ line }}<br>{% endfor %}</figcaption>
</figure>
<h2>Quality, old vs new</h2>
<figure class="chart" id="quality-chart">{{ quality_svg }}</figure>
<h2>Gate table</h2>
<table id="gate-table">
<thead><tr>{% for cell in view.header %}<th>{{ cell }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in rows %}
<tr class="{{ 'ok' if row.ok else 'failed' }}">
{%- for cell in row.cells %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</tbody>
</table>
{% if view.thresholds %}<h2>Thresholds</h2>
<table id="thresholds">{% for name, value in view.thresholds.items() %}
<tr><td>{{ name }}</td><td>{{ '-' if value is none else value }}</td></tr>{% endfor %}
</table>{% endif %}
</body>
</html>
"""


def render_gate_report(report: Any, title: str | None = None) -> str:
    """The HTML page of either gate's report (see the module docstring)."""
    from jinja2 import Environment
    from markupsafe import Markup

    from components.rollout.gate_charts import latency_svg, quality_svg

    view = gate_view(report, title)
    template = Environment(autoescape=True).from_string(_PAGE)
    return template.render(
        csp=CSP,
        view=view,
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        # Markup: matplotlib's own SVG, put in the page as it is (its text is drawn as paths).
        latency_svg=Markup(latency_svg(view.sides)),
        quality_svg=Markup(quality_svg(view.quality_metrics, view.sides)),
        latency_lines=[_latency_summary(s) for s in view.sides],
        rows=[{"cells": c, "ok": ok} for c, ok in zip(view.rows, view.row_ok, strict=True)],
    )


def write_gate_report(report: Any, path: str | Path, title: str | None = None) -> Path:
    """Write the HTML page to ``path`` (a KFP ``Output[HTML]``'s path, say); returns it."""
    target = Path(path)
    page = render_gate_report(report, title)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


def gate_markdown(report: Any, title: str | None = None) -> str:
    """The decision, its reasons, the latency figures and the table, as Markdown."""
    view = gate_view(report, title)
    verdict = "passed: promote" if view.passed else "FAILED: roll back"
    lines = [f"## {view.title}", "", f"**Gate {verdict}**", ""]
    if view.reasons:
        lines += [*(f"- {reason}" for reason in view.reasons), ""]
    lines += ["| " + " | ".join(view.header) + " |", "|" + " --- |" * len(view.header)]
    lines += ["| " + " | ".join(row) + " |" for row in view.rows]
    lines += ["", "Latency:", ""]
    lines += [f"- {_latency_summary(s)}" for s in view.sides]
    return "\n".join(lines) + "\n"


def store_gate_report(report: Any, name: str, version: str, settings: Settings) -> str:
    """Write the HTML page next to the model's rollout history
    (``<store>/<name>/gate-reports/<time>-<version>.html``, local or S3); returns its URI."""
    from components.rollout.history import history_uri
    from components.storage.objects import write_text

    folder = history_uri(name, settings).rsplit("/", 1)[0]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    uri = f"{folder}/gate-reports/{stamp}-{version}.html"
    write_text(uri, render_gate_report(report), settings)
    return uri
