"""The tour file: a story of steps kept as data (YAML or JSON), parsed with every field checked and bounded, and
checked against a catalog (a tour naming an item the catalog lacks is refused with a message naming the step).
core.tour.steps runs a checked tour.

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



def tour_sentence(folder: Path | None = None) -> str | None:
    """The first sentence a shipped tour ranks the catalog for (the demo tour's, when it is there): the
    studio's showcase query, on Home, in `python -m core warm` and `report`, and in the benchmarks."""
    tours = available_tours(folder or TOURS_DIR)
    for name in sorted(tours, key=lambda n: n != "demo"):
        try:
            tour = load_tour(tours[name])
        except PrismError:
            continue
        for step in tour.steps:
            text = next((s.text for s in getattr(step, "stages", ()) or () if s.text), None)
            if text:
                return text
    return None

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
