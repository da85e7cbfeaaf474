"""The gate's HTML report: self-contained, both gates, and its charts rendered by headless
Chromium (the bars measured in the browser's own layout, their pixels in its screenshot)."""

from __future__ import annotations

import html
import json
import random
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from components.embedding_rollout.models import RolloutReport
from components.embedding_rollout.passes import store_report
from components.ingest.retrieval_eval import GateThresholds as RetrievalThresholds
from components.ingest.retrieval_eval import LabelledQuery, evaluate, gate
from components.rollout import gate as rollout_gate
from components.rollout.gate_charts import SERIES_COLORS
from components.rollout.gate_report import (
    GateReportError,
    gate_markdown,
    render_gate_report,
    store_gate_report,
    write_gate_report,
)
from testing import chromium

WINDOW = (1280, 1700)
# Appended to a copy of the page: reports what the browser laid out for each chart element.
PROBE = """<script>
const out = {charts: {}, items: {}};
for (const fig of document.querySelectorAll("figure.chart")) {
  const svg = fig.querySelector(":scope > svg");
  const r = svg && svg.getBoundingClientRect();
  out.charts[fig.id] = r ? {w: r.width, h: r.height, paths: svg.querySelectorAll("path").length}
                         : null;
}
for (const g of document.querySelectorAll("figure.chart g[id]")) {
  if (!/^(latency|quality)-/.test(g.id)) continue;
  const r = g.getBoundingClientRect(), b = g.getBBox(), path = g.querySelector("path");
  out.items[g.id] = {x: r.x, y: r.y, w: r.width, h: r.height, bw: b.width, bh: b.height,
                     fill: path ? getComputedStyle(path).fill : null};
}
const pre = document.createElement("pre");
pre.id = "probe";
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


@pytest.fixture(scope="module")
def browser() -> str:
    found = chromium.find_chromium()
    if found is None:
        pytest.skip(
            "chromium not installed (/usr/bin/chromium, or CHROMIUM_BIN): the gate report's "
            "charts were NOT checked in a browser; `apt-get install chromium` (.ci/run does)"
        )
    return found


def rollout_report(new_failures: int = 1) -> rollout_gate.GateReport:
    """The model-rollout gate on known latencies: old ~20 ms, new ~32 ms and worse quality."""
    rng = random.Random(7)
    old = rollout_gate.SideResult(
        "old", requests=40, latencies_ms=[rng.gauss(20, 3) for _ in range(40)], quality=0.875
    )
    new = rollout_gate.SideResult(
        "new",
        requests=40,
        failures=new_failures,
        latencies_ms=[rng.gauss(32, 5) for _ in range(40 - new_failures)],
        quality=0.625,
    )
    thresholds = rollout_gate.GateThresholds(max_p95_ms=60.0, max_quality_drop=0.1)
    return rollout_gate.decide("embeddings", old, new, thresholds)


def embedding_gate_result() -> Any:
    """The embedding rollout's gate on two real evaluations, the new side slower and worse."""
    docs = [f"file:///docs/{n}.md" for n in "abcdefgh"]
    queries = [LabelledQuery(f"q{i}", (docs[i],)) for i in range(8)]

    def retriever(delay_s: float, misses: int) -> Any:
        def retrieve(query: str, k: int) -> list[str]:
            i = int(query[1:])
            time.sleep(delay_s * (1 + i / 2))  # a spread of latencies, as real queries have
            return [docs[(i + 1) % 8], docs[i]] if i < misses else [docs[i]]

        return retrieve

    old = evaluate(retriever(0.002, 2), queries, k=3)
    new = evaluate(retriever(0.006, 5), queries, k=3)
    return gate(
        old, new, RetrievalThresholds(0.05, 0.05), "documents__minilm__1", "documents__e5__2"
    )


