"""The fusion model's collaborative term: EASE, ALS and ItemKNN fitted on the training interactions and weighted on
validation, added to known listeners' scores, saved and reloaded with the model."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp

from core.errors import ModelError
from core.evaluation.protocol import evaluate
from core.models import collaborative
from core.models.collaborative import parse_members
from core.models.fusion.config import FusionConfig
from core.models.fusion.recommender import FusionRecommender
from core.tuning.baselines import member_search
from tests.models.test_fusion import FAST, make_data


def noise_content(seed: int = 0):
    """make_data's listeners and splits with content that is pure noise: only the interactions carry
    who likes what, so a content-only fusion model needs the collaborative term."""
    data, cluster = make_data(seed)
    rng = np.random.default_rng(seed + 1)
    emb = data.embeddings
    matrices = {f: (rng.normal(size=m.shape) * emb.masks[f][:, None]).astype(np.float32)
                for f, m in emb.matrices.items()}
    return dataclasses.replace(data, embeddings=dataclasses.replace(emb, matrices=matrices)), cluster


CONTENT_ONLY = dict(FAST, use_item_id=False, user_mode="id", epochs=8, patience=8)


@pytest.fixture(scope="module")
def blended():
    data, _ = noise_content()
    model = FusionRecommender(FusionConfig(**CONTENT_ONLY), member_search=member_search).fit(data)
    alone = FusionRecommender(FusionConfig(**CONTENT_ONLY, collaborative="none")).fit(data)
    return data, model, alone


def test_the_term_is_chosen_on_validation_and_lifts_a_model_without_signal(blended):
    data, model, alone = blended
    term = model.collaborative
    assert term is not None and term.weights and all(w > 0 for w in term.weights.values())
    record = term.record
    assert record["blend"] > record["fusion_alone"]  # validation, the figure the weights were chosen on
    assert set(record["members"]) == {"ease", "als", "itemknn"}
    # the same network without the term: its scores are the model's minus the term
    assert alone.collaborative is None
    users = np.arange(data.n_users)
    np.testing.assert_allclose(model.score(users), model._fusion_scores(users) + term.scores(users), atol=1e-5)
    lifted = evaluate(model, data, ks=(10,), target="valid", n_bootstrap=0).metrics["recall@10"]
    plain = evaluate(alone, data, ks=(10,), target="valid", n_bootstrap=0).metrics["recall@10"]
    assert lifted > plain + 0.05


def test_history_scores_are_the_terms_row(blended):
    data, model, _ = blended
    items = np.array([3, 0, 17])
    np.testing.assert_allclose(model.history_scores(5, items), model.collaborative.scores(np.array([5]), items)[0])
    assert model.history_scores(5).shape == (data.n_items,)


def test_save_and_load_keep_the_term(blended, tmp_path):
    data, model, _ = blended
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / collaborative.FILE).is_file()
    loaded = FusionRecommender.load(tmp_path / "m", data.embeddings)
    users = np.arange(data.n_users)
    np.testing.assert_allclose(loaded.score(users), model.score(users), atol=1e-5)
    assert loaded.collaborative.weights == model.collaborative.weights
    # a damaged weight in config.json is refused by name, and so is a missing array file
    header = json.loads((tmp_path / "m" / "config.json").read_text())
    header["collaborative"]["weights"] = {"ease": "lots"}
    (tmp_path / "m" / "config.json").write_text(json.dumps(header))
    with pytest.raises(ModelError, match="collaborative term"):
        FusionRecommender.load(tmp_path / "m", data.embeddings)
    model.save(tmp_path / "n")
    (tmp_path / "n" / collaborative.FILE).unlink()
    with pytest.raises(ModelError, match="collaborative term"):
        FusionRecommender.load(tmp_path / "n", data.embeddings)


def test_without_validation_or_above_the_item_limit_there_is_no_term(monkeypatch):
    data, _ = noise_content()
    empty = dataclasses.replace(data, valid=sp.csr_matrix(data.valid.shape, dtype=np.float32))
    assert FusionRecommender(FusionConfig(**CONTENT_ONLY), member_search=member_search).fit(empty).collaborative is None
    monkeypatch.setattr(collaborative, "MAX_ITEMS", data.n_items - 1)
    assert FusionRecommender(FusionConfig(**CONTENT_ONLY), member_search=member_search).fit(data).collaborative is None


def test_member_names_are_checked():
    assert parse_members("none") == ()
    assert parse_members("als+ease") == ("ease", "als")
    assert parse_members("itemknn+ease+als") == ("ease", "als", "itemknn")
    with pytest.raises(ValueError, match="ease"):
        FusionConfig(collaborative="ease+knn")
    with pytest.raises(ValueError, match="each once"):
        parse_members("ease+ease")


def test_the_weight_search_metric_is_the_protocol_metric():
    """The weight search ranks hundreds of blends with the mask and truth computed once; its figures equal
    core.evaluation's (topk_indices with training items masked, then NDCG / recall), ties and NaN included."""
    from core.data.metrics import ndcg_at_k, recall_at_k, topk_indices

    data, _ = noise_content()
    users = collaborative._validation_users(data, 0)
    judge = collaborative._Judge(users, data)
    rng = np.random.default_rng(0)
    for trial in range(4):
        scores = rng.normal(size=(users.size, data.n_items)).astype(np.float32)
        if trial > 1:
            scores = np.round(scores, 1)  # many ties: lower index first in both
        if trial == 3:
            scores[0, :5] = np.nan
        train, valid = data.train.tocsr()[users], data.valid.tocsr()[users]
        top = topk_indices(scores, 20, train)
        assert judge(scores, "ndcg@20") == pytest.approx(float(np.nanmean(ndcg_at_k(top, valid))), abs=1e-12)
        top10 = topk_indices(scores, 10, train)
        assert judge(scores, "recall@10") == pytest.approx(float(np.nanmean(recall_at_k(top10, valid))), abs=1e-12)


def test_members_without_tuned_settings_or_a_search_are_refused_before_training():
    data, _ = noise_content()
    reports = []
    with pytest.raises(ModelError, match=r"\['als'\] have no tuned settings and no search"):
        FusionRecommender(FusionConfig(**CONTENT_ONLY, collaborative="ease+als",
                                       collaborative_settings={"ease": {"reg": 100.0}})).fit(data, reports.append)
    assert reports == []  # refused before the first epoch


def test_members_with_tuned_settings_need_no_search():
    data, _ = noise_content()
    settings = {"ease": {"reg": 100.0}, "itemknn": {"k": 20, "shrink": 0.0}}
    model = FusionRecommender(FusionConfig(**CONTENT_ONLY, collaborative="ease+itemknn",
                                           collaborative_settings=settings)).fit(data)
    assert model.collaborative is not None  # noise content: the interactions carry the signal
    members = model.collaborative.record["members"]
    assert {m: members[m]["source"] for m in members} == {"ease": "tuned settings of the catalog",
                                                          "itemknn": "tuned settings of the catalog"}
    assert model.collaborative.settings == {m: settings[m] for m in model.collaborative.weights}
