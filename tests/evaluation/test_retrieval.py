"""The retrieval benchmark's code on tiny catalogs with answers worked out by hand, and the popularity prior
of content queries on a catalog where popularity and content disagree.

`ToyContentModel` is the fusion model's scoring surface with identity heads: an item's vector is the mean
of its present modality vectors (what-if weights make it a weighted mean), an upload's query vector is
the upload itself, and the learned bias is given. So every score is a dot product one can check by hand.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.catalog.model import Catalog, Item
from core.encoders.embeddings import EmbeddingSet
from core.evaluation.retrieval import (chance_precision, choose_weights, evaluate_retrieval, held_out_rows,
                                       precision_at_k, raw_knn_ranking, reciprocal_rank, selection_score,
                                       self_at_k, split_halves, summarise)
from core.serving.service import RecommendService

MODS = ("text", "image", "audio")


class ToyContentModel:
    """Identity heads, mean fusion over present modalities, a given learned bias and popularity."""

    name = "toy"
    user_ids: list[str] = []

    def __init__(self, emb: EmbeddingSet, bias: np.ndarray, popularity: np.ndarray) -> None:
        self.modalities = [m for m in MODS if m in emb.modalities]
        self.x = np.stack([emb.matrices[m] for m in self.modalities], axis=1).astype(np.float64)  # (I, M, D)
        self.present = np.stack([emb.masks[m] for m in self.modalities], axis=1)
        self.bias = np.asarray(bias, np.float64)
        self.net = SimpleNamespace(popularity=np.asarray(popularity, np.float64))

    def _weights(self, modality_mask=None, modality_weights=None) -> np.ndarray:
        present = self.present.copy()
        if modality_mask is not None:
            present &= np.array([bool(modality_mask.get(m, True)) for m in self.modalities])[None, :]
        w = np.ones(len(self.modalities)) if modality_weights is None else \
            np.array([max(float(modality_weights.get(m, 0.0)), 0.0) for m in self.modalities])
        w = present * w[None, :]
        total = w.sum(axis=1, keepdims=True)
        return np.divide(w, total, out=np.zeros_like(w), where=total > 0)

    def item_vectors(self, items=None, modality_mask=None, modality_weights=None) -> np.ndarray:
        v = (self._weights(modality_mask, modality_weights)[..., None] * self.x).sum(axis=1)
        return (v if items is None else v[np.asarray(items)]).astype(np.float32)

    def score_vector(self, qvec, items=None, modality_mask=None, modality_weights=None) -> np.ndarray:
        rows = slice(None) if items is None else np.asarray(items)
        v = self.item_vectors(None, modality_mask, modality_weights).astype(np.float64)
        return (v @ np.asarray(qvec, np.float64) + self.bias)[rows].astype(np.float32)

    def gate_weights(self, items=None, modality_mask=None) -> np.ndarray:
        w = self._weights(modality_mask)
        return w if items is None else w[np.asarray(items)]

    def project_content(self, field_inputs):
        return {m: np.asarray(x, np.float32) for m, x in field_inputs.items()}

    def query_vector(self, liked=(), disliked=(), content=None):
        parts = [np.asarray(x, np.float32) for x in (content or {}).values()]
        parts += [self.item_vectors(np.asarray(liked, np.int64))] if len(liked) else []
        return np.concatenate(parts).mean(axis=0)


def toy_service(vectors: dict[str, list], labels: list[str], bias, popularity,
                prior_weight: float = 0.0, similarity_weight: float = 0.0,
                like_weight: float = 0.0, closest_weight: float = 0.0) -> tuple[RecommendService, list[str]]:
    """A service over items whose modality vectors are `vectors[m][i]` (None = the item lacks m)."""
    n = len(labels)
    dim = len(next(v for vs in vectors.values() for v in vs if v is not None))
    matrices, masks = {}, {}
    for m, vs in vectors.items():
        masks[m] = np.array([v is not None for v in vs])
        matrices[m] = np.array([v if v is not None else [0.0] * dim for v in vs], np.float32)
    ids = [f"i{j}" for j in range(n)]
    emb = EmbeddingSet(item_ids=ids, matrices=matrices, masks=masks, modality_of={m: m for m in vectors},
                       encoder_ids={m: f"toy/{m}" for m in vectors})
    catalog = Catalog(name="toy", items=[Item(id=i, title=i, metadata={"genre": g}) for i, g in zip(ids, labels)])
    model = ToyContentModel(emb, np.asarray(bias, float), np.asarray(popularity, float))
    return RecommendService(catalog, emb, model, encoders={}, prior_weight=prior_weight,
                            similarity_weight=similarity_weight, like_weight=like_weight,
                            closest_weight=closest_weight), labels


# -- splits ---------------------------------------------------------------------------------------------
def test_held_out_rows_takes_the_share_of_every_category_seeded():
    labels = ["a"] * 10 + ["b"] * 5 + [None]
    held = held_out_rows(labels, share=0.2, seed=3)
    assert sum(labels[r] == "a" for r in held) == 2 and sum(labels[r] == "b" for r in held) == 1
    assert 15 not in held  # an item without a category is never held out
    assert held.tolist() == held_out_rows(labels, share=0.2, seed=3).tolist()
    assert any(held_out_rows(labels, share=0.2, seed=s).tolist() != held.tolist() for s in range(4, 10))
    valid, test = split_halves(held, labels, seed=3)
    assert sorted([*valid, *test]) == sorted(held) and not set(valid) & set(test)
    assert sum(labels[r] == "a" for r in valid) == 1 and sum(labels[r] == "a" for r in test) == 1
    assert sum(labels[r] == "b" for r in valid) == 1  # the odd one goes to validation


# -- metrics by hand ------------------------------------------------------------------------------------
def test_metrics_on_a_worked_example():
    labels = ["a", "a", "b", "a", "b", "b"]
    ranking = np.array([2, 0, 3, 4, 1])
    assert self_at_k(ranking, 0, 2) == 1.0 and self_at_k(ranking, 0, 1) == 0.0
    # the query item 0 is left out: the top 2 others are 2 (b) and 3 (a)
    assert precision_at_k(ranking, 0, labels, 2) == pytest.approx(0.5)
    assert precision_at_k(ranking, 0, labels, 3) == pytest.approx(1 / 3)  # 2 b, 3 a, 4 b
    # chance: among the 5 other items, 2 are "a"; among items 1..3 only, 2 of 3 others
    assert chance_precision(0, labels, np.ones(6, bool)) == pytest.approx(2 / 5)
    assert chance_precision(0, labels, np.array([1, 1, 1, 1, 0, 0], bool)) == pytest.approx(2 / 3)
    # the exact match: item 0 is second, so self@1 is 0 and its reciprocal rank 1/2 (0 beyond the top k)
    assert reciprocal_rank(ranking, 0, 5) == 0.5 and reciprocal_rank(ranking, 1, 4) == 0.0
    assert reciprocal_rank(ranking, 2, 5) == 1.0
    means = summarise([ranking, np.array([0, 2, 3])], [0, 0], labels, 2)
    assert means == {"precision@2": pytest.approx(0.5), "self@2": 1.0, "self@1": 0.5, "mrr@2": 0.75}


def test_raw_knn_ranks_by_cosine_among_items_that_carry_the_field():
    x = np.array([[1, 0], [2, 0.2], [0, 1], [0.7, 0.7], [5, 0.1]], np.float32)
    present = np.array([True, True, True, True, False])  # item 4 (the closest to 0) lacks the field
    ranking = raw_knn_ranking(x, present, 0, k=2)
    assert ranking.tolist() == [0, 1, 3]  # cosines 1, 0.995, 0.707; item 4 is not a candidate


# -- the benchmark end to end on a toy catalog -------------------------------------------------------------
def _toy_catalog(prior_weight: float = 0.0):
    # two categories; text tells them apart, image only for a and b's first, audio tells them apart inversely
    labels = ["a", "a", "a", "b", "b", "b"]
    vectors = {
        "text": [[1, 0], [0.9, 0.3], [0.8, -0.3], [0, 1], [0.3, 0.9], [-0.3, 0.8]],
        "image": [[1, 0], None, None, [0, 1], None, None],
        "audio": [[0, 1], [0.2, 1], [-0.2, 1], [1, 0], [1, 0.2], [1, -0.2]],
    }
    bias = [0, 0, 0, 5, 5, 5]  # a learned bias that only favours b
    popularity = [0, 0, 0, 50, 50, 50]
    return toy_service(vectors, labels, bias, popularity, prior_weight)


def test_evaluate_retrieval_reproduces_hand_worked_figures():
    service, labels = _toy_catalog()
    result = evaluate_retrieval(service, labels, np.array([0, 3]), k=1)
    # Item vectors (means of the present modalities): 0 → (2/3, 1/3), 1 → (0.55, 0.65), 2 → (0.3, 0.35),
    # 3 → (1/3, 2/3), 4 → (0.65, 0.55), 5 → (0.35, 0.3). Text query of item 0 = (1, 0) scores the
    # x-coordinates: item 0 itself first (0.667), then item 4 (b, 0.65): self@1 1, precision@1 0. Text query
    # of item 3 = (0, 1) scores the y-coordinates: item 3 first (0.667), then item 1 (a, 0.65): 1 and 0.
    text = result["text"]
    assert text["queries"] == 2
    assert text["fusion"] == {"precision@1": 0.0, "self@1": 1.0, "mrr@1": 1.0}
    assert text["chance"] == pytest.approx(2 / 5)
    # raw text kNN: item 0's nearest other is item 1 (a), item 3's is item 4 (b): precision 1, self 1
    assert text["raw_knn"]["precision@1"] == 1.0 and text["raw_knn"]["self@1"] == 1.0
    # with the learned bias (5 for every b item) both queries return b items first: 3 itself, then 4 or 5
    assert text["fusion_learned_bias"] == {"precision@1": 0.5, "self@1": 0.5, "mrr@1": 0.5}
    # restricted to text, the item vectors are the text vectors: 0's best other is 1, 3's is 4 → 1.0
    assert text["restricted"]["text"]["precision@1"] == 1.0 and text["restricted"]["text"]["self@1"] == 1.0
    # image queries: only items 0 and 3 carry an image; chance among image carriers: none of the other is alike
    image = result["image"]
    assert image["queries"] == 2 and image["chance_with_modality"] == 0.0
    # restricted to image, items without an image come after the two that have one
    assert image["restricted"]["image"]["lacking_in_top"] == 0.0
    assert image["restricted"]["image"]["self@1"] == 1.0


def test_restricted_what_if_never_puts_an_item_lacking_the_modality_first():
    service, labels = _toy_catalog()
    encoded = service.encode_fields({"text": np.array([[0.0, 1.0]], np.float32)})
    result = service.recommend(encoded, k=6, modality_weights={"text": 0, "image": 1, "audio": 0})
    assert [r.item_id for r in result.items[:2]] == ["i3", "i0"]  # (0, 1) · image: 1 for i3, 0 for i0
    assert all(r.lacks == ["image"] for r in result.items[2:]) and not result.items[0].lacks
    assert result.notes and "4 of these 6 items carry no image" in result.notes[0]


def test_weights_are_chosen_on_validation_and_reported():
    service, labels = _toy_catalog()
    # the cold items 0..2 must come back for their own queries: any prior weight favours b instead
    best, scores = choose_weights(service, labels, np.array([0, 1, 2]), (0.0, 0.5, 1.0), (0.0,), (0.0,), k=1)
    assert best == (0.0, 0.0, 0.0, 0.0) and scores[(0.0, 0.0, 0.0, 0.0)] > scores[(1.0, 0.0, 0.0, 0.0)]
    at_zero = evaluate_retrieval(service, labels, np.array([0, 1, 2]), k=1, prior_weight=0.0, restricted=False)
    assert scores[(0.0, 0.0, 0.0, 0.0)] == pytest.approx(selection_score(at_zero, 1))


# -- the popularity prior -------------------------------------------------------------------------------
def _disagreeing_catalog():
    """Ten clips; the query's match (item 0) was never played, the others are popular and carry the bias."""
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(10, 6))
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    vectors = {"audio": audio.tolist()}
    popularity = np.array([0, 90, 80, 70, 60, 50, 40, 30, 20, 10], float)
    bias = np.log1p(popularity)  # a learned bias that follows plays, as the issue measured
    return toy_service(vectors, ["c"] * 10, bias, popularity), audio