class _Refs(HTMLParser):
    """Every tag name and every attribute that could load something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "data") and value:
                self.refs.append(value)


def check_charts_render(
    browser: str, page: Path, tmp_path: Path, sides: list[str], quality: dict[str, list[float]]
) -> dict[str, Any]:
    """Open ``page`` in Chromium: both charts laid out, each side's latency bars and CDF
    drawn, the quality bars as tall as their values say, and the bars' pixels in the
    screenshot in their side's colour. Returns the probe."""
    probed = tmp_path / "probed.html"
    # The page's policy forbids scripts: the copy allows inline ones for the probe.
    csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
    text = re.sub(
        r'(http-equiv="Content-Security-Policy" content=)"[^"]*"', rf'\1"{csp}"', page.read_text()
    )
    probed.write_text(text.replace("</body>", PROBE + "</body>"))
    dom = chromium.dump_dom(browser, probed, WINDOW)
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, "the probe script did not run"
    probe = json.loads(html.unescape(match.group(1)))
    for chart in ("latency-chart", "quality-chart"):
        laid_out = probe["charts"][chart]
        assert laid_out and laid_out["w"] > 400 and laid_out["h"] > 150, (chart, laid_out)
    items = probe["items"]
    for side in sides:
        bars = [v for k, v in items.items() if k.startswith(f"latency-{side}-bar-") and v["h"] > 1]
        assert len(bars) >= 3, f"{side}: {len(bars)} latency bars drawn"
        cdf = items[f"latency-{side}-cdf"]
        assert cdf["bw"] > 20 and cdf["bh"] > 20, cdf
    for metric, values in quality.items():
        heights = [items[f"quality-{side}-bar-{metric}"]["h"] for side in sides]
        for side, height, value in zip(sides, heights, values, strict=True):
            assert height > 0 if value > 0 else height == 0, (metric, side, height)
        if values[0] > 0:
            assert heights[-1] / heights[0] == pytest.approx(values[-1] / values[0], rel=0.03)
    png = chromium.screenshot(browser, page, tmp_path / "page.png", WINDOW)
    checked = _check_bar_pixels(png, items)
    assert checked >= 2 * len(quality) + 3 * len(sides), f"only {checked} bars seen on screen"
    return probe


