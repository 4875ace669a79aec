"""Which items come first: the top-k rows of a query through the index, exactly over every item, or the
index's candidates re-ranked exactly (what-if weights, upload terms, a listener's history), and the what-if
order (items carrying a weighted modality first)."""
from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np

from core.serving.index import ExactIndex, VectorIndex, fast_top_k_rows, top_k_rows
from core.serving.scoring import ItemScorer
from core.serving.settings import ServingSettings

LISTENER_QUERIES = "listener"  # the index's sample set of known listeners' queries (searched with its own width)
CONTENT_QUERIES = "content"  # the kind of the other queries (liked items, uploads: popularity prior, no bias),
#   searched as wide as the index's "liked" and "similar items" samples need


class Ranker:
    """Ranks items for query vectors through the index, with the candidate counts chosen for it
    (`whatif_candidates`, `term_candidates`: 0 scores those queries exactly over every item)."""

    def __init__(self, scorer: ItemScorer, index: VectorIndex, exact_index: ExactIndex,
                 settings: ServingSettings) -> None:
        self.scorer = scorer
        self.index = index
        self.exact_index = exact_index
        self.settings = settings
        self.whatif_candidates = 0  # 0: what-if queries are scored exactly over every item
        self.term_candidates = 0  # 0: upload queries are scored exactly over every item

    def top_rows(self, vector: np.ndarray, k: int, exclude: Collection[int] = (),
                 modality_weights: dict[str, float] | None = None, bias_coef: float = 1.0,
                 prior_coef: float = 0.0,
                 extra: np.ndarray | Callable[[np.ndarray | None], np.ndarray] | None = None,
                 candidates: int | None = None) -> tuple[np.ndarray, str]:
        """The top-k item rows (and which path ranked them) by q · v + a · bias + w · prior (+ `extra`, (I,)
        per-item parts such as the similarity to the upload, or a function giving them for some rows (None:
        all); such queries are scored exactly, or re-ranked over the index's top term_candidates).

        What-if weights change the item vectors, so such queries are never ranked by the index: they are
        scored exactly, from the single-modality parts when the fusion is linear ("parts"), else by the
        model ("model"); so are all queries of a model whose scores are not linear in the query. Under
        what-if weights, items carrying none of the weighted modalities come after every item that does.
        `candidates`: what-if candidates to re-rank from an approximate index (default: the settings'
        whatif_candidates, else the count chosen with the index; 0 scores what-if queries exactly over every
        item).
        """
        if candidates is None:
            candidates = self.whatif_candidates if self.settings.whatif_candidates is None else \
                self.settings.whatif_candidates
        if extra is not None and not callable(extra) and not np.any(extra):
            extra = None
        extra_at = (extra if callable(extra) else lambda at: extra if at is None else extra[at]) \
            if extra is not None else None
        # a known listener's query (learned bias, no prior) is searched as wide as listener samples need, a
        # content query (no bias) as wide as the liked and similar-items samples need
        query_kind = LISTENER_QUERIES if (bias_coef, prior_coef) == (1.0, 0.0) else \
            CONTENT_QUERIES if bias_coef == 0.0 else None
        if modality_weights is None and self.scorer.linear and extra is None:
            query = np.concatenate([vector, [bias_coef, prior_coef]]).astype(np.float32)
            rows, _ = self.index.search(query, k, exclude, kind=query_kind)
            return rows, self.index.kind
        if modality_weights is not None and self.scorer.linear and extra is None and self.index.kind != "exact" \
                and candidates:
            # a large catalog: the index's candidates for the query, re-ranked exactly under the weights
            query = np.concatenate([vector, [bias_coef, prior_coef]]).astype(np.float32)
            cands, _ = self.index.search(query, max(candidates, k), exclude, kind=query_kind)
            scores = self.scorer.scores(vector, rows=cands, modality_weights=modality_weights) + \
                self.scorer.shift(bias_coef, prior_coef, cands)
            order = self.whatif_order(cands, scores, modality_weights)[:k]
            return cands[order], f"{self.index.kind}+exact re-rank"
        terms_over = self.term_candidates if self.settings.term_candidates is None else self.settings.term_candidates
        if query_kind == LISTENER_QUERIES and terms_over and self.settings.term_candidates is None:
            terms_over = max(terms_over, self.settings.history_candidates)
        if modality_weights is None and self.scorer.linear and self.index.kind != "exact" and terms_over:
            # the index's candidates for the model-space part, re-ranked exactly with the other terms added
            query = np.concatenate([vector, [bias_coef, prior_coef]]).astype(np.float32)
            cands, cand_scores = self.index.search(query, max(terms_over, k), exclude, kind=query_kind)
            total = cand_scores.astype(np.float64) + np.asarray(extra_at(cands), np.float64)
            return cands[top_k_rows(total, k)], f"{self.index.kind}+exact re-rank"
        if modality_weights is None and self.scorer.linear:  # the terms beside the index: one scan, then add them
            query = np.concatenate([vector, [bias_coef, prior_coef]]).astype(np.float32)
            scores = self.exact_index.scores(query) + np.asarray(extra_at(None), np.float32)
            if exclude:
                scores[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = -np.inf
            return fast_top_k_rows(scores, k), "exact"
        scores = self.scorer.scores(vector, modality_weights=modality_weights) + \
            self.scorer.shift(bias_coef, prior_coef)
        if extra is not None:
            scores = scores + np.asarray(extra_at(None), np.float64)
        if exclude:
            scores[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = -np.inf
        kind = "parts" if modality_weights is not None and self.scorer.weights_linear else "model"
        if modality_weights is None:
            return top_k_rows(scores, k), "exact" if self.scorer.linear else kind
        carries = self.scorer.carries(modality_weights)
        rows = top_k_rows(np.where(carries, scores, -np.inf), k)
        if len(rows) < k:  # too few items carry the weighted modalities: the others follow them
            rows = np.concatenate([rows, top_k_rows(np.where(carries, -np.inf, scores), k - len(rows))])
        return rows.astype(np.int64), kind

    def whatif_order(self, rows: np.ndarray, scores: np.ndarray, modality_weights: dict[str, float]) -> np.ndarray:
        """Positions of `rows` best first under what-if weights: items carrying a weighted modality before
        items that carry none (those have nothing the weights ask for), then by score, then by row."""
        rows = np.asarray(rows, dtype=np.int64)
        return np.lexsort((rows, -np.asarray(scores, np.float64), ~self.scorer.carries(modality_weights, rows)))