def test_audio_query_with_the_prior_at_zero_ranks_the_matching_clip_first():
    (service, _), audio = _disagreeing_catalog()
    clip = service.encode_fields({"audio": audio[[0]].astype(np.float32)})
    assert not clip.known_listener
    plain = service.recommend(clip, k=3, prior_weight=0.0)
    assert plain.items[0].item_id == "i0"
    assert plain.prior_weight == 0.0 and "learned bias not used" in plain.item_offset
    # the learned bias (what a content query got before) buries the cold clip; so does a heavy prior
    a, w = 1.0, 0.0
    biased, _ = service.top_rows(clip.vector, 3, (), None, a, w)
    assert 0 not in biased.tolist()
    heavy = service.recommend(clip, k=3, prior_weight=5.0)
    assert heavy.items[0].item_id != "i0"
    # the prior is its own term: score = base + contributions + prior, and prior = weight × prior_i
    for rec in heavy.items:
        row = service.catalog.index_of(rec.item_id)
        assert rec.terms["prior"] == pytest.approx(5.0 * service.prior[row])
        assert rec.base + sum(rec.contributions.values()) + rec.terms["prior"] == pytest.approx(rec.score, abs=1e-5)


def test_prior_values_follow_plays():
    (service, _), _ = _disagreeing_catalog()
    assert service.prior[0] == 0.0 and service.prior[1] == pytest.approx(1.0)
    assert np.all(np.diff(service.prior[1:]) < 0)
    assert service.prior[9] == pytest.approx(np.log1p(10) / np.log1p(90))


