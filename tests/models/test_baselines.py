"""Baselines on tiny generated data: known answers, beating chance, missing modalities, the registry."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from core.encoders.embeddings import EmbeddingSet
from core.errors import CatalogError, MissingModalityError
from core.data.interactions import InteractionData
from core.models.base import Recommender
from core.models.bpr_training import sample_triples
from core.models.bprmf import BPRMF
from core.models.content import ContentConfig, ContentModel
from core.models.early_stopping import EarlyStopping
from core.models.itemknn import ItemKNN
from core.models.late_fusion import LateFusion, combine, weight_grid
from core.models.popularity import Popularity
from core.models.registry import BASELINES, FUSION, build_model, fusion_available, list_models
from core.models.vbpr import VBPR

N_ITEMS, N_USERS, N_CLUSTERS = 80, 50, 4
FAST = {"epochs": 60, "patience": 10, "batch_size": 256, "lr": 0.01}  # small data: few, larger steps


def _matrix(pairs: list[tuple[int, int]], shape: tuple[int, int]) -> sp.csr_matrix:
    if not pairs:
        return sp.csr_matrix(shape, dtype=np.float32)
    u, i = zip(*pairs)
    return sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=shape)


def make_data(seed: int = 0, image_missing: int = 0, with_embeddings: bool = True) -> InteractionData:
    """Users each like one of four item clusters, biased to popular items; text (and less so image) reveal
    the cluster, audio is noise. `image_missing` items (the last ones) have no image."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, N_CLUSTERS, N_ITEMS)
    popularity = rng.zipf(1.6, N_ITEMS).clip(max=30).astype(float)
    centres = rng.normal(size=(N_CLUSTERS, 16))
    text = centres[cluster] + 0.3 * rng.normal(size=(N_ITEMS, 16))
    image = centres[cluster][:, :8] + 1.0 * rng.normal(size=(N_ITEMS, 8))
    audio = rng.normal(size=(N_ITEMS, 8))
    taste = rng.integers(0, N_CLUSTERS, N_USERS)
    splits: list[list[tuple[int, int]]] = [[], [], []]
    for u in range(N_USERS):
        p = popularity * np.where(cluster == taste[u], 1.0, 0.03)
        items = rng.choice(N_ITEMS, size=14, replace=False, p=p / p.sum())
        for k, i in enumerate(items):
            splits[0 if k < 10 else 1 if k < 12 else 2].append((u, int(i)))
    shape = (N_USERS, N_ITEMS)
    ids = [f"item{i}" for i in range(N_ITEMS)]
    image_mask = np.ones(N_ITEMS, bool)
    if image_missing:
        image_mask[-image_missing:] = False
        image[-image_missing:] = 0.0
    emb = EmbeddingSet(
        item_ids=ids,
        matrices={"text": text.astype(np.float32), "image": image.astype(np.float32),
                  "audio": audio.astype(np.float32)},
        masks={"text": np.ones(N_ITEMS, bool), "image": image_mask, "audio": np.ones(N_ITEMS, bool)},
        modality_of={"text": "text", "image": "image", "audio": "audio"},
        encoder_ids={"text": "generated", "image": "generated", "audio": "generated"},
    ) if with_embeddings else None
    return InteractionData([f"u{u}" for u in range(N_USERS)], ids, *(_matrix(s, shape) for s in splits),
                           embeddings=emb, split_name="generated", seed=seed)


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return make_data()


def held_out_recall(model: Recommender, data: InteractionData, k: int = 10) -> float:
    """Mean test Recall@k over users with test items, full ranking, training items masked."""
    users = np.flatnonzero(np.diff(data.test.indptr) > 0)
    scores = model.score(users).astype(np.float64)
    assert scores.shape == (users.size, data.n_items) and np.isfinite(scores).all()
    rows, cols = data.train[users].nonzero()
    scores[rows, cols] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    truth = data.test[users]
    hits = np.asarray(truth[np.arange(users.size)[:, None], top].sum(axis=1)).ravel()
    return float(np.mean(hits / np.diff(truth.indptr)))


def random_recall(data: InteractionData, k: int = 10) -> float:
    """Expected test Recall@k of a uniformly random ranking of each user's unseen items."""
    users = np.flatnonzero(np.diff(data.test.indptr) > 0)
    unseen = data.n_items - np.diff(data.train.indptr)[users]
    return float(np.mean(np.minimum(k / unseen, 1.0)))


