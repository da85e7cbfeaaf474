"""Roll a new embedding model out behind a Milvus alias: build, gate, promote or roll back.

1. Checks that change nothing: the query set, the new model (it loads, and makes vectors of the
   dimension it reports), the live generation's model (the gate needs it), the sources, the
   query set's sources present in the live collection; then the lock (one rollout per alias).
2. A plain collection named like the alias is adopted as generation 0 (``adopt.py``).
3. The next generation is created (state ``building``) or, after a crash, resumed, and filled by
   the ingestion job with the new model; catch-up passes follow until one changes nothing. The
   alias serves the live generation all the while.
4. The gate: recall@k, MRR@k and query latency of old and new side by side.
5. Passed: one ``alter_alias`` switches every reader at once; one more pass catches up what
   reached the old generation meanwhile; ``keep`` previous generations stay, older ones go.
   Failed: the alias stays where it was (checked), the candidate is dropped, or kept as
   ``failed`` with ``keep_failed`` (until the next rollout of the alias).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from components.embedding_rollout.adopt import adopt_plain_collection
from components.embedding_rollout.lock import RolloutLock
from components.embedding_rollout.models import (
    PROMOTED,
    ROLLED_BACK,
    RolloutParams,
    RolloutRefusedError,
    RolloutReport,
)
from components.embedding_rollout.passes import build, ingest_pass, measure, retain, store_report
from components.ids import doc_id_for
from components.ingest.generations import (
    BUILDING,
    FAILED,
    PREFIX,
    READY,
    Generation,
    ModelUnavailableError,
    alias_target,
    drop_generation,
    embedder_for,
    generation_name,
    generations,
    next_number,
    read_generation,
    same_model,
)
from components.ingest.retrieval_eval import GateResult, GateRow, GateThresholds, gate
from components.ingest.retrieval_eval import read_query_set as read_queries
from components.settings import Settings, get_settings
from components.storage.milvus import ChunkStore

if TYPE_CHECKING:
    from components.ingest.embedders import Embedder
    from components.ingest.models import DocumentIssue
    from components.ingest.retrieval_eval import LabelledQuery
    from components.ingest.run import ProgressCallback
    from components.ingest.sources import DocumentRef


def rollout_embeddings(
    params: RolloutParams,
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    progress: ProgressCallback | None = None,
) -> RolloutReport:
    """Roll ``params.model`` out behind ``params.alias``; the report says promoted or rolled
    back. Refusals (RolloutRefusedError and other ValueErrors) change nothing readers see."""
    settings = settings or get_settings()
    started = time.perf_counter()
    queries = read_queries(params.queries)
    new = embedder or embedder_for(params.model, settings)
    probe = new.embed(["what dimension do you make?"])[0]
    if len(probe) != new.dimension:
        raise RolloutRefusedError(
            f"model {params.model!r} reports {new.dimension}-dimensional embeddings but makes "
            f"{len(probe)}-dimensional ones"
        )
    alias = params.alias or settings.collection
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    uri = params.milvus_uri or settings.milvus_uri
    store = ChunkStore(uri, alias, token=token, create=False, index_type=settings.milvus_index_type)
    try:
        lock = RolloutLock(store.client, alias, settings.embedding_rollout_lock_ttl_s)
        lock.acquire()
        try:
            report = _Rollout(params, settings, store, lock, new, queries, progress).run()
        finally:
            lock.release()
    finally:
        store.close()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


class _Rollout:
    def __init__(
        self,
        params: RolloutParams,
        settings: Settings,
        store: ChunkStore,
        lock: RolloutLock,
        new: Embedder,
        queries: list[LabelledQuery],
        progress: ProgressCallback | None,
    ) -> None:
        self.params, self.settings, self.store, self.lock = params, settings, store, lock
        self.client = store.client
        self.alias = store.alias or store.collection
        self.new, self.queries, self.progress = new, queries, progress
        self.token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
        self.dropped: list[str] = []

    def run(self) -> RolloutReport:
        live, plain = self._live()
        if same_model(live.model, self.new.name) and live.dimension == self.new.dimension:
            if live.state == BUILDING and not plain:
                return self._finish_switch(live)  # a crash between the switch and the rest
            raise RolloutRefusedError(
                f"alias {self.alias!r} already serves {live.model!r} ({live.name}): nothing "
                "to roll out"
            )
        old = self._embedder_of(live)
        sources = self.params.sources or list(live.sources)
        if not sources:
            raise RolloutRefusedError(
                f"collection {live.name!r} records no sources (it was made before aliases): "
                "name them with --source"
            )
        self._check_queries(live)
        adopted = None
        if plain:
            found = adopt_plain_collection(
                self.client, self.store.uri, self.alias, live.model, live.dimension
            )
            assert found is not None
            live, adopted = found, found.name
            self.store.retarget(found.name)
        candidate, resumed = self._candidate(live)
        report = RolloutReport(
            outcome=ROLLED_BACK,
            alias=self.alias,
            previous=live.name,
            previous_model=live.model,
            candidate=candidate,
            model=self.new.name,
            dimension=self.new.dimension,
            live=live.name,
            adopted=adopted,
            resumed=resumed,
            sources=sources,
            dropped=self.dropped,
        )
        self._build_and_gate(report, live, old)
        store_report(report, self.settings)
        return report

    def _live(self) -> tuple[Generation, bool]:
        """The generation the alias serves, or a plain collection to adopt (True), unchanged."""
        target = alias_target(self.client, self.alias)
        if target is not None:
            found = read_generation(self.client, target)
            if found is None:
                raise RolloutRefusedError(
                    f"alias {self.alias!r} points at {target!r}, which records no model "
                    "(llmw.* properties): not a generation llm-workflows made"
                )
            self.store.retarget(target)
            return found, False
        orphan = [g for g in generations(self.client, self.alias) if g.number == 0]
        if orphan:  # an adoption that stopped before the alias: finished after the checks
            self.store.retarget(orphan[0].name)
            return orphan[0], True
        if not self.client.has_collection(self.alias):
            raise RolloutRefusedError(
                f"no alias or collection {self.alias!r} in {self.store.uri}: ingest first"
            )
        self.store.retarget(self.alias)
        model = self.settings.embedding_model  # what a plain collection was presumably made with
        return Generation(self.alias, self.alias, 0, model, self.store.dimension()), True

    def _embedder_of(self, live: Generation) -> Embedder:
        try:
            return embedder_for(live.model, self.settings)
        except ModelUnavailableError as exc:
            raise RolloutRefusedError(
                f"the live collection {live.name!r} was embedded with {live.model!r}, which the "
                f"gate needs to compare with and which is not available here: {exc}"
            ) from exc

    def _check_queries(self, live: Generation) -> None:
        """Every source the query set names must be a document of the live collection."""
        wanted = sorted({uri for q in self.queries for uri in q.relevant})
        self.client.load_collection(self.store.manifest)
        states = self.store.document_states([doc_id_for(uri) for uri in wanted])
        missing = [uri for uri in wanted if doc_id_for(uri) not in states]
        if missing:
            listed = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise RolloutRefusedError(
                f"the query set names {len(missing)} source{'s' * (len(missing) != 1)} that "
                f"{live.name!r} does not hold "
                f"(give source URIs as `llmw search --json` prints them): {listed}"
            )

    def _candidate(self, live: Generation) -> tuple[str, bool]:
        """The generation to build: one an earlier run of this model left (resumed), else a
        new one. Other unfinished or failed generations of the alias are dropped (listed in
        self.dropped)."""
        existing = generations(self.client, self.alias)
        stale = [g for g in existing if g.name != live.name and g.state in (BUILDING, FAILED)]
        resume = next(
            (
                g
                for g in reversed(stale)
                if g.state == BUILDING
                and same_model(g.model, self.new.name)
                and g.dimension == self.new.dimension
            ),
            None,
        )
        for generation in stale:
            if generation is not resume:
                drop_generation(self.client, generation.name)
                self.dropped.append(generation.name)
        if resume is not None:
            return resume.name, True
        number = next_number(existing)
        generation = Generation(
            name=generation_name(self.alias, self.new.name, number),
            alias=self.alias,
            number=number,
            model=self.new.name,
            dimension=self.new.dimension,
            state=BUILDING,
            created_at=int(time.time()),
        )
        candidate = ChunkStore(
            self.store.uri, generation.name, self.token, index_type=self.settings.milvus_index_type
        )
        try:
            candidate.ensure(self.new.dimension, generation.properties())
        finally:
            candidate.close()
        return generation.name, False

    def _tick(self, outcome: str, ref: DocumentRef) -> None:
        self.lock.renew()
        if self.progress is not None:
            self.progress(outcome, ref)

    def _build_and_gate(self, report: RolloutReport, live: Generation, old: Embedder) -> None:
        failures = build(report, self.settings, self.store.uri, self.new, self._tick)
        report.failures = [f.model_dump() for f in failures]
        self.lock.renew()
        result = self._gate(report, live, old, failures)
        report.gate, report.table = result.to_json(), result.markdown()
        summary = {
            "passed": result.passed,
            "k": result.k,
            "recall": round(result.new.recall, 4),
            "mrr": round(result.new.mrr, 4),
            "previous": live.name,
        }
        if result.passed or self.params.keep_failed:
            state = {} if result.passed else {PREFIX + "state": FAILED}
            self.client.alter_collection_properties(
                report.candidate, properties={PREFIX + "gate": json.dumps(summary), **state}
            )
        if result.passed:
            self._promote(report)
        else:
            self._roll_back(report, live)

    def _gate(
        self,
        report: RolloutReport,
        live: Generation,
        old: Embedder,
        failures: list[DocumentIssue],
    ) -> GateResult:
        sides = [(live.name, old), (report.candidate, self.new)]
        old_m, new_m = measure(self.store.uri, self.token, sides, self.queries, self.params.top_k)
        # Documents the live collection holds that the new one failed to ingest.
        self.client.load_collection(self.store.manifest)
        held = self.store.document_states([doc_id_for(f.source_uri) for f in failures])
        lost = sum(1 for f in failures if doc_id_for(f.source_uri) in held)
        thresholds = GateThresholds(
            max_recall_drop=self.params.max_recall_drop,
            max_mrr_drop=self.params.max_mrr_drop,
            max_p95_latency_ms=self.params.max_p95_latency_ms,
        )
        checks = [GateRow("documents missing", 0, lost, "<= 0", lost == 0, digits=0)]
        return gate(old_m, new_m, thresholds, live.name, report.candidate, checks)

    def _promote(self, report: RolloutReport) -> None:
        self.client.alter_alias(report.candidate, self.alias)  # every reader switches at once
        self._after_switch(report)

    def _after_switch(self, report: RolloutReport) -> None:
        self.client.alter_collection_properties(
            report.candidate,
            properties={PREFIX + "state": READY, PREFIX + "promoted_at": str(int(time.time()))},
        )
        report.outcome, report.live = PROMOTED, report.candidate
        if report.sources:
            args = (self.store.uri, report.candidate, report.sources, self.settings, self.new)
            report.after_switch, _ = ingest_pass(*args, self._tick, prune=True)
        report.kept, dropped = retain(self.client, self.alias, self.params.keep)
        report.dropped += dropped

    def _roll_back(self, report: RolloutReport, live: Generation) -> None:
        if alias_target(self.client, self.alias) != live.name:
            self.client.alter_alias(live.name, self.alias)
        if not self.params.keep_failed:
            drop_generation(self.client, report.candidate)
            report.dropped.append(report.candidate)
        report.outcome, report.live = ROLLED_BACK, live.name

    def _finish_switch(self, live: Generation) -> RolloutReport:
        """The alias already serves this model's generation, still marked building: a run
        stopped between the switch and what follows it. Finish that."""
        previous = [g for g in generations(self.client, self.alias) if g.name != live.name]
        before = max(previous, key=lambda g: g.number) if previous else live
        report = RolloutReport(
            outcome=PROMOTED,
            alias=self.alias,
            previous=before.name,
            previous_model=before.model,
            candidate=live.name,
            model=live.model,
            dimension=live.dimension,
            live=live.name,
            resumed=True,
            sources=self.params.sources or list(live.sources),
        )
        self._after_switch(report)
        store_report(report, self.settings)
        return report