# -- the benchmark script's own steps -------------------------------------------------------------------
def test_benchmark_holds_items_out_by_dropping_their_interactions_only():
    import pandas as pd

    from benchmarks.retrieval import item_labels, parse_overrides, without_interactions_of

    items = [Item(id=f"i{j}", title=f"t{j}", metadata={"category": "ab"[j % 2]}) for j in range(4)]
    inter = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["i0", "i1", "i1", "i3"]})
    catalog = Catalog(name="tiny", items=items, interactions=inter)
    labels, column = item_labels(catalog, None)  # no genre column: the category column is used
    assert column == "category" and labels == ["a", "b", "a", "b"]
    held = without_interactions_of(catalog, [1])
    assert held.item_ids == catalog.item_ids  # the held-out item stays in the catalog, as a cold item
    assert held.interactions["item_id"].tolist() == ["i0", "i3"] and len(catalog.interactions) == 4
    with pytest.raises(SystemExit, match="no item metadata column 'mood'"):
        item_labels(catalog, "mood")
    assert parse_overrides(["align_weight=0.5", "strategy=gated"]) == {"align_weight": 0.5, "strategy": "gated"}


# -- the similarity to the upload and "items like your upload" ---------------------------------------------
def test_upload_similarity_known_answer():
    from core.serving.similarity import upload_similarity

    matrices = {"img_a": np.array([[1, 0], [0, 1], [1, 1]], float), "img_b": np.array([[1, 0], [3, 0], [0, 0]], float),
                "txt": np.array([[1, 0], [0, 1], [1, 0]], float)}
    masks = {"img_a": np.array([True, True, True]), "img_b": np.array([True, True, False]),
             "txt": np.array([True, True, True])}
    modality_of = {"img_a": "image", "img_b": "image", "txt": "text"}
    # two uploads in img_a (mean cosine per item), one in img_b; item 2 lacks img_b: 0 for that field
    uploads = {"img_a": np.array([[1, 0], [0, 1]], float), "img_b": np.array([[2, 0]], float)}
    sim = upload_similarity(uploads, matrices, masks, modality_of, ["text", "image"], 3)
    assert sim[:, 0].tolist() == [0.0, 0.0, 0.0]  # no text upload: no text part
    r = np.sqrt(0.5)
    assert sim[:, 1] == pytest.approx([(0.5 + 1) / 2, (0.5 + 1) / 2, (r + 0) / 2])