# -- known answers --------------------------------------------------------------------------------------
def test_popularity_ranks_items_by_training_count() -> None:
    # train counts per item: [3, 1, 0, 2, 1] -> ranking 0, 3, then 1 and 4 (tie), then 2
    train = _matrix([(0, 0), (1, 0), (2, 0), (0, 1), (0, 3), (1, 3), (2, 4)], (3, 5))
    empty = sp.csr_matrix((3, 5), dtype=np.float32)
    model = Popularity().fit(InteractionData(["a", "b", "c"], list("vwxyz"), train, empty, empty))
    scores = model.score(np.array([0, 2]))
    np.testing.assert_array_equal(scores, [[3, 1, 0, 2, 1]] * 2)
    assert list(np.argsort(-scores[0], kind="stable")) == [0, 3, 1, 4, 2]
    np.testing.assert_array_equal(model.score(np.array([1]), np.array([4, 0])), [[1, 3]])


def _knn_toy() -> InteractionData:
    # u0 {0,1}, u1 {0,1,2}, u2 {1,2}; item 3 never seen
    train = _matrix([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2)], (3, 4))
    empty = sp.csr_matrix((3, 4), dtype=np.float32)
    return InteractionData(["u0", "u1", "u2"], list("abcd"), train, empty, empty)


def test_itemknn_matches_hand_computed_scores() -> None:
    # counts n = [2, 3, 2, 0]; co-occurrence C01 = 2, C02 = 1, C12 = 2; shrink 1:
    # sim01 = 2 / (sqrt(2*3) + 1) = 0.57980, sim02 = 1 / (sqrt(2*2) + 1) = 1/3, sim12 = 0.57980
    # u0 owns {0, 1}: score = row0 + row1 = [sim10, sim01, sim02 + sim12, 0] = [.5798, .5798, .9131, 0]
    s = 2 / (np.sqrt(6) + 1)
    model = ItemKNN(k=2, shrink=1.0).fit(_knn_toy())
    np.testing.assert_allclose(model.score(np.array([0]))[0], [s, s, 1 / 3 + s, 0.0], rtol=1e-6)
    # u2 owns {1, 2}: row1 + row2 = [sim10 + sim20, sim21, sim12, 0] = [.9131, .5798, .5798, 0]
    np.testing.assert_allclose(model.score(np.array([2]))[0], [s + 1 / 3, s, s, 0.0], rtol=1e-6)


def test_itemknn_keeps_only_k_neighbours_per_item() -> None:
    # k = 1: row0 keeps item 1 (.5798 > .3333); row1 keeps item 0 (tie .5798 with item 2: lower index);
    # so u0 = row0 + row1 = [.5798, .5798, 0, 0]: item 2 lost both of its links
    s = 2 / (np.sqrt(6) + 1)
    model = ItemKNN(k=1, shrink=1.0).fit(_knn_toy())
    np.testing.assert_allclose(model.score(np.array([0]))[0], [s, s, 0.0, 0.0], rtol=1e-6)


# -- training machinery -----------------------------------------------------------------------------------
def test_sampled_negatives_are_never_training_positives(data: InteractionData) -> None:
    users, pos, neg = sample_triples(data.train, np.random.default_rng(3))
    train = data.train.toarray() > 0
    assert users.size == data.train.nnz
    assert train[users, pos].all() and not train[users, neg].any()
    # every training pair exactly once
    assert len(set(zip(users.tolist(), pos.tolist()))) == data.train.nnz


def test_early_stopping_keeps_the_best_epoch_state() -> None:
    stopper = EarlyStopping(patience=2)
    values = [0.1, 0.3, 0.2, 0.25, 0.9]
    stopped_at = next(e for e, v in enumerate(values, 1) if stopper.update(e, v, lambda v=v: {"value": v}))
    assert stopped_at == 4 and stopper.best_epoch == 2 and stopper.best_state == {"value": 0.3}


# -- trained baselines beat chance ------------------------------------------------------------------------
@pytest.mark.parametrize("model_cls", [BPRMF, VBPR])
def test_trained_baselines_beat_random_on_held_out_recall(model_cls: type, data: InteractionData) -> None:
    reports = []
    model = model_cls(dim=16, **FAST).fit(data, progress=reports.append)
    assert isinstance(model, Recommender) and model.kind == "baseline"
    assert len(model.history) == len(reports) <= FAST["epochs"]
    assert all(np.isfinite(h["loss"]) for h in model.history)
    assert held_out_recall(model, data) > 1.5 * random_recall(data)


