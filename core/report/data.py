"""What a report holds, as plain data, and how it is gathered from the services and the runs store."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.catalog.model import Catalog
from core.errors import PrismError
from core.store.database import Store


class ReportError(PrismError):
    """A report cannot be made from what was asked (an unknown run, nothing to report)."""


@dataclass
class ReportMedia:
    """An uploaded file of the query: its name and bytes (inlined when small)."""

    name: str
    data: bytes


@dataclass
class ReportQuery:
    """The query a report's ranking answers."""

    text: str = ""
    images: list[ReportMedia] = field(default_factory=list)
    audio: list[ReportMedia] = field(default_factory=list)
    liked: list[str] = field(default_factory=list)  # item ids
    disliked: list[str] = field(default_factory=list)  # item ids
    user_id: str | None = None


@dataclass
class ReportItem:
    """One ranked item: its score, modality shares (gate weights) and Shapley contributions."""

    item_id: str
    rank: int
    score: float
    modality_weights: dict[str, float]
    contributions: dict[str, float]
    previous_rank: int | None = None


@dataclass
class ExplainedItem:
    """One explained item: the waterfall numbers, its named-feature and word SHAP, and the sentences."""

    item_id: str
    score: float
    base_value: float
    shapley: dict[str, float]
    features: pd.DataFrame  # modality, field, group, feature, value, shap
    tokens: pd.DataFrame  # token, shap
    sentences: list[str] = field(default_factory=list)
    terms: dict[str, float] = field(default_factory=dict)  # named score terms (e.g. the popularity prior)
    term_labels: dict[str, str] = field(default_factory=dict)
    history: float | None = None  # the listening-history term, when the model has one (part of base_value)


@dataclass
class ReportSection:
    """A narrated section (a tour step): a heading and plain paragraphs."""

    heading: str
    paragraphs: list[str]


@dataclass
class ReportData:
    """Everything one HTML report shows; the renderer (core.report.render) turns it into one file."""

    catalog: str
    model_id: str
    encoder_ids: dict[str, str]
    title: str = "Prism report"
    created_at: float = field(default_factory=time.time)
    query: ReportQuery | None = None
    items: list[ReportItem] = field(default_factory=list)
    explained: list[ExplainedItem] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)  # stored run records
    paired: list[tuple[str, str, pd.DataFrame]] = field(default_factory=list)  # (label A, label B, rows)
    sections: list[ReportSection] = field(default_factory=list)
    faithfulness: dict[str, Any] | None = None  # core.explain.check.run_check on the demo


def items_from_result(result: Any) -> list[ReportItem]:
    """The ranked items of a core.serving.service.RecommendationResult."""
    return [ReportItem(item_id=r.item_id, rank=r.rank, score=float(r.score),
                       modality_weights={m: float(v) for m, v in r.modality_weights.items()},
                       contributions={m: float(v) for m, v in r.contributions.items()},
                       previous_rank=r.previous_rank) for r in result.items]


def query_from(query: Any) -> ReportQuery:
    """A core.serving.service.Query as report data."""
    return ReportQuery(text=query.text, images=[ReportMedia(u.name, u.data) for u in query.images],
                       audio=[ReportMedia(u.name, u.data) for u in query.audio], liked=list(query.liked),
                       disliked=list(query.disliked), user_id=query.user_id)


def explained_from(catalog: Catalog, explanation: Any, noun: str = "your upload") -> ExplainedItem:
    """A core.explain.service.Explanation as report data, with its plain sentences; the query is named by `noun`
    ("your text", ... from core.explain.narration.query_noun), as the studio's pages name it."""
    from core.explain.narration import name_query, sentences_for

    shapley = {m: float(v) for m, v in explanation.modality_shapley.items()}
    terms = {t: float(v) for t, v in (getattr(explanation, "terms", None) or {}).items()}
    labels = {t: name_query(label, noun)
              for t, label in dict(getattr(explanation, "term_labels", None) or {}).items()}
    history = float(getattr(explanation, "history", 0.0) or 0.0)
    title = catalog.item(explanation.item_id).title
    sentences = [name_query(s, noun) for s in sentences_for(title, explanation)]  # every part, adding up
    return ExplainedItem(item_id=explanation.item_id, score=float(explanation.score),
                         base_value=float(explanation.base_value), shapley=shapley,
                         features=explanation.feature_shap, tokens=explanation.token_shap, sentences=sentences,
                         terms=terms, term_labels=labels, history=history if abs(history) > 1e-9 else None)