def test_like_upload_known_answer():
    from core.serving.similarity import like_upload

    similarity = np.array([[0.9], [0.8], [0.1], [0.0]])
    vectors = np.array([[1, 0], [0, 2], [1, 1], [-1, 0]], float)
    # the 2 nearest (items 0, 1) have unit vectors (1, 0), (0, 1): centre (1, 1)/√2
    like = like_upload(similarity, vectors, neighbours=2)
    r = np.sqrt(0.5)
    assert like == pytest.approx([r, r, 1.0, -r])
    assert like_upload(np.zeros((4, 1)), vectors).tolist() == [0.0] * 4


def test_similarity_term_ranks_by_the_upload_and_joins_its_modality_contribution():
    service, labels = _toy_catalog()
    query = service.encode_fields({"text": np.array([[1.0, 0.0]], np.float32)})  # item 0's own text
    # joint space alone: item 0 (0.667), then item 4 (b, 0.65), as worked out above
    assert [r.item_id for r in service.recommend(query, k=2, similarity_weight=0.0, like_weight=0.0).items] == \
        ["i0", "i4"]
    # + 1 × cosine to the upload's text: i0 0.667 + 1, i1 0.55 + 0.949, i2 0.3 + 0.936, i4 0.65 + 0.316
    result = service.recommend(query, k=4, similarity_weight=1.0, like_weight=0.0)
    assert [r.item_id for r in result.items] == ["i0", "i1", "i2", "i4"]
    assert result.similarity_weight == 1.0
    one = result.items[1]
    assert one.similarity["text"] == pytest.approx(0.9 / np.hypot(0.9, 0.3), abs=1e-6)
    assert one.score == pytest.approx(0.55 + 0.9 / np.hypot(0.9, 0.3), abs=1e-5)
    for rec in result.items:
        assert rec.base + sum(rec.contributions.values()) + sum(rec.terms.values()) == pytest.approx(rec.score, abs=1e-5)


