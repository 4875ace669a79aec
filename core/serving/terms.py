"""The named terms of a query's scores beside the modalities: which item offset applies (a known listener's
learned bias, else the popularity prior), the similarity to an upload inside each uploaded modality, "items
like your upload", the closest match, and a known listener's collaborative history term."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.serving.prior import LEARNED_BIAS_LABEL, PRIOR, PRIOR_LABEL, ScoreTerm, check_prior_weight
from core.serving.query import EncodedQuery
from core.serving.scoring import ItemScorer
from core.serving.similarity import (CLOSEST, CLOSEST_LABEL, LIKE, LIKE_LABEL, check_closest_weight,
                                     check_like_weight, check_similarity_weight, closest_match, like_upload)


class QueryTerms:
    """The terms of one catalog's queries at the service's weights: the popularity prior's w, the similarity
    to the upload's λ, "items like your upload"'s μ and the closest match's κ (each can be overridden per
    query)."""

    def __init__(self, scorer: ItemScorer, model: Any, prior_weight: float, similarity_weight: float,
                 like_weight: float, closest_weight: float) -> None:
        self.scorer = scorer
        self.model = model
        self.modalities = scorer.modalities
        self.prior_weight = check_prior_weight(prior_weight)
        self.similarity_weight = check_similarity_weight(similarity_weight)
        self.like_weight = check_like_weight(like_weight)
        self.closest_weight = check_closest_weight(closest_weight)

    def offset_coefficients(self, encoded: EncodedQuery, prior_weight: float | None = None) -> tuple[float, float]:
        """(a, w): the query scores q · v_i + a · bias_i + w · prior_i. A known listener keeps the learned bias
        (1, 0); any other query gets the popularity prior instead (0, prior weight)."""
        if encoded.known_listener:
            return 1.0, 0.0
        return 0.0, self.prior_weight if prior_weight is None else check_prior_weight(prior_weight)

    def score_terms(self, encoded: EncodedQuery, prior_weight: float | None = None,
                    like_weight: float | None = None,
                    modality_weights: dict[str, float] | None = None,
                    closest_weight: float | None = None) -> list[ScoreTerm]:
        """The named additive terms of this query's scores: the popularity prior for a content query (and
        "items like your upload" and the "closest match to your upload" for an upload query), none for a
        known listener (whose learned bias stays in the base). Under what-if weights the items like the
        upload and the closest match are found through the weighted modalities only, so a modality at weight
        0 adds nothing through these terms either. `closest_weight` overrides the service's κ (0 leaves the
        term out)."""
        if encoded.known_listener:
            return []
        _, w = self.offset_coefficients(encoded, prior_weight)
        terms = [ScoreTerm(PRIOR, PRIOR_LABEL, w, self.scorer.prior)]
        if encoded.like is not None:
            mu = self.like_weight if like_weight is None else check_like_weight(like_weight)
            like = encoded.like
            similarity = encoded.similarity
            if modality_weights is not None and encoded.similarity is not None:
                omega = np.array([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
                similarity = encoded.similarity * omega[None, :]
                like = like_upload(similarity, self.scorer.unit_item_vectors, unit_items=True)
            terms.append(ScoreTerm(LIKE, LIKE_LABEL, mu, like))
            kappa = self.closest_weight if closest_weight is None else check_closest_weight(closest_weight)
            if kappa > 0 and similarity is not None:
                terms.append(ScoreTerm(CLOSEST, CLOSEST_LABEL, kappa, closest_match(similarity)))
        return terms

    @staticmethod
    def term_extra(terms: Sequence[ScoreTerm]) -> np.ndarray | None:
        """(I,) the named terms other than the prior (which the index carries), summed; None when none."""
        parts = [t.part() for t in terms if t.name != PRIOR]
        return np.sum(parts, axis=0) if parts else None

    def history_part(self, encoded: EncodedQuery) -> np.ndarray | None:
        """(I,) a known listener's collaborative term (core.models.collaborative: EASE, ALS and ItemKNN
        fitted on the training interactions), part of the listening history; None for other queries or
        without one."""
        hook = getattr(self.model, "history_scores", None)
        if encoded.user_row is None or hook is None:
            return None
        part = hook(encoded.user_row)
        return None if part is None else np.asarray(part, np.float64)

    def extra_parts(self, encoded: EncodedQuery, terms: Sequence[ScoreTerm]) -> np.ndarray | None:
        """(I,) what the index does not carry: the named terms other than the prior, plus a known listener's
        collaborative term (which joins the base, not a named term); None when neither applies."""
        parts = [p for p in (self.term_extra(terms), self.history_part(encoded)) if p is not None]
        return np.sum(parts, axis=0) if parts else None

    def item_offset_label(self, encoded: EncodedQuery, prior_weight: float | None = None) -> str:
        """Which item offset applies to this query, in words."""
        if encoded.known_listener:
            return f"{LEARNED_BIAS_LABEL} (a known listener: the model's own, inside the base)"
        return f"{PRIOR_LABEL} × {self.offset_coefficients(encoded, prior_weight)[1]:.2f} (learned bias not used)"

    def similarity_coefficient(self, encoded: EncodedQuery, similarity_weight: float | None = None) -> float:
        """λ: the weight of the similarity to the upload for this query (0 for a known listener or without
        uploads)."""
        if encoded.known_listener or encoded.similarity is None:
            return 0.0
        return self.similarity_weight if similarity_weight is None else check_similarity_weight(similarity_weight)

    def similarity_parts(self, encoded: EncodedQuery, rows: np.ndarray | None = None,
                         modality_weights: dict[str, float] | None = None,
                         similarity_weight: float | None = None) -> np.ndarray:
        """(n, M) λ · ω_m · sim_m(i) for `rows` (all items when None): the similarity to the upload per
        modality, ω_m the what-if weight of m (1 without what-if weights); zeros when it does not apply."""
        n = self.scorer.n_items if rows is None else len(rows)
        lam = self.similarity_coefficient(encoded, similarity_weight)
        if lam == 0.0:
            return np.zeros((n, len(self.modalities)))
        sim = encoded.similarity if rows is None else encoded.similarity[np.asarray(rows, np.int64)]
        omega = np.ones(len(self.modalities)) if modality_weights is None else \
            np.array([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
        return lam * sim * omega[None, :]
