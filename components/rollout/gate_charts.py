"""The gate report's charts as inline SVG: latency distributions and quality metrics, old vs new.

Drawn with matplotlib's SVG backend (no pyplot, so no global state and no display), text drawn
as paths so the page needs no font, and a fixed hash salt so the same report renders the same
bytes. Every bar and curve carries an ``id`` (``<chart>-<side>-...``) that a test can find.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# One colour per side, solid (no transparency), so a screenshot shows exactly these pixels.
SERIES_COLORS = {"old": "#4c72b0", "new": "#dd8452"}
MIN_BINS, MAX_BINS = 12, 30


@dataclass(frozen=True)
class Series:
    """One side of the gate: ``side`` is old or new, ``label`` what the legend names it."""

    side: str
    label: str
    latencies_ms: Sequence[float] | None = None  # None: the report recorded none
    quality: dict[str, float] = field(default_factory=dict)


def slug(text: str) -> str:
    """A name usable in an element id: ``recall@5`` -> ``recall-5``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _percentile(values: Sequence[float], pct: float) -> float:
    from components.ingest.retrieval_eval import percentile

    return percentile(sorted(values), pct)


def _legend_label(series: Series) -> str:
    return series.side if series.label == series.side else f"{series.side}: {series.label}"


def latency_svg(sides: Sequence[Series]) -> str:
    """Histogram and empirical CDF of each side's request latencies (ms), on shared bins."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    hist_ax, cdf_ax = fig.subplots(1, 2)
    drawn = [s for s in sides if s.latencies_ms]
    if not drawn:
        recorded = any(s.latencies_ms is not None for s in sides)
        note = "no successful requests" if recorded else "the report records no latencies"
        for ax in (hist_ax, cdf_ax):
            ax.text(0.5, 0.5, note, ha="center", va="center")
            ax.set_axis_off()
        return _svg(fig, "latency")
    arrays = [np.asarray(s.latencies_ms, dtype=float) for s in drawn]
    values = np.concatenate(arrays)
    edges = np.histogram_bin_edges(values, bins="auto")
    if not MIN_BINS <= len(edges) - 1 <= MAX_BINS:
        bins = MIN_BINS if len(edges) - 1 < MIN_BINS else MAX_BINS
        edges = np.histogram_bin_edges(values, bins=bins)
    _, _, containers = hist_ax.hist(
        arrays,
        bins=edges,
        color=[SERIES_COLORS[s.side] for s in drawn],
        label=[_legend_label(s) for s in drawn],
    )
    # hist returns a single container, not a list of them, when given one data set.
    groups = containers if len(drawn) > 1 else [containers]
    for series, group in zip(drawn, groups, strict=True):
        for i, patch in enumerate(group):
            patch.set_gid(f"latency-{series.side}-bar-{i}")
    hist_ax.set(title="latency distribution", xlabel="latency (ms)", ylabel="requests")
    hist_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    hist_ax.legend()
    for series, array in zip(drawn, arrays, strict=True):
        ordered = np.sort(array)
        share = np.arange(1, len(ordered) + 1) / len(ordered)
        color = SERIES_COLORS[series.side]
        cdf_ax.step(ordered, share, where="post", color=color, linewidth=2.5)[0].set_gid(
            f"latency-{series.side}-cdf"
        )
        p95 = _percentile(ordered.tolist(), 95)
        cdf_ax.axvline(p95, color=color, linestyle="--", linewidth=1.2).set_gid(
            f"latency-{series.side}-p95"
        )
        cdf_ax.annotate(f"p95 {p95:.1f}", (p95, 0.05), color=color, rotation=90, ha="right")
    cdf_ax.set(title="cumulative share (p95 dashed)", xlabel="latency (ms)", ylim=(0, 1.02))
    return _svg(fig, "latency")


def quality_svg(metrics: Sequence[str], sides: Sequence[Series]) -> str:
    """Bars of each quality metric, the sides next to each other, values written on top."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(sides))
    top = 1.0
    for i, series in enumerate(sides):
        heights = [float(series.quality.get(m, 0.0)) for m in metrics]
        top = max([top, *heights])
        offset = (i - (len(sides) - 1) / 2) * width
        bars = ax.bar(
            x + offset,
            heights,
            width,
            color=SERIES_COLORS[series.side],
            label=_legend_label(series),
        )
        for metric, patch in zip(metrics, bars, strict=True):
            patch.set_gid(f"quality-{series.side}-bar-{slug(metric)}")
        ax.bar_label(bars, fmt="%.3f", padding=2)
    ax.set_xticks(x, list(metrics))
    ax.set(title="quality metrics, old vs new", ylim=(0, top * 1.15))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "quality")


def _svg(fig: Figure, salt: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), deterministic for the same input."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"llmw-{salt}", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]
