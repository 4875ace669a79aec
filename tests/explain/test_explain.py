"""The explain service: exact modality Shapley values (shap), named-feature and word SHAP, the gate's weights,
the deletion check, and the ground-truth check on the demo-like world of test_recommend."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from core.encoders import audio as audio_desc
from core.encoders import image_descriptor as image_desc
from core.errors import QueryError
from core.explain.service import ExplainConfig, ExplainService, hierarchy_linkage
from core.explain.check import format_report, run_check
from core.serving.service import Query, RecommendService
from tests.serving.test_recommend import demo_world, service  # noqa: F401  (session fixtures)


@pytest.fixture(scope="module")
def explainer(service) -> ExplainService:  # noqa: F811
    return ExplainService(service, ExplainConfig(feature_evals=600, token_evals=60))


@pytest.fixture(scope="module")
def listener_case(service, demo_world):  # noqa: F811
    """(encoded query of a listener, their top item id, its explanation)."""
    user = demo_world.data.user_ids[1]
    encoded = service.encode_query(Query(user_id=user))
    top = service.recommend(encoded, k=5).items[0].item_id
    return encoded, top


def hand_shapley(value, players: list[str]) -> dict[str, float]:
    """The Shapley formula written out: average marginal contribution over all orderings of the players."""
    total = {p: 0.0 for p in players}
    orders = list(itertools.permutations(players))
    for order in orders:
        before: frozenset[str] = frozenset()
        for p in order:
            total[p] += value(before | {p}) - value(before)
            before = before | {p}
    return {p: v / math.factorial(len(players)) for p, v in total.items()}


def test_modality_shapley_sums_to_score_minus_base_and_matches_the_formula(explainer, service, listener_case):
    encoded, item_id = listener_case
    row = service.catalog.index_of(item_id)
    exp = explainer.explain(encoded, item_id, features=False, tokens=False)
    history = service.history_part(encoded)  # the listener's collaborative term: the same in every coalition
    assert history is not None and np.any(history != 0)  # the model has one: the sums below include it
    h = float(history[row])

    def v(coalition: frozenset[str]) -> float:
        return float(service.scores(encoded.vector, np.array([row]), keep=sorted(coalition))[0]) + h

    expected = hand_shapley(v, service.modalities)
    assert exp.modality_shapley == pytest.approx(expected, abs=1e-5)
    assert sum(exp.modality_shapley.values()) == pytest.approx(exp.score - exp.base_value, abs=1e-5)
    assert exp.base_value == pytest.approx(v(frozenset()), abs=1e-6)
    assert exp.score == pytest.approx(v(frozenset(service.modalities)), abs=1e-5)
    # the listening history is the base above the item's offset: with it, the values sum to score − offset
    assert exp.offset == pytest.approx(float(service.bias[row]), abs=1e-6)
    assert sum(exp.shapley_with_history().values()) == pytest.approx(exp.score - exp.offset, abs=1e-5)
    # the listening history holds the ids' part and the collaborative term: the score of the empty coalition
    ids_part = float(service.scores(encoded.vector, np.array([row]), keep=[])[0]) - exp.offset
    assert exp.history == pytest.approx(ids_part + h, abs=1e-5)


def test_explain_agrees_with_the_recommend_contributions(explainer, service, listener_case):
    encoded, _ = listener_case
    for rec in service.recommend(encoded, k=3).items:
        exp = explainer.explain(encoded, rec.item_id, features=False, tokens=False)
        assert exp.modality_shapley == pytest.approx(rec.contributions, abs=1e-5)
        assert exp.score == pytest.approx(rec.score, abs=1e-5)
        assert exp.modality_weights == pytest.approx(rec.modality_weights, abs=1e-6)


def test_listener_id_and_encoded_query_give_the_same_explanation(explainer, service, demo_world,  # noqa: F811
                                                                 listener_case):
    encoded, item_id = listener_case
    by_id = explainer.explain(demo_world.data.user_ids[1], item_id, features=False, tokens=False)
    by_query = explainer.explain(encoded, item_id, features=False, tokens=False)
    assert by_id.modality_shapley == pytest.approx(by_query.modality_shapley)


def test_gate_weights_are_the_models(explainer, service, listener_case):
    encoded, item_id = listener_case
    exp = explainer.explain(encoded, item_id, features=False, tokens=False)
    row = service.catalog.index_of(item_id)
    gate = service.model.gate_weights(items=np.array([row]))[0]
    assert list(exp.modality_weights.values()) == pytest.approx(gate.tolist())
    assert sum(exp.modality_weights.values()) == pytest.approx(1.0)


def test_deletion_check_is_consistent(explainer, service, listener_case):
    encoded, item_id = listener_case
    exp = explainer.explain(encoded, item_id, features=False, tokens=False)
    d = exp.deletion
    row = service.catalog.index_of(item_id)
    present = [m for m, p in zip(service.modalities, service.present[row]) if p]
    assert d.modality == max(present, key=exp.modality_shapley.get)
    assert d.score_before == pytest.approx(exp.score, abs=1e-5)
    without = [m for m in service.modalities if m != d.modality]
    history = service.history_part(encoded)
    history = np.zeros(service.n_items) if history is None else history  # the listener's collaborative term
    assert d.score_after == pytest.approx(service.scores(encoded.vector, np.array([row]), keep=without)[0]
                                          + history[row], abs=1e-5)
    assert d.rank_before == 1  # it is the listener's top recommendation
    full = service.scores(encoded.vector) + history
    others = [j for j in range(service.n_items) if j != row and j not in encoded.exclude_rows]
    assert d.rank_after == 1 + int((full[others] > d.score_after).sum())
    assert (d.rank_after >= d.rank_before) == (d.score_after <= d.score_before) or d.rank_after == d.rank_before


def test_feature_shap_covers_named_features_and_adds_up(explainer, service, listener_case):
    encoded, item_id = listener_case
    row = service.catalog.index_of(item_id)
    frame = explainer.feature_shap(encoded.vector, row)
    assert list(frame.columns) == ["modality", "field", "group", "feature", "value", "shap"]
    assert set(frame["field"]) == {"image_desc", "audio"}
    assert set(frame["group"]) == set(image_desc.FEATURE_GROUPS) | set(audio_desc.FEATURE_GROUPS)
    assert len(frame) == len(image_desc.FEATURE_NAMES) + len(audio_desc.FEATURE_NAMES)
    assert frame.loc[frame.feature == "tempo (BPM)", "group"].item() == "rhythm"
    # efficiency: the values add up to the score minus the score with every named feature at its mean
    emb = service.embeddings
    zeroed = {f: np.zeros((1, emb.matrices[f].shape[1]), np.float32) for f in ("image_desc", "audio")}
    full = service.scores(encoded.vector, np.array([row]))[0]
    at_mean = service.score_item_variants(encoded.vector, row, zeroed)[0]
    assert frame["shap"].sum() == pytest.approx(full - at_mean, abs=1e-4)
    # a variant equal to the stored rows scores like the item itself
    same = {f: emb.matrices[f][row][None, :] for f in ("image_desc", "audio")}
    assert service.score_item_variants(encoded.vector, row, same)[0] == pytest.approx(full, abs=1e-4)


def test_token_shap_lists_the_words_of_the_item_text(explainer, service, listener_case):
    encoded, item_id = listener_case
    row = service.catalog.index_of(item_id)
    notes: list[str] = []
    frame = explainer.token_shap(encoded.vector, row, notes)
    text = service.catalog.items[row].text
    assert list(frame.columns) == ["token", "shap"] and len(frame) > 3
    assert " ".join(frame["token"]).split() == [w for w in frame["token"] if w]
    assert all(tok.strip(".,;:!?'\"") in text for tok in frame["token"] if tok)
    full = service.scores(encoded.vector, np.array([row]))[0]
    empty = service.score_item_variants(encoded.vector, row, {"text": np.zeros((1, 256), np.float32)})[0]
    assert frame["shap"].sum() == pytest.approx(full - empty, abs=1e-3)
    assert not notes


def test_token_shap_of_a_one_word_text_is_exact(explainer, service, listener_case):
    # "Why?" on an item whose text is one word: the word carries the whole text contribution
    encoded, item_id = listener_case
    row = service.catalog.index_of(item_id)
    item = service.catalog.items[row]
    kept = item.text
    try:
        item.text = "jazz"
        frame = explainer.token_shap(encoded.vector, row, [])
        words = service.encoders["text"].encode(["jazz"])
        full = service.score_item_variants(encoded.vector, row, {"text": words})[0]
        empty = service.score_item_variants(encoded.vector, row, {"text": np.zeros((1, 256), np.float32)})[0]
        assert frame["token"].tolist() == ["jazz"]
        assert frame["shap"].iloc[0] == pytest.approx(full - empty, abs=1e-5)
    finally:
        item.text = kept


def test_full_explanation_has_every_part(explainer, listener_case):
    encoded, item_id = listener_case
    exp = explainer.explain(encoded, item_id)
    assert exp.item_id == item_id
    assert isinstance(exp.feature_shap, pd.DataFrame) and not exp.feature_shap.empty
    assert isinstance(exp.token_shap, pd.DataFrame) and not exp.token_shap.empty
    assert exp.deletion is not None
    assert {"modality_shapley", "feature_shap", "token_shap", "deletion"} <= set(exp.timings_ms)


def test_unknown_item_and_bad_subject_are_refused(explainer, listener_case):
    encoded, _ = listener_case
    with pytest.raises(QueryError, match="no-such-item"):
        explainer.explain(encoded, "no-such-item")
    with pytest.raises(QueryError, match="listener id"):
        explainer.explain(42, "x")  # type: ignore[arg-type]


def test_hierarchy_linkage_nests_blocks():
    z = hierarchy_linkage([[0, 1, 2], [3, 4]])
    assert z.shape == (4, 4)
    assert np.all(np.diff(z[:, 2]) > 0)  # merge heights increase
    assert z[-1, 3] == 5  # the root holds every leaf
    # the first block is merged before anything joins the second
    first_block_root = next(i for i, r in enumerate(z) if r[3] == 3)
    assert first_block_root < len(z) - 1


def test_ground_truth_check_runs_and_beats_chance(service, demo_world):  # noqa: F811
    result = run_check(demo_world.catalog, demo_world.embeddings, demo_world.model, max_listeners=30,
                       service=service)
    print(format_report(result))
    for key in ("dominant_top_rate", "deletion_drop_rate", "chance", "agreement_if_independent"):
        assert 0.0 <= result[key] <= 1.0
    assert result["listeners"] == 30 and result["items"] == 300
    assert result["dominant_top_hits"] == round(result["dominant_top_rate"] * result["items"])
    assert result["dominant_top_rate"] > result["chance"]
    assert result["dominant_top_rate"] > result["agreement_if_independent"]
    assert result["deletion_drop_rate"] >= 0.9


def test_ground_truth_check_with_shap_matches_the_fast_path(service, demo_world):  # noqa: F811
    fast = run_check(demo_world.catalog, demo_world.embeddings, demo_world.model, max_listeners=3, service=service)
    slow = run_check(demo_world.catalog, demo_world.embeddings, demo_world.model, max_listeners=3, service=service,
                     use_shap=True)
    assert fast["dominant_top_hits"] == slow["dominant_top_hits"]
    assert fast["deletion_drops"] == slow["deletion_drops"]


def test_ground_truth_check_refuses_a_catalog_without_single_modality_listeners(demo_world):  # noqa: F811
    from core.errors import CatalogError, StoreError

    w = demo_world
    other = RecommendService(w.catalog, w.embeddings, w.model, w.encoders)
    other.modalities = []  # no modality can be dominant
    with pytest.raises((StoreError, CatalogError), match="single-modality listeners"):
        run_check(w.catalog, w.embeddings, w.model, service=other)


# -- the popularity prior as a player -----------------------------------------------------------------
def test_shapley_values_plus_the_prior_sum_to_the_score_of_a_content_query(explainer, service):  # noqa: F811
    query = service.encode_query(Query(text="melancholic piano about the rain"))
    result = service.recommend(query, k=5, prior_weight=0.5)
    rec = result.items[0]
    row = service.catalog.index_of(rec.item_id)
    exp = explainer.explain(query, rec.item_id, features=False, tokens=False, prior_weight=0.5)
    # the prior is a player of its own: its Shapley value is exactly its term, weight × prior_i
    assert exp.terms["prior"] == pytest.approx(0.5 * service.prior[row], abs=1e-6)
    assert exp.term_labels["prior"] == "popularity prior × 0.50"
    # an upload query also has "items like your upload" and the closest match as players, and the text
    # similarity in text's value
    assert set(exp.terms) == {"prior", "like_upload", "closest_match"} and set(exp.similarity) == {"text"}
    assert exp.terms["like_upload"] == pytest.approx(rec.terms["like_upload"], abs=1e-6)
    assert exp.terms["closest_match"] == pytest.approx(rec.terms["closest_match"], abs=1e-6)
    # the closest match is the item whose text is nearest the query's: exactly one item gets it
    nearest = int(np.argmax(query.similarity.sum(axis=1)))
    assert rec.terms["closest_match"] == pytest.approx(service.closest_weight * (row == nearest))
    total = sum(exp.modality_shapley.values()) + sum(exp.terms.values())
    assert total == pytest.approx(exp.score - exp.base_value, abs=1e-5)
    assert exp.score == pytest.approx(rec.score, abs=1e-5) and exp.base_value == pytest.approx(rec.base, abs=1e-5)
    assert exp.modality_shapley == pytest.approx(rec.contributions, abs=1e-5)
    # the learned bias is out of a content query's score: base = v(∅) − bias (no id embedding in this model)
    v_empty = float(service.scores(query.vector, np.array([row]), keep=[])[0])
    assert exp.base_value == pytest.approx(v_empty - float(service.bias[row]), abs=1e-5)
    # and the modalities' values are what they are without the prior
    plain = explainer.explain(query, rec.item_id, features=False, tokens=False, prior_weight=0.0)
    assert plain.modality_shapley == pytest.approx(exp.modality_shapley, abs=1e-6)
    assert plain.score == pytest.approx(exp.score - exp.terms["prior"], abs=1e-5)


def test_a_known_listener_keeps_the_learned_bias_and_has_no_prior(explainer, service, listener_case):  # noqa: F811
    encoded, item_id = listener_case
    exp = explainer.explain(encoded, item_id, features=False, tokens=False, prior_weight=0.9)
    assert exp.terms == {} and "learned item bias" in exp.item_offset
    result = service.recommend(encoded, k=3, prior_weight=0.9)
    assert result.prior_weight is None and all(r.terms == {} for r in result.items)


def test_single_modality_what_if_never_ranks_an_item_lacking_it_above_one_with_it(service, demo_world):  # noqa: F811
    query = service.encode_query(Query(text="energetic techno about the city at night"))
    n = service.n_items
    tested = []
    for k, m in enumerate(service.modalities):
        carries = service.present[:, k]
        if carries.all():  # the world's tracks all have text
            continue
        tested.append(m)
        result = service.recommend(query, k=n, modality_weights={o: float(o == m) for o in service.modalities})
        has = [bool(carries[service.catalog.index_of(r.item_id)]) for r in result.items]
        assert has == sorted(has, reverse=True)  # every item with m before every item without
        assert all(r.lacks == [m] for r, h in zip(result.items, has) if not h)
        assert all(not r.lacks for r, h in zip(result.items, has) if h)
        assert result.notes and f"carry no {m}" in result.notes[0]
        # the shares on each card are the weights that produced the ranking
        assert all(r.modality_weights[m] == (1.0 if h else 0.0) for r, h in zip(result.items, has))
        # a weight of 0 removes a modality's contribution
        assert all(abs(r.contributions[o]) < 1e-6 for r in result.items for o in service.modalities if o != m)
    assert {"image", "audio"} <= set(tested)
