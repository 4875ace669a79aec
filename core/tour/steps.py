"""Guided tours: a story of steps kept as data (YAML or JSON), checked against a catalog, and run through the
same services the studio's pages use — nothing recorded. A step that cannot run on the catalog (no audio, no
stored evaluation, no ground truth) is skipped with a note; a tour naming an item the catalog lacks is
refused with a message naming the step.

Step kinds: catalog (covers, a clip, the modalities and encoders), query (stages that add text, a cover, a
clip), explain (why an item of the last query ranked), feedback (👍/👎 on items of the last query, re-ranked),
proof (the fusion model against the baselines with paired CIs; on the demo, faithfulness to the generator's
truth), import (bringing one's own data).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.catalog.model import Catalog
from core.errors import PrismError
from core.tour.schema import Step, Tour, check_tour


class StepSkipped(Exception):
    """A step that cannot run on this catalog; the message is the note shown instead."""


# -- outcomes -------------------------------------------------------------------------------------------
@dataclass
class CatalogOutcome:
    covers: list[str]  # item ids with a cover, for the grid
    clip: str | None  # an item id with a clip
    modalities: dict[str, int]  # modality -> items carrying it
    encoder_ids: dict[str, str]  # field -> encoder id
    n_users: int
    n_interactions: int


@dataclass
class QueryStage:
    label: str
    query: Any  # core.serving.service.Query
    encoded: Any  # core.serving.service.EncodedQuery
    result: Any  # core.serving.service.RecommendationResult


@dataclass
class QueryOutcome:
    stages: list[QueryStage]
    notes: list[str]

    @property
    def last(self) -> QueryStage:
        return self.stages[-1]


@dataclass
class ExplainOutcome:
    explanation: Any  # core.explain.service.Explanation
    sentences: list[str]
    stage: QueryStage


@dataclass
class FeedbackOutcome:
    liked: list[str]
    disliked: list[str]
    query: Any
    encoded: Any
    result: Any  # re-ranked, with previous ranks
    sentence: str


@dataclass
class ProofOutcome:
    runs: list[dict[str, Any]]
    paired: list[tuple[str, str, Any]]  # (name A, name B, paired rows)
    protocol: str
    sentences: list[str]
    metric: str
    faithfulness: dict[str, Any] | None


@dataclass
class ImportOutcome:
    commands: list[str]
    columns: list[str]


@dataclass
class TourContext:
    """What steps run against: the catalog and lazily made services (the page passes its cached ones)."""

    catalog: Catalog
    embeddings: Any
    model: Any
    store: Any
    recommend_service: Callable[[], Any]
    explain_service: Callable[[], Any]
    ground_truth: dict[str, Any] | None = None
    k: int = 10


class TourRun:
    """Runs a tour's steps on demand (a step's inputs first: explain and feedback need the last query)."""

    def __init__(self, tour: Tour, ctx: TourContext) -> None:
        check_tour(tour, ctx.catalog)
        self.tour = tour
        self.ctx = ctx
        self.outcomes: dict[int, Any] = {}  # step index -> outcome or StepSkipped
        self.text_overrides: dict[tuple[int, int], str] = {}  # (step, stage) -> edited text

    def set_text(self, step: int, stage: int, text: str) -> None:
        """Edit a query stage's text: the step and every step after it run again."""
        if self.text_overrides.get((step, stage)) != text:
            self.text_overrides[(step, stage)] = text
            for i in [i for i in self.outcomes if i >= step]:
                del self.outcomes[i]

    def outcome(self, index: int) -> Any:
        """The step's outcome (computed once); a StepSkipped instance when it cannot run."""
        if index not in self.outcomes:
            step = self.tour.steps[index]
            try:
                self.outcomes[index] = getattr(self, f"_run_{step.kind}")(index, step)
            except StepSkipped as e:
                self.outcomes[index] = e
        return self.outcomes[index]

    def _last_query(self, index: int) -> QueryOutcome:
        for j in range(index - 1, -1, -1):
            if self.tour.steps[j].kind == "query":
                out = self.outcome(j)
                if isinstance(out, QueryOutcome):
                    return out
        raise StepSkipped("No query ran before this step, so there is nothing to work on.")

    # -- the kinds ------------------------------------------------------------------------------------
    def _run_catalog(self, index: int, step: Step) -> CatalogOutcome:
        catalog = self.ctx.catalog
        wanted = step.options.get("covers", 12)
        with_cover = [i.id for i in catalog.items if i.image and catalog.media_path(i.image)]
        if isinstance(wanted, list):
            covers = [i for i in wanted if i in with_cover]
        else:
            counts = catalog.interactions["item_id"].astype(str).value_counts() if len(catalog.interactions) else {}
            covers = sorted(with_cover, key=lambda i: -int(counts.get(i, 0)))[:int(wanted)]
        clip = step.options.get("clip")
        if clip is None or not catalog.item(clip).audio:
            clip = next((i.id for i in catalog.items if i.audio), None)
        inter = catalog.interactions
        return CatalogOutcome(covers=covers, clip=clip,
                              modalities={m: n for m, n in catalog.modalities_present().items() if n},
                              encoder_ids=dict(self.ctx.embeddings.encoder_ids),
                              n_users=int(inter["user_id"].nunique()) if len(inter) else 0, n_interactions=len(inter))

    def _run_query(self, index: int, step: Step) -> QueryOutcome:
        from core.serving.service import Query, Upload

        service = self.ctx.recommend_service()
        catalog = self.ctx.catalog
        text, images, audio = "", [], []
        stages, notes = [], []
        for j, st in enumerate(step.stages):
            label = {"image": "a cover", "audio": "a clip"}
            usable = True
            for kind, ref in (("image", st.image), ("audio", st.audio)):
                if ref is None:
                    continue
                item = catalog.item(ref)
                path = catalog.media_path(getattr(item, kind))
                if kind not in service.modalities or path is None or not Path(path).is_file():
                    why = (f"the model has no {kind} modality" if kind not in service.modalities
                           else f"{item.id} has no {kind} file")
                    notes.append(f"Stage “{st.label}” skipped: {label[kind]} cannot be used here ({why}).")
                    usable = False
            if not usable:
                continue
            if st.text is not None:
                text = self.text_overrides.get((index, j), st.text)
            if st.image:
                path = catalog.media_path(catalog.item(st.image).image)
                images = [*images, Upload(f"{st.image} cover{Path(path).suffix}", Path(path).read_bytes())]
            if st.audio:
                path = catalog.media_path(catalog.item(st.audio).audio)
                audio = [*audio, Upload(f"{st.audio} clip{Path(path).suffix}", Path(path).read_bytes())]
            query = Query(text=text, images=list(images), audio=list(audio))
            try:
                encoded = service.encode_query(query)
                result = service.recommend(encoded, k=int(step.options.get("k", self.ctx.k)))
            except PrismError as e:
                notes.append(f"Stage “{st.label}” skipped: {e}")
                continue
            stages.append(QueryStage(st.label, query, encoded, result))
        if not stages:
            raise StepSkipped(" ".join(notes) or "No stage of this query could run on this catalog.")
        return QueryOutcome(stages=stages, notes=notes)

    def _pick(self, ref: Any, result: Any) -> str:
        """An item id from a rank (1-based, in `result`) or an id."""
        if isinstance(ref, int):
            if ref > len(result.items):
                raise StepSkipped(f"The last query returned {len(result.items)} items, fewer than rank {ref}.")
            return result.items[ref - 1].item_id
        return str(ref)

    def _run_explain(self, index: int, step: Step) -> ExplainOutcome:
        from core.explain.narration import sentences_for

        last = self._last_query(index).last
        item_id = self._pick(step.options.get("item", 1), last.result)
        exp = self.ctx.explain_service().explain(last.encoded, item_id)
        title = self.ctx.catalog.item(item_id).title
        return ExplainOutcome(explanation=exp, stage=last, sentences=sentences_for(title, exp))

    def _run_feedback(self, index: int, step: Step) -> FeedbackOutcome:
        from core.explain.narration import feedback_sentence
        from core.serving.service import apply_feedback

        last = self._last_query(index).last
        liked = [self._pick(r, last.result) for r in step.options.get("like") or []]
        disliked = [self._pick(r, last.result) for r in step.options.get("dislike") or []]
        if not liked and not disliked:
            raise StepSkipped("This feedback step names no item to like or dislike.")
        query = last.query
        for item_id in liked:
            query = apply_feedback(query, item_id, True)
        for item_id in disliked:
            query = apply_feedback(query, item_id, False)
        service = self.ctx.recommend_service()
        encoded = service.encode_query(query)
        result = service.recommend(encoded, k=len(last.result.items), previous=last.result)
        title = self.ctx.catalog.item
        moves = [(title(r.item_id).title, r.previous_rank, r.rank) for r in result.items]
        return FeedbackOutcome(liked=liked, disliked=disliked, query=query, encoded=encoded, result=result,
                               sentence=feedback_sentence(moves, [title(i).title for i in liked],
                                                          [title(i).title for i in disliked]))

    def _run_proof(self, index: int, step: Step) -> ProofOutcome:
        from core.explain.narration import comparison_sentence, protocol_sentence
        from core.report.data import latest_runs, paired_against_fusion

        runs = latest_runs(self.ctx.store, self.ctx.catalog.name)
        if not runs:
            raise StepSkipped(f"No evaluation of {self.ctx.catalog.name!r} is stored yet: start one on the "
                              "Evaluate page (on the demo one is computed in the background at first start).")
        metric = str(step.options.get("metric", "ndcg@10"))
        paired = paired_against_fusion(self.ctx.store, runs)
        sentences = []
        for name_a, name_b, rows in paired:
            row = rows[rows["name"] == metric]
            if len(row):
                sentences.append(comparison_sentence(name_a, name_b, row.iloc[0].to_dict()))
        faith = None
        if self.ctx.ground_truth is not None and step.options.get("faithfulness", True):
            from core.explain.check import run_check

            try:
                faith = run_check(self.ctx.catalog, self.ctx.embeddings, self.ctx.model,
                                  max_listeners=int(step.options.get("listeners", 30)),
                                  service=self.ctx.recommend_service())
            except PrismError:
                faith = None
        return ProofOutcome(runs=runs, paired=paired, protocol=protocol_sentence(runs[0]), sentences=sentences,
                            metric=metric, faithfulness=faith)

    def _run_import(self, index: int, step: Step) -> ImportOutcome:
        return ImportOutcome(
            commands=["python -m core import manifest my-catalog.zip --name mine",
                      "python -m core train --catalog mine",
                      "python -m core report --catalog mine --query \"…\" --out mine.html"],
            columns=["id", "title", "text", "image", "audio"])

    # -- the report of the tour ----------------------------------------------------------------------
    def report(self) -> Any:
        """ReportData of every step run so far: narration, the last ranking, the explained items, the runs."""
        from core.explain.narration import query_noun
        from core.report.data import (ReportData, ReportSection, explained_from, items_from_result,
                                      query_from)

        ctx = self.ctx
        record = ctx.store.active_model(ctx.catalog.name) or {}
        data = ReportData(catalog=ctx.catalog.name, model_id=record.get("id", ""),
                          encoder_ids=dict(ctx.embeddings.encoder_ids),
                          title=f"{self.tour.title} · {ctx.catalog.name}")
        for i, step in enumerate(self.tour.steps):
            out = self.outcome(i)
            paragraphs = [p for p in (step.narration,) if p]
            if isinstance(out, StepSkipped):
                paragraphs.append(f"Skipped: {out}")
            elif isinstance(out, QueryOutcome):
                data.query, data.items = query_from(out.last.query), items_from_result(out.last.result)
                paragraphs += out.notes
            elif isinstance(out, ExplainOutcome):
                noun = query_noun(out.stage.query)  # "your text, image and clip", as the page names it
                data.explained.append(explained_from(ctx.catalog, out.explanation, noun))
            elif isinstance(out, FeedbackOutcome):
                paragraphs.append(out.sentence)
                data.query, data.items = query_from(out.query), items_from_result(out.result)
            elif isinstance(out, ProofOutcome):
                paragraphs += [out.protocol, *out.sentences]
                data.runs, data.paired, data.faithfulness = out.runs, out.paired, out.faithfulness
            data.sections.append(ReportSection(f"{i + 1}. {step.title}", paragraphs))
        return data
