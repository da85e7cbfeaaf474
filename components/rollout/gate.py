"""The evaluation gate of a rollout: smoke requests against an application's OpenAI route.

For each side (the model being replaced, measured before the change; the new one, after) it
sends the same requests and measures the success rate, p50/p95 latency and a quality score:
embeddings, recall@k on a small labelled query set (retrieval over its documents by cosine,
through ``components.ingest.retrieval_eval``); reranker, recall@k of its ranking on the same set;
llm, the share of prompts whose completion holds the expected substring. The new side passes
when its success rate, p95 and quality meet the thresholds (parameters). The table is returned
whether the gate passes or not; ``components.rollout.gate_report`` renders it as HTML with plots.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from typing import Any

import httpx

from components.ingest.retrieval_eval import LabelledQuery, evaluate, percentile

# llm: (prompt, expected substring). A random-weight model matches none; a real one, most.
DEFAULT_PROMPTS = (
    ("The capital of France is", "Paris"),
    ("1, 2, 3, 4,", "5"),
    ("The opposite of hot is", "cold"),
)


@dataclass(frozen=True)
class GateThresholds:
    min_success_rate: float = 1.0
    max_p95_ms: float | None = None
    max_quality_drop: float = 0.1  # new quality may be at most this much below the old one
    min_quality: float | None = None  # and, where given, at least this


@dataclass
class SideResult:
    label: str
    requests: int = 0
    failures: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    quality: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return (self.requests - self.failures) / self.requests if self.requests else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "label": self.label,
            "requests": self.requests,
            "failures": self.failures,
            "success_rate": self.success_rate,
            "p50_ms": percentile(ordered, 50),
            "p95_ms": percentile(ordered, 95),
            "quality": self.quality,
            "errors": self.errors[:5],
            # Each successful request's latency, for the report's distribution plots.
            "latencies_ms": [round(ms, 3) for ms in self.latencies_ms],
        }


class _Client:
    """POSTs to one application, counting requests, failures and latency."""

    def __init__(self, base_url: str, side: SideResult, timeout_s: float) -> None:
        self.base = base_url.rstrip("/")
        self.side = side
        self.http = httpx.Client(timeout=timeout_s)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        self.side.requests += 1
        started = time.perf_counter()
        try:
            response = self.http.post(self.base + path, json=body)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self.side.failures += 1
            self.side.errors.append(f"{path}: {exc}"[:300])
            return None
        self.side.latencies_ms.append((time.perf_counter() - started) * 1000)
        return data


def load_labelled_set(path: str | None = None) -> dict[str, Any]:
    """A labelled set ``{"k", "documents": {id: text}, "queries": [{query, relevant}]}``."""
    if path is None:
        text = files("components.rollout").joinpath("data/gate_embeddings.json").read_text()
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    data: dict[str, Any] = json.loads(text)
    return data


def _queries(labelled: dict[str, Any]) -> list[LabelledQuery]:
    return [LabelledQuery(q["query"], tuple(q["relevant"])) for q in labelled["queries"]]


def _embeddings_quality(client: _Client, labelled: dict[str, Any]) -> float:
    ids = list(labelled["documents"])
    reply = client.post("/v1/embeddings", {"input": [labelled["documents"][i] for i in ids]})
    if reply is None:
        return 0.0
    vectors = [row["embedding"] for row in reply["data"]]

    def retrieve(query: str, k: int) -> list[str]:
        answer = client.post("/v1/embeddings", {"input": query})
        if answer is None:
            return []
        q = answer["data"][0]["embedding"]
        scores = [sum(a * b for a, b in zip(q, v, strict=True)) for v in vectors]
        return [ids[i] for i in sorted(range(len(ids)), key=lambda i: -scores[i])[:k]]

    return evaluate(retrieve, _queries(labelled), k=int(labelled["k"]), warmup=False).recall


def _reranker_quality(client: _Client, labelled: dict[str, Any]) -> float:
    ids = list(labelled["documents"])
    documents = [labelled["documents"][i] for i in ids]

    def retrieve(query: str, k: int) -> list[str]:
        answer = client.post("/v1/rerank", {"query": query, "documents": documents, "top_n": k})
        return [] if answer is None else [ids[r["index"]] for r in answer["results"]]

    return evaluate(retrieve, _queries(labelled), k=int(labelled["k"]), warmup=False).recall


def _llm_quality(client: _Client, prompts: tuple[tuple[str, str], ...]) -> float:
    hits = 0
    for prompt, expected in prompts:
        reply = client.post("/v1/completions", {"prompt": prompt, "max_tokens": 8})
        hits += bool(reply and expected in reply["choices"][0]["text"])
        chat = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 8}
        client.post("/v1/chat/completions", chat)  # counted for success and latency only
    return hits / len(prompts)


def measure(
    kind: str,
    base_url: str,
    label: str,
    labelled: dict[str, Any] | None = None,
    rounds: int = 2,
    timeout_s: float = 60.0,
) -> SideResult:
    """Smoke requests against ``base_url`` (the app's route, e.g. ``http://h:8000/embeddings``)."""
    side = SideResult(label)
    client = _Client(base_url, side, timeout_s)
    labelled = labelled or load_labelled_set()
    probes: dict[str, Callable[[], float]] = {
        "embeddings": lambda: _embeddings_quality(client, labelled),
        "reranker": lambda: _reranker_quality(client, labelled),
        "llm": lambda: _llm_quality(client, DEFAULT_PROMPTS),
    }
    if kind not in probes:
        raise ValueError(f"the gate has no probes for application {kind!r}")
    qualities = [probes[kind]() for _ in range(rounds)]
    side.quality = min(qualities)
    return side


@dataclass(frozen=True)
class GateReport:
    app: str
    passed: bool
    rows: list[dict[str, Any]]
    old: dict[str, Any] | None
    new: dict[str, Any]
    thresholds: dict[str, Any]
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = ["| metric | old | new | limit | ok |", "| --- | --- | --- | --- | --- |"]
        for row in self.rows:
            old = "-" if row["old"] is None else f"{row['old']:.3f}"
            ok = "yes" if row["ok"] else "NO"
            lines.append(f"| {row['metric']} | {old} | {row['new']:.3f} | {row['limit']} | {ok} |")
        verdict = "passed" if self.passed else "FAILED: " + "; ".join(self.reasons)
        return "\n".join([*lines, "", f"gate {verdict}"])


def decide(
    app: str, old: SideResult | None, new: SideResult, thresholds: GateThresholds
) -> GateReport:
    """Compare the sides against ``thresholds``: the rows, the decision, the reasons."""
    o, n = (old.summary() if old else None), new.summary()
    min_quality = thresholds.min_quality
    if o is not None:
        relative = o["quality"] - thresholds.max_quality_drop
        min_quality = relative if min_quality is None else max(min_quality, relative)
    checks = [
        ("success_rate", thresholds.min_success_rate, ">="),
        ("p50_ms", None, ""),
        ("p95_ms", thresholds.max_p95_ms, "<="),
        ("quality", min_quality, ">="),
    ]
    rows, reasons = [], []
    for metric, limit, op in checks:
        value = n[metric]
        ok = limit is None or (value >= limit - 1e-9 if op == ">=" else value <= limit)
        rows.append(
            {
                "metric": metric,
                "old": None if o is None else o[metric],
                "new": value,
                "limit": "-" if limit is None else f"{op} {limit:.3f}",
                "ok": ok,
            }
        )
        if not ok:
            reasons.append(f"{metric} {value:.3f} is not {op} {limit:.3f}")
    return GateReport(app, not reasons, rows, o, n, asdict(thresholds), reasons)