def _check_bar_pixels(png: Path, items: dict[str, Any]) -> int:
    """Each bar big enough to hit has its side's colour at its centre; how many were checked."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    checked = 0
    for key, box in items.items():
        side = next((s for s in SERIES_COLORS if f"-{s}-bar-" in key), None)
        if side is None or box["w"] < 4 or box["h"] < 4:
            continue
        centre = (int(box["x"] + box["w"] / 2), int(box["y"] + box["h"] / 2))
        assert centre[1] < image.height, f"{key} is below the screenshot"
        want = tuple(int(SERIES_COLORS[side][i : i + 2], 16) for i in (1, 3, 5))
        got = image.getpixel(centre)
        assert all(abs(a - b) <= 8 for a, b in zip(got, want, strict=True)), (key, got, want)
        checked += 1
    return checked


def test_the_rollout_gate_report_renders_its_charts_in_chromium(
    browser: str, tmp_path: Path
) -> None:
    report = rollout_report()
    page = write_gate_report(report, tmp_path / "out" / "gate.html")
    assert page == tmp_path / "out" / "gate.html"
    check_charts_render(
        browser,
        page,
        tmp_path,
        ["old", "new"],
        {"success_rate": [1.0, 39 / 40], "quality": [0.875, 0.625]},
    )


def test_the_embedding_gate_report_renders_from_its_stored_json(
    browser: str, tmp_path: Path
) -> None:
    result = embedding_gate_result()
    assert not result.passed
    # What the embedding rollout stores (GateResult.to_json), round-tripped through JSON.
    data = json.loads(json.dumps(result.to_json()))
    page = write_gate_report(data, tmp_path / "gate.html")
    text = page.read_text()
    assert "documents__minilm__1" in text and "MRR@3" in text
    check_charts_render(
        browser,
        page,
        tmp_path,
        ["old", "new"],
        {
            "recall-3": [result.old.recall, result.new.recall],
            "MRR-3": [result.old.mrr, result.new.mrr],
        },
    )


def test_a_first_rollout_without_an_old_side_renders_the_new_one(
    browser: str, tmp_path: Path
) -> None:
    rng = random.Random(3)
    new = rollout_gate.SideResult(
        "new", requests=20, latencies_ms=[rng.uniform(5, 15) for _ in range(20)], quality=1.0
    )
    report = rollout_gate.decide("llm", None, new, rollout_gate.GateThresholds())
    page = write_gate_report(report, tmp_path / "gate.html")
    probe = check_charts_render(
        browser, page, tmp_path, ["new"], {"success_rate": [1.0], "quality": [1.0]}
    )
    assert not any(key.startswith(("latency-old", "quality-old")) for key in probe["items"])


def test_the_page_is_self_contained_and_holds_the_decision_and_the_table(
    tmp_path: Path,
) -> None:
    page_html = render_gate_report(rollout_report())
    parser = _Refs()
    parser.feed(page_html)
    # Nothing to load: no scripts, stylesheets, images or frames; references stay in the page.
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parser.tags)
    assert all(ref.startswith(("#", "data:")) for ref in parser.refs), parser.refs
    assert "url(http" not in page_html and "@import" not in page_html
    assert "Content-Security-Policy" in page_html
    assert "content=\"default-src 'none'; style-src" in html.unescape(page_html)
    assert parser.tags.count("svg") == 2
    assert "Gate FAILED: roll back." in page_html
    assert "quality 0.625 is not &gt;= 0.775" in page_html
    assert "<td>p95_ms</td>" in page_html and "<td>&lt;= 60.000</td>" in page_html
    assert re.search(r'id="latency-old-cdf"', page_html) and re.search(
        r'id="quality-new-bar-', page_html
    )


def test_a_side_without_latencies_says_so_instead_of_an_empty_chart() -> None:
    new = rollout_gate.SideResult("new", requests=3, failures=3)
    page_html = render_gate_report(
        rollout_gate.decide("llm", None, new, rollout_gate.GateThresholds())
    )
    assert "no successful requests" in page_html and 'id="latency-new-bar-' not in page_html
    stored = embedding_gate_result().to_json()
    for side in ("old", "new"):
        del stored[side]["latencies_ms"]  # reports stored before the gate kept them
    older = render_gate_report(stored)
    assert "no latencies recorded" in older and 'id="quality-new-bar-recall-3"' in older


def test_the_markdown_holds_the_decision_reasons_table_and_latency() -> None:
    text = gate_markdown(rollout_report())
    assert text.startswith("## Rollout gate: embeddings\n")
    assert "**Gate FAILED: roll back**" in text
    assert "- quality 0.625 is not >= 0.775" in text
    assert "| quality | 0.875 | 0.625 | >= 0.775 | NO |" in text
    assert re.search(r"- new: 39 answered, p50 \d+\.\d ms, p95 \d+\.\d ms", text)
    passed = gate_markdown(embedding_gate_result().to_json(), title="t")
    assert "| recall@3 |" in passed and "| latency p95 ms |" in passed


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ([1, 2], "not list"),
        ({"rows": []}, "not a gate report"),
        ({"app": "llm", "passed": True, "new": {"success_rate": 1.0, "quality": 1}}, "'rows'"),
        ({"k": 3, "passed": True, "rows": []}, "'old'"),
    ],
)
def test_what_is_not_a_gate_report_is_refused_naming_the_field(given: Any, words: str) -> None:
    with pytest.raises(GateReportError, match=words):
        render_gate_report(given)


def test_the_embedding_rollout_stores_the_html_next_to_its_json(
    tmp_path: Path, make_settings: Any
) -> None:
    settings = make_settings(run_data_uri=str(tmp_path / "runs"))
    result = embedding_gate_result()
    report = RolloutReport(
        outcome="rolled_back",
        alias="documents",
        previous="documents__minilm__1",
        previous_model="all-MiniLM-L6-v2",
        candidate="documents__e5__2",
        model="e5-small",
        dimension=384,
        live="documents__minilm__1",
        gate=result.to_json(),
        table=result.markdown(),
    )
    uri = store_report(report, settings)
    stored = json.loads(Path(uri).read_text())
    assert stored["gate_report_uri"] == uri.removesuffix(".json") + ".html"
    page_html = Path(stored["gate_report_uri"]).read_text()
    assert "Embedding rollout gate: documents, all-MiniLM-L6-v2 -&gt; e5-small" in page_html
    assert len(stored["gate"]["new"]["latencies_ms"]) == 8


def test_the_ray_local_report_lands_next_to_the_history(tmp_path: Path, make_settings: Any) -> None:
    settings = make_settings(model_store_uri=str(tmp_path / "store"))
    uri = store_gate_report(rollout_report().to_json(), "minilm", "v2", settings)
    path = Path(uri)
    assert path.parent == tmp_path / "store" / "minilm" / "gate-reports"
    assert path.name.endswith("-v2.html") and "Rollout gate: embeddings" in path.read_text()


def test_a_missing_chromium_is_reported_not_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM_BIN", "/nonexistent/chromium")
    assert chromium.find_chromium() is None


def test_a_browser_past_its_timeout_is_killed_with_its_whole_group(
    browser: str, tmp_path: Path
) -> None:
    import psutil

    page = tmp_path / "hang.html"
    page.write_text("<html><body><script>while (true) {}</script></body></html>")
    started = time.monotonic()
    with pytest.raises(chromium.ChromiumError, match="ran past 3 s"):
        chromium.dump_dom(browser, page, timeout_s=3)
    assert time.monotonic() - started < 20
    # Renderers, zygotes and utilities all carry the temporary profile; none may be left.
    left = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "llmw-chromium-" in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            left.append((process.pid, cmdline[:120]))
    assert left == []
