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

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.catalog.model import Catalog
from core.errors import PrismError
from core.limits import nesting_depth
from core.store.paths import REPO_ROOT

TOURS_DIR = REPO_ROOT / "assets" / "tours"
KINDS = ("catalog", "query", "explain", "feedback", "proof", "import")


class TourError(PrismError):
    """A tour file that cannot be used: unreadable, an unknown step kind, or an item the catalog lacks."""


class StepSkipped(Exception):
    """A step that cannot run on this catalog; the message is the note shown instead."""


@dataclass
class Stage:
    """One stage of a query step: what it adds to the query so far."""

    label: str
    text: str | None = None  # replaces the text
    image: str | None = None  # an item id: its cover is uploaded
    audio: str | None = None  # an item id: its clip is uploaded


@dataclass
class Step:
    """One step of a tour."""

    kind: str
    title: str
    narration: str = ""  # shown on screen
    notes: str = ""  # presenter notes (hideable)
    options: dict[str, Any] = field(default_factory=dict)  # the kind's own settings
    stages: list[Stage] = field(default_factory=list)  # query steps


@dataclass
class Tour:
    """A named list of steps."""

    title: str
    steps: list[Step]
    description: str = ""
    source: str = ""


# -- loading and checking ------------------------------------------------------------------------------
# A tour file is read whole and checked against the schema below before anything runs: its size and nesting
# are bounded, YAML aliases are refused (one alias-of-aliases line can expand to gigabytes), and every field
# of every step is checked for its type and range; every problem is named with its step and field.
MAX_TOUR_BYTES = 256 * 1024  # a tour is a page of text; the shipped one is 3 KB
MAX_TOUR_DEPTH = 6  # tour → steps → step → stages → stage → value
MAX_STEPS = 50
MAX_STAGES = 10
MAX_LISTED = 48  # covers named in a catalog step, ranks or ids in like/dislike
MAX_RANK = 100  # a rank in the last query's results (its k is at most this)
MAX_LISTENERS = 500  # listeners sampled by a proof step's faithfulness check
MAX_PROBLEMS_SHOWN = 12


class _Problem(Exception):
    """One field of a tour that breaks the schema: what it should be."""