def latest_runs(store: Store, catalog: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """The run `run_id` (ReportError when unknown), else the newest run of each model of the catalog
    under one protocol (data, split, target, masking rule): the newest protocol whose runs put a fusion model
    beside another model, so the table compares like with like and its paired comparisons exist."""
    from core.evaluation.runs import _records

    if run_id is not None:
        records = _records(store, run_ids=[run_id])
        if not records:
            raise ReportError(f"no run with id {run_id!r}; list them with `python -m core runs list "
                              f"--catalog {catalog}`")
        return records
    records = [r for r in _records(store, catalog) if "cold" not in str(r.get("protocol", {}).get("split", ""))]
    if not records:
        return []
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in records:  # newest first: each group keeps the newest run of each model
        groups.setdefault(_split_key(r), {}).setdefault(r.get("name"), r)
    # the newest group that puts a fusion model beside another model, else simply the newest group
    comparable = [g for g in groups.values() if len(g) > 1 and
                  any(r.get("model", {}).get("kind") == "fusion" for r in g.values())]
    return list((comparable or list(groups.values()))[0].values())


def _split_key(record: dict[str, Any]) -> tuple:
    """What two runs must share to be compared: data, split, target and masking rule."""
    from core.evaluation.runs import mask_of

    p = record.get("protocol", {})
    return (p.get("split"), p.get("split_seed"), p.get("target"), mask_of(record),
            record.get("dataset", {}).get("content_hash"))


def paired_against_fusion(store: Store, runs: list[dict[str, Any]]) -> list[tuple[str, str, pd.DataFrame]]:
    """Paired comparisons (core.evaluation.runs.paired_comparison) of the first fusion run against every other run."""
    from core.evaluation.runs import paired_comparison

    fusion = next((r for r in runs if r.get("model", {}).get("kind") == "fusion"), None)
    if fusion is None:
        return []
    out = []
    for other in runs:
        if other is fusion:
            continue
        try:
            rows = paired_comparison(store, other["id"], fusion["id"])
        except PrismError:
            continue  # stored without per-user values, or on other data: nothing paired to show
        out.append((str(other.get("name")), str(fusion.get("name")), rows))
    return out


def build_report(store: Store, catalog_name: str, query_text: str | None = None, run_id: str | None = None,
                 explain_top: int = 3, k: int = 10, encoders: dict[str, Any] | None = None) -> ReportData:
    """A report of a stored catalog: the active model's ranking of `query_text` with its top
    `explain_top` items explained, and the stored evaluation runs (or the one `run_id`)."""
    from core.limits import check_option
    from core.workspace.prepare import load_active_model, load_embeddings

    k = int(check_option("report_k", k, "k (ranked items listed)"))
    explain_top = int(check_option("explain", explain_top, "the number of items explained"))
    catalog = store.load_catalog(catalog_name)
    embeddings = load_embeddings(store, catalog)
    model = load_active_model(store, catalog, embeddings) if embeddings is not None else None
    record = store.active_model(catalog_name) or {}
    data = ReportData(catalog=catalog.name, model_id=record.get("id", ""),
                      encoder_ids=dict(embeddings.encoder_ids) if embeddings is not None else {},
                      title=f"Prism report · {catalog.name}")
    if query_text:
        if model is None:
            raise ReportError(f"catalog {catalog.name!r} has no embeddings or active model to rank with; "
                              f"run `python -m core train --catalog {catalog.name}` first")
        from core.explain.service import ExplainService
        from core.serving.service import Query, RecommendService

        if encoders is None:
            from core.encoders.factory import EncoderConfig, build_encoders

            encoders = build_encoders(EncoderConfig.from_env())
        service = RecommendService(catalog, embeddings, model, encoders)
        encoded = service.encode_query(Query(text=query_text))
        result = service.recommend(encoded, k=k)
        data.query = query_from(encoded.query)
        data.items = items_from_result(result)
        explainer = ExplainService(service)
        data.explained = [explained_from(catalog, explainer.explain(encoded, r.item_id), "your text")
                          for r in result.items[:explain_top]]
    data.runs = latest_runs(store, catalog.name, run_id)
    if run_id is None:
        data.paired = paired_against_fusion(store, data.runs)
    if not data.items and not data.runs:
        raise ReportError(f"nothing to report on {catalog.name!r}: give --query TEXT, or store an evaluation "
                          f"first (`python -m core evaluate --catalog {catalog.name}`)")
    return data