def test_shapley_with_the_similarity_and_like_terms_sums_to_score_minus_base():
    from core.explain.service import ExplainService
    from core.serving.similarity import LIKE

    service, labels = _toy_catalog()
    query = service.encode_fields({"text": np.array([[1.0, 0.0]], np.float32),
                                   "audio": np.array([[0.0, 1.0]], np.float32)})
    result = service.recommend(query, k=3, prior_weight=0.2, similarity_weight=1.0, like_weight=0.5)
    explainer = ExplainService(service)
    for rec in result.items:
        exp = explainer.explain(query, rec.item_id, features=False, tokens=False, prior_weight=0.2,
                                similarity_weight=1.0, like_weight=0.5)
        assert exp.score == pytest.approx(rec.score, abs=1e-5)
        total = sum(exp.modality_shapley.values()) + sum(exp.terms.values())
        assert total == pytest.approx(exp.score - exp.base_value, abs=1e-5)
        # the similarity part sits inside its modality's Shapley value; the like term is its own player
        for m in service.modalities:
            assert exp.modality_shapley[m] == pytest.approx(rec.contributions[m], abs=1e-5)
        assert exp.similarity == pytest.approx(rec.similarity, abs=1e-6)
        assert exp.terms[LIKE] == pytest.approx(rec.terms[LIKE], abs=1e-6)
        row = service.catalog.index_of(rec.item_id)
        assert rec.terms[LIKE] == pytest.approx(0.5 * query.like[row], abs=1e-6)
        # deleting the top modality also deletes its similarity part
        if exp.deletion is not None:
            assert exp.deletion.score_before == pytest.approx(rec.score, abs=1e-5)