def test_bprmf_is_deterministic_for_a_seed(data: InteractionData) -> None:
    a = BPRMF(dim=8, epochs=5, patience=5).fit(data).score(np.arange(5))
    b = BPRMF(dim=8, epochs=5, patience=5).fit(data).score(np.arange(5))
    c = BPRMF(dim=8, epochs=5, patience=5, seed=1).fit(data).score(np.arange(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("model", [Popularity(), ItemKNN(k=10), BPRMF(dim=8, epochs=3),
                                   VBPR(dim=8, content_dim=8, epochs=3), ContentModel("text", learned=False)])
def test_scoring_a_subset_of_items_equals_those_columns(model: Recommender, data: InteractionData) -> None:
    model.fit(data)
    users, items = np.array([3, 0, 7]), np.array([5, 1, 60])
    full = model.score(users)
    assert full.dtype == np.float32 and full.shape == (3, data.n_items)
    np.testing.assert_allclose(model.score(users, items), full[:, items], rtol=1e-5, atol=1e-6)


# -- content models ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("learned", [False, True])
def test_informative_modality_beats_noise_modality(learned: bool, data: InteractionData) -> None:
    text = ContentModel("text", learned=learned, dim=16, **FAST).fit(data)
    audio = ContentModel("audio", learned=learned, dim=16, **FAST).fit(data)
    assert text.name == "text-only" and audio.name == "audio-only" and text.kind == "single-modality"
    assert held_out_recall(text, data) > held_out_recall(audio, data) + 0.1
    assert held_out_recall(text, data) > 1.5 * random_recall(data)


@pytest.mark.parametrize("learned", [False, True])
def test_items_missing_the_modality_score_lowest_never_nan(learned: bool) -> None:
    data = make_data(image_missing=10)
    model = ContentModel("image", learned=learned, dim=8, epochs=5).fit(data)
    scores = model.score(np.arange(N_USERS))
    assert np.isfinite(scores).all()
    missing = np.arange(N_ITEMS - 10, N_ITEMS)
    present = np.arange(N_ITEMS - 10)
    assert (scores[:, missing].max(axis=1) < scores[:, present].min(axis=1)).all()


def test_content_model_names_the_missing_modality() -> None:
    data = make_data()
    data.embeddings = data.embeddings.subset(np.arange(N_ITEMS))
    for key in ("matrices", "masks", "modality_of", "encoder_ids"):
        getattr(data.embeddings, key).pop("image")
    with pytest.raises(MissingModalityError, match="image"):
        ContentModel("image").fit(data)
    with pytest.raises(MissingModalityError, match="embedding set"):
        ContentModel("text").fit(make_data(with_embeddings=False))


def test_misaligned_embeddings_are_refused() -> None:
    data = make_data()
    data.embeddings = data.embeddings.subset(np.arange(N_ITEMS)[::-1])
    with pytest.raises(CatalogError, match="item_ids"):
        VBPR(epochs=1).fit(data)


# -- late fusion ------------------------------------------------------------------------------------------
def test_weight_grid_covers_the_simplex() -> None:
    grid = weight_grid(3, 0.25)
    assert len(grid) == 15 and all(abs(sum(w) - 1) < 1e-9 for w in grid)
    assert (1.0, 0.0, 0.0) in grid and (0.25, 0.25, 0.5) in grid
    with pytest.raises(ValueError, match="grid_step"):
        weight_grid(2, 0.3)


def test_combine_averages_over_models_that_score_the_item() -> None:
    # item 0: both models (.5*1 + .5*3 = 2); item 1: only model a (-1); item 2: neither -> below the rest
    a = np.array([[1.0, -1.0, np.nan]], np.float32)
    b = np.array([[3.0, np.nan, np.nan]], np.float32)
    np.testing.assert_allclose(combine([a, b], (0.5, 0.5)), [[2.0, -1.0, -2.0]])


def test_late_fusion_tunes_weights_and_never_scores_nan() -> None:
    data = make_data(image_missing=10)
    model = LateFusion(content=ContentConfig(dim=8, **{**FAST, "epochs": 30})).fit(data)
    assert [m.name for m in model.members] == ["text-only", "image-only", "audio-only"]
    assert abs(sum(model.weights.values()) - 1) < 1e-9 and len(model.weight_search) == 15
    assert model.weights["text"] >= model.weights["audio"]  # the noise modality is not the one trusted
    assert held_out_recall(model, data) > 1.5 * random_recall(data)
    assert model.get_config()["weights"] == model.weights


def test_late_fusion_refuses_an_absent_modality(data: InteractionData) -> None:
    with pytest.raises(MissingModalityError, match="video"):
        LateFusion(modalities=["text", "video"]).fit(data)


# -- registry ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_registry_builds_and_fits_every_baseline(name: str) -> None:
    data = make_data()
    model = build_model(name)
    assert model.name == name and isinstance(model, Recommender)
    assert model.get_config()["name"] == name
    if name in ("bprmf", "vbpr", "lightgcn"):
        model = build_model(name, epochs=2)
    elif name in ("als", "implicit-bpr"):
        model = build_model(name, iterations=2, threads=1)
    elif name.endswith("-only"):
        model = build_model(name, epochs=2)
        assert model.config.epochs == 2
    elif name == "late-fusion":
        model = build_model(name, content=ContentConfig(epochs=2))
    scores = model.fit(data).score(np.arange(4))
    assert scores.shape == (4, N_ITEMS) and np.isfinite(scores).all()


@pytest.mark.parametrize("name", sorted(FUSION))
def test_registry_builds_fusion_variants(name: str) -> None:
    if not fusion_available():
        pytest.skip("core.models.fusion is not in this checkout yet")
    model = build_model(name)
    assert model.name == name


def test_registry_starts_fusion_models_from_a_given_base_config() -> None:
    from core.models.fusion.config import PRESETS, FusionConfig

    plain = build_model("fusion-concat")
    assert plain.config == dataclasses.replace(FusionConfig(), strategy="concat")
    tuned = build_model("fusion-concat", base=PRESETS["lfm2k"], epochs=3)
    assert tuned.config == dataclasses.replace(PRESETS["lfm2k"], strategy="concat", epochs=3)
    # baselines ignore the base config
    assert build_model("bprmf", base=PRESETS["lfm2k"]).config == build_model("bprmf").config


def test_registry_rejects_unknown_names_and_settings() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build_model("nope")
    with pytest.raises(ValueError, match="bprmf"):
        build_model("bprmf", dimension=3)


def test_list_models_follows_the_modalities() -> None:
    data = make_data()
    full = list_models(data.embeddings)
    assert {"popularity", "itemknn", "bprmf", "vbpr", "text-only", "image-only", "audio-only",
            "late-fusion"} <= set(full)
    text_only = data.embeddings.subset(np.arange(N_ITEMS))
    for f in ("image", "audio"):
        for key in ("matrices", "masks", "modality_of", "encoder_ids"):
            getattr(text_only, key).pop(f)
    names = list_models(text_only)
    assert "text-only" in names and "image-only" not in names and "late-fusion" not in names
    assert list_models(None) == ["popularity", "itemknn", "bprmf", "ease", "als", "implicit-bpr", "lightgcn"]


def test_vbpr_scores_a_large_batch_as_item_by_item() -> None:
    # a batch whose items outnumber the catalog projects every item's content once: the same scores and
    # gradients as projecting each picked item
    import torch

    from core.models.vbpr import _VBPR

    torch.manual_seed(0)
    module = _VBPR(6, np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32), 4, 3, 0.1)
    torch.nn.init.normal_(module.content_bias.weight)
    u, i, j = torch.tensor([0, 1, 2, 5]), torch.tensor([0, 4, 4, 2]), torch.tensor([3, 1, 0, 0])
    assert 2 * u.numel() >= 5
    pos, neg, reg = module.bpr_scores(u, i, j)
    (pos.sum() - 2 * neg.sum() + reg).backward()
    grad = module.project.weight.grad.clone()
    module.zero_grad()
    gi, ci, bi = module._items(i)
    gj, cj, bj = module._items(j)
    gu, tu = module.gamma_u(u), module.theta_u(u)
    pos2, neg2 = (gu * gi).sum(-1) + (tu * ci).sum(-1) + bi, (gu * gj).sum(-1) + (tu * cj).sum(-1) + bj
    torch.testing.assert_close(pos, pos2)
    torch.testing.assert_close(neg, neg2)
    (pos2.sum() - 2 * neg2.sum() + reg.detach()).backward()
    torch.testing.assert_close(grad, module.project.weight.grad)
