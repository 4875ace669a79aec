"""What the recommend service returns: ranked items with their weights, Shapley shares and named terms."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Recommendation:
    """One ranked item.

    `contributions[m]` is modality m's exact Shapley share of the score; `terms` holds the named additive
    terms beside the modalities (the popularity prior of a content query: weight × prior_i), which are also
    their own Shapley values. score = base + Σ contributions + Σ terms, where `base` is the rest of the score
    with every modality masked (the id embedding; for a known listener also the learned item bias).
    """

    item_id: str
    title: str
    rank: int  # 1-based
    score: float
    modality_weights: dict[str, float]  # the gate's (or the what-if) weights, summing to 1 over present ones
    contributions: dict[str, float]
    previous_rank: int | None = None  # rank in the previous result, None when new or without one
    base: float = 0.0  # v(∅) less the named terms: the part of the score no modality or term explains
    history: float = 0.0  # listening history: base − offset, what the ids, the graph and the collaborative term give
    offset: float = 0.0  # the item's own score offset (a known listener's learned bias; 0 otherwise): base = offset + history
    terms: dict[str, float] = field(default_factory=dict)  # e.g. {"prior": w · prior_i}
    lacks: list[str] = field(default_factory=list)  # what-if modalities (weight > 0) the item does not carry
    similarity: dict[str, float] = field(default_factory=dict)  # per uploaded modality: λ · ω_m · sim_m(i),
    # the part of contributions[m] that is the similarity to the upload (core.serving.similarity)


@dataclass
class RecommendationResult:
    """The top K items of one query and how long it took."""

    items: list[Recommendation]
    latency_ms: float  # encode_ms + rank_ms
    encode_ms: float  # turning uploads and items into the query vector (0 when re-ranking)
    rank_ms: float  # scoring, top-k search, weights and contributions
    query_modalities: list[str]
    warnings: list[str]
    encoder_ids: dict[str, str]  # field -> encoder id used for the catalog and the query
    index_kind: str = "exact"  # "exact" | "hnsw" | "parts" or "model" (what-if weights: see top_rows)
    encoding: str = "encoded"  # "encoded" (encode_ms is this result's encoding) | "reused" (an encoded query)
    prior_weight: float | None = None  # the popularity prior's weight; None when the learned bias applies
    item_offset: str = ""  # which item offset applies, in words (the card and the page say it)
    notes: list[str] = field(default_factory=list)  # e.g. how many items lack the what-if modalities
    similarity_weight: float | None = None  # λ of the similarity to the upload; None when it does not apply
    protocol: dict[str, str] = field(default_factory=dict)  # how it was ranked, in words (settings.ranking_card)