def test_what_if_with_similarity_terms_keeps_carriers_first_and_weight_zero_removes_the_part():
    service, labels = _toy_catalog()
    query = service.encode_fields({"text": np.array([[1.0, 0.0]], np.float32)})
    # a heavy like term and similarity cannot lift an item without an image above one with an image
    result = service.recommend(query, k=6, modality_weights={"text": 0, "image": 1, "audio": 0},
                               similarity_weight=5.0, like_weight=5.0)
    carries = [not r.lacks for r in result.items]
    assert carries == sorted(carries, reverse=True) and carries[:2] == [True, True]
    # the text weight is 0: the text similarity part is removed from every item
    assert all(r.similarity["text"] == 0.0 for r in result.items)
    assert all(abs(r.contributions["text"]) < 1e-6 for r in result.items)


def test_choose_weights_matches_the_service_and_prefers_the_upload_similarity_here():
    service, labels = _toy_catalog()
    rows = np.array([0, 3])
    best, scores = choose_weights(service, labels, rows, (0.0,), (0.0, 1.0), (0.0, 0.5), k=1,
                                  closest_grid=(0.0, 2.0))
    for (w, lam, mu, kappa), value in scores.items():
        result = evaluate_retrieval(service, labels, rows, k=1, prior_weight=w, restricted=False,
                                    similarity_weight=lam, like_weight=mu, closest_weight=kappa)
        assert value == pytest.approx(selection_score(result, 1))
    # text queries: precision@1 goes from 0 to 1 with the text similarity (worked out above)
    assert scores[(0.0, 1.0, 0.0, 0.0)] > scores[(0.0, 0.0, 0.0, 0.0)] and best[1] == 1.0


def test_fusion_is_compared_with_the_best_raw_field_chosen_on_validation():
    from benchmarks.retrieval import fusion_versus_raw

    def block(fusion, joined, fields):
        return {"raw_knn": {"precision@2": float(np.mean(joined))},
                "raw_knn_fields": {f: {"precision@2": float(np.mean(v))} for f, v in fields.items()},
                "per_query": {"fusion": {"precision@2": fusion}, "raw_knn": {"precision@2": joined},
                              **{f"raw_knn:{f}": {"precision@2": v} for f, v in fields.items()}}}

    # on validation the single field "clap" (.75) beats the joined fields (.5) and "mfcc" (.25)
    valid = block([0.5] * 4, [0.5] * 4, {"clap": [1, 1, 1, 0], "mfcc": [0, 0, 1, 0]})
    # on test, fusion beats the joined fields on every query but not "clap", which it must be compared with
    test = block([1.0, 0.5, 1.0, 0.5], [0.0] * 4, {"clap": [1.0, 0.5, 1.0, 0.5], "mfcc": [0.0] * 4})
    v = fusion_versus_raw(test, valid, k=2)
    assert v["best_raw"] == "clap" and v["valid_candidates"] == {"joined": 0.5, "clap": 0.75, "mfcc": 0.25}
    assert v["difference"] == 0.0 and v["verdict"] == "no distinguishable difference"
    ahead = fusion_versus_raw(block([1.0] * 4, [0.0] * 4, {"clap": [0.0] * 4}), valid | {"raw_knn_fields": {
        "clap": {"precision@2": 0.75}}}, k=2)
    assert ahead["best_raw"] == "clap" and ahead["lo"] > 0 and ahead["verdict"] == "fusion ahead"


# -- the best-matching item first: a hand-made six-track catalog with a hub ----------------------------------
def _unit(v) -> list[float]:
    v = np.asarray(v, float)
    return (v / np.linalg.norm(v)).tolist()


SIX_LABELS = ["world", "dnb", "ambient", "piano", "techno", "folk"]
SIX = {  # track 1 (drum and bass) is the hub: central in every modality and the most played
    "text": [_unit([1, 0, 0.3]), _unit([1, 1, 1]), _unit([0, 1, 0.2]), _unit([0.2, 1, 0]), _unit([0.3, 0.1, 1]),
             _unit([1, 0.3, 0])],
    "image": [_unit([1, 0.1, 0]), _unit([0.9, 0.9, 0.9]), _unit([0, 1, 0.1]), _unit([0.1, 0.8, 0.3]),
              _unit([0, 0.2, 1]), _unit([0.8, 0, 0.4])],
    "audio": [_unit([0.2, 0, 1]), _unit([1, 1, 1]), _unit([1, 0.2, 0]), _unit([0.9, 0.4, 0]), _unit([0, 0.3, 1]),
              _unit([0.4, 1, 0])],
}
SIX_PLAYS = [2, 60, 5, 8, 20, 3]