def _text(limit: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _Problem(f"expected text, got {_shown(value)} (put it in quotes)")
        if len(value) > limit:
            raise _Problem(f"{len(value):,} characters, at most {limit:,}")
        return value
    return check


def _whole(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Problem(f"expected a whole number from {low} to {high}, got {_shown(value)}")
        return value
    return check


def _item_id(value: Any) -> str:
    """An item id: text, or a number read as the id it spells ("5")."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and not value):
        raise _Problem(f"expected an item id, got {_shown(value)}")
    text = str(value)
    if len(text) > 200:
        raise _Problem(f"an item id of {len(text):,} characters, at most 200")
    return text


def _rank_or_id(value: Any) -> int | str:
    """A rank in the last query's results (1, 2, …) or an item id (text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_RANK:
            raise _Problem(f"a rank goes from 1 to {MAX_RANK}, got {value}")
        return value
    if isinstance(value, str) and value:
        return _item_id(value)
    raise _Problem(f"expected a rank (1 to {MAX_RANK}) or an item id, got {_shown(value)}")


def _rank_or_id_list(value: Any) -> list[int | str]:
    if not isinstance(value, list):
        value = [value]
    if len(value) > MAX_LISTED:
        raise _Problem(f"{len(value)} entries, at most {MAX_LISTED}")
    return [_rank_or_id(v) for v in value]


def _covers(value: Any) -> int | list[str]:
    """How many covers (the most played first) or which ones (item ids)."""
    if isinstance(value, list):
        if len(value) > MAX_LISTED:
            raise _Problem(f"{len(value)} covers, at most {MAX_LISTED}")
        return [_item_id(v) for v in value]
    try:
        return _whole(0, MAX_LISTED)(value)
    except _Problem:
        raise _Problem(f"expected a number of covers from 0 to {MAX_LISTED} or a list of item ids, "
                       f"got {_shown(value)}") from None


PROOF_METRICS = ("recall", "ndcg", "precision", "map", "hit_rate")  # kept per run at every K


def _metric(value: Any) -> str:
    import re

    match = re.fullmatch(r"([a-z_]+)@([1-9][0-9]{0,2})", value) if isinstance(value, str) else None
    if match is None or match[1] not in PROOF_METRICS or int(match[2]) > 500:
        raise _Problem(f"expected a metric at K such as ndcg@10 or recall@20 (one of {', '.join(PROOF_METRICS)}, "
                       f"K from 1 to 500), got {_shown(value)}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Problem(f"expected true or false, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "…"


TOUR_FIELDS: dict[str, Callable[[Any], Any]] = {"title": _text(200), "description": _text(4000)}
STEP_FIELDS: dict[str, Callable[[Any], Any]] = {"title": _text(200), "narration": _text(4000),
                                                "notes": _text(4000)}
STAGE_FIELDS: dict[str, Callable[[Any], Any]] = {"label": _text(100), "text": _text(1000), "image": _item_id,
                                                 "audio": _item_id}
KIND_FIELDS: dict[str, dict[str, Callable[[Any], Any]]] = {  # each kind's own settings (Step.options)
    "catalog": {"covers": _covers, "clip": _item_id},
    "query": {"k": _whole(1, MAX_RANK)},  # and its stages
    "explain": {"item": _rank_or_id},
    "feedback": {"like": _rank_or_id_list, "dislike": _rank_or_id_list},
    "proof": {"metric": _metric, "listeners": _whole(1, MAX_LISTENERS), "faithfulness": _flag},
    "import": {},
}


def _tour_loader() -> type:
    """A safe YAML loader that refuses aliases and bounds nesting while it composes (before any expansion)."""
    import yaml

    class TourLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise TourError(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed "
                                "in a tour; write the value out where it is used")
            self.depth += 1
            if self.depth > MAX_TOUR_DEPTH:
                raise TourError(f"line {self.peek_event().start_mark.line + 1}: nested more than {MAX_TOUR_DEPTH} "
                                "levels deep; a tour is a list of steps, each a mapping of fields")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return TourLoader


def _parse(text: str, source: str) -> Any:
    if source.lower().endswith(".json"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise TourError(f"tour {source}: not valid JSON ({e})") from e
        except RecursionError:
            raise TourError(f"tour {source}: nested more than {MAX_TOUR_DEPTH} levels deep") from None
        if nesting_depth(raw) > MAX_TOUR_DEPTH:
            raise TourError(f"tour {source}: nested {nesting_depth(raw)} levels deep, at most {MAX_TOUR_DEPTH}; a "
                            "tour is a list of steps, each a mapping of fields")
        return raw
    import yaml

    try:
        return yaml.load(text, Loader=_tour_loader())  # noqa: S506 (a SafeLoader subclass)
    except TourError as e:
        raise TourError(f"tour {source}, {e}") from None
    except yaml.YAMLError as e:
        raise TourError(f"tour {source}: not valid YAML ({e})") from e


def _label(i: int, raw: Any) -> str:
    title = raw.get("title") if isinstance(raw, dict) else None
    kind = raw.get("kind") if isinstance(raw, dict) else None
    name = title if isinstance(title, str) and title else kind if isinstance(kind, str) and kind else "untitled"
    return f"step {i + 1} ({name[:60]})"


def _check_fields(raw: dict[str, Any], spec: dict[str, Callable[[Any], Any]], where: str, what: str,
                  problems: list[str], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of `raw` checked against `spec` (problems appended, named by `where`), unknown ones named."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in skip:
            continue
        if key not in spec:
            known = ", ".join(spec) or "no settings of its own"
            problems.append(f"{where}: unknown field {_shown(key)} ({what} takes {known})")
            continue
        try:
            out[key] = spec[key](value)
        except _Problem as e:
            problems.append(f"{where}, field {key}: {e}")
    return out


def _as_bytes_checked(text: str | bytes, source: str) -> str:
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", errors="replace"))
    if size > MAX_TOUR_BYTES:
        raise TourError(f"tour {source}: {size / 1024:,.0f} KB, over the {MAX_TOUR_BYTES // 1024} KB limit of a "
                        "tour file")
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TourError(f"tour {source}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    return text


def parse_tour(text: str | bytes, source: str = "tour.yaml") -> Tour:
    """A tour from YAML or JSON text or bytes (JSON when `source` ends in .json), checked whole against the
    schema (TOUR_FIELDS, STEP_FIELDS, KIND_FIELDS, STAGE_FIELDS); TourError lists every problem by step and
    field."""
    raw = _parse(_as_bytes_checked(text, source), source)
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list) or not raw["steps"]:
        raise TourError(f"tour {source}: expected a mapping with a non-empty list under 'steps'")
    if len(raw["steps"]) > MAX_STEPS:
        raise TourError(f"tour {source}: {len(raw['steps'])} steps, at most {MAX_STEPS}")
    problems: list[str] = []
    head = _check_fields(raw, TOUR_FIELDS, "the tour", "a tour", problems, skip=("steps",))
    steps = []
    for i, s in enumerate(raw["steps"]):
        if not isinstance(s, dict):
            problems.append(f"step {i + 1}: expected a mapping with at least 'kind' and 'title', got {_shown(s)}")
            continue
        where = _label(i, s)
        kind = s.get("kind")
        if kind not in KINDS:
            problems.append(f"{where}: unknown kind {_shown(kind)}; use one of {', '.join(KINDS)}")
            continue
        article = "an" if kind[0] in "aeiou" else "a"
        checked = _check_fields(s, {**STEP_FIELDS, **KIND_FIELDS[kind]}, where, f"{article} {kind} step", problems,
                                skip=("kind", "stages") if kind == "query" else ("kind",))
        common = {k: v for k, v in checked.items() if k in STEP_FIELDS}
        options = {k: v for k, v in checked.items() if k in KIND_FIELDS[kind]}
        stages = []
        raw_stages = s.get("stages")
        if kind == "query":
            if not isinstance(raw_stages, list) or not raw_stages:
                problems.append(f"{where}, field stages: a query step needs a list of stages (text, image or audio)")
                raw_stages = []
            elif len(raw_stages) > MAX_STAGES:
                problems.append(f"{where}, field stages: {len(raw_stages)} stages, at most {MAX_STAGES}")
                raw_stages = []
            for j, st in enumerate(raw_stages):
                at = f"{where}, stage {j + 1}"
                if not isinstance(st, dict) or not ({"text", "image", "audio"} & set(st)):
                    problems.append(f"{at}: give text, image or audio")
                    continue
                fields_ok = _check_fields(st, STAGE_FIELDS, at, "a stage", problems)
                stages.append(Stage(label=fields_ok.get("label") or f"stage {j + 1}", text=fields_ok.get("text"),
                                    image=fields_ok.get("image"), audio=fields_ok.get("audio")))
        steps.append(Step(kind=kind, title=common.get("title") or kind, narration=common.get("narration", ""),
                          notes=common.get("notes", ""), options=options, stages=stages))
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        raise TourError(f"tour {source} does not fit the tour schema ({len(problems)} problem"
                        f"{'s' if len(problems) > 1 else ''}): " + "; ".join(shown)
                        + (f"; and {more} more" if more else ""))
    return Tour(title=head.get("title") or "Tour", description=head.get("description", ""), steps=steps,
                source=source)


def load_tour(path: str | Path) -> Tour:
    """A tour from a .yaml, .yml or .json file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_TOUR_BYTES:
            raise TourError(f"tour file {path.name}: over the {MAX_TOUR_BYTES // 1024} KB limit of a tour file")
        data = path.read_bytes()
    except OSError as e:
        raise TourError(f"tour file {path.name} cannot be read ({e.strerror})") from e
    return parse_tour(data, path.name)


def available_tours(folder: Path = TOURS_DIR) -> dict[str, Path]:
    """Tour files shipped with the studio: file stem -> path."""
    return {p.stem: p for p in sorted(folder.glob("*")) if p.suffix.lower() in (".yaml", ".yml", ".json")}


def referenced_items(step: Step) -> list[str]:
    """Every item id a step names (ranks, given as numbers, are not ids)."""
    ids = [s for st in step.stages for s in (st.image, st.audio) if s]
    for key in ("clip", "item"):
        value = step.options.get(key)
        if isinstance(value, str):
            ids.append(value)
    for key in ("covers", "like", "dislike"):
        value = step.options.get(key)
        if isinstance(value, list):
            ids += [v for v in value if isinstance(v, str)]
    return ids


def check_tour(tour: Tour, catalog: Catalog) -> None:
    """TourError naming the step when a step names an item `catalog` does not hold."""
    known = set(catalog.item_ids)
    for i, step in enumerate(tour.steps):
        missing = [x for x in referenced_items(step) if x not in known]
        if missing:
            raise TourError(f"tour {tour.source}, step {i + 1} ({step.title}): item {missing[0]!r} is not in "
                            f"catalog {catalog.name!r} ({len(known)} items, e.g. {catalog.item_ids[:3]}); "
                            "use ids from the Catalog page, or ranks (1, 2, …) of the last query's results")
        for key in ("like", "dislike"):
            for v in step.options.get(key) or []:
                if not isinstance(v, (str, int)) or (isinstance(v, int) and v < 1):
                    raise TourError(f"tour {tour.source}, step {i + 1} ({step.title}): {key} takes item ids or "
                                    f"ranks ≥ 1, not {v!r}")


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