def _six(prior: float, lam: float, mu: float, kappa: float) -> RecommendService:
    return toy_service(SIX, SIX_LABELS, np.zeros(6), SIX_PLAYS, prior, lam, mu, kappa)[0]


def test_each_tracks_own_text_cover_and_clip_ranks_it_first_at_the_shipped_weights():
    from core.serving.prior import DEFAULT_PRIOR_WEIGHT
    from core.serving.similarity import DEFAULT_CLOSEST_WEIGHT, DEFAULT_LIKE_WEIGHT, DEFAULT_SIMILARITY_WEIGHT

    shipped = (DEFAULT_PRIOR_WEIGHT, DEFAULT_SIMILARITY_WEIGHT, DEFAULT_LIKE_WEIGHT, DEFAULT_CLOSEST_WEIGHT)

    def self_at_1(weights):
        w, lam, mu, kappa = weights
        result = evaluate_retrieval(_six(*weights), SIX_LABELS, np.arange(6), k=5, prior_weight=w,
                                    restricted=False, similarity_weight=lam, like_weight=mu, closest_weight=kappa)
        return {m: r["fusion"]["self@1"] for m, r in result.items()}

    # before: "items like your upload" (μ 32 over λ 16) lifted the hub above the exact match
    assert self_at_1((0.05, 16.0, 32.0, 0.0)) == {"text": 5 / 6, "image": 0.5, "audio": 0.5}
    now = self_at_1(shipped)
    assert now["text"] >= 0.9 and now["image"] >= 0.9 and now["audio"] >= 0.8, now
    # through the service as a user would ask: a sentence near track 0's text (not its exact words) puts
    # track 0 first, and the card names why
    from core.explain.narration import card_sentence

    service = _six(*shipped)
    query = service.encode_fields({"text": np.array([_unit([1, 0, 0.5])], np.float32)})
    first = service.recommend(query, k=3).items[0]
    assert first.item_id == "i0" and first.terms["closest_match"] == pytest.approx(shipped[3])
    assert "the closest match to your upload" in card_sentence(first)
    before = _six(0.05, 16.0, 32.0, 0.0).recommend(query, k=3).items
    assert before[0].item_id == "i1"  # the hub, as the issue saw it


def test_the_table_names_the_configuration_each_raw_field_and_the_best_raw_verdict():
    from benchmarks.retrieval import format_table, fusion_versus_raw

    service, labels = _toy_catalog()
    rows = np.arange(6)
    queries = evaluate_retrieval(service, labels, rows, k=2, similarity_weight=1.0, closest_weight=1.0)
    result = {
        "protocol": {"catalog": "toy", "test_items": 6, "label": "genre", "categories": 2, "k": 2,
                     "weight_selection": "… by the mean over query modalities of (precision@2 + self@1 + MRR@2) "
                                         "/ 3; the smaller weights on ties",
                     "fusion_configuration": "untuned starting point (content only, linear heads)"},
        "prior": {"chosen": 0.0}, "similarity": {"chosen": 1.0}, "like": {"chosen": 0.0},
        "closest": {"chosen": 1.0}, "at_grid_top": ["similarity"], "queries": queries,
        "fusion_versus_raw": {m: fusion_versus_raw(queries[m], queries[m], 2) for m in queries},
        "validation_criterion": {"0.0,1.0,0.0,1.0": 0.9, "0.0,0.0,0.0,0.0": 0.5},
    }
    table = format_table(result)
    assert "fusion configuration: untuned starting point (content only, linear heads)" in table
    assert "at the top of its grid (extend the grid and run again): similarity" in table
    assert "closest match 1.0" in table and "(precision@2 + self@1 + MRR@2) / 3" in table
    for m in ("text", "image", "audio"):
        assert f"raw kNN, {m}" in table  # each single field, even a modality's only one
        assert f"{m:<7} best raw: " in table
    assert "all four 0: 0.500" in table
