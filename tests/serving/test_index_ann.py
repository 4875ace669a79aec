"""The FAISS IVF index saved beside a model: reloads to the same answers as a fresh build, is never rebuilt
while the model's vectors are unchanged, and what-if queries through it re-rank exactly with items that lack
the weighted modality kept behind those that carry it; its head (the items of largest score bound, scanned
exactly beside the visited cells) and the upload candidate count are tuned, saved and reloaded."""
from __future__ import annotations


import numpy as np
import pytest
import scipy.sparse as sp

import core.serving.index as index_module
import core.serving.index.saved as saved_index_module
from core.serving.query import Query
from core.serving.settings import ServingSettings
from core.catalog.model import Catalog, Item
from core.encoders.embeddings import EmbeddingSet
from core.encoders.base import l2_normalise
from core.serving.index import ExactIndex, IVFConfig, IVFIndex, ensure_index, load_index, save_index
from core.data.interactions import InteractionData

pytest.importorskip("faiss", reason="faiss-cpu is not installed: `pip install faiss-cpu`")


def clustered(n: int, dim: int = 17, clusters: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return (centres[rng.integers(clusters, size=n)] + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)


def test_saved_index_reloads_with_the_answers_of_a_fresh_build(tmp_path):
    vectors = clustered(4000)
    rng = np.random.default_rng(1)  # queries near the items, like a listener's vector
    queries = (vectors[rng.choice(4000, 60)] + 0.3 * rng.standard_normal((60, 17))).astype(np.float32)
    config = IVFConfig(build_threads=1)
    built = ensure_index(tmp_path, vectors, "ivf", config)
    assert (tmp_path / "index" / "index.json").is_file()
    loaded = load_index(tmp_path, vectors)
    fresh = IVFIndex(vectors, IVFConfig(build_threads=1, nprobe=built.nprobe))  # same cells, same nprobe
    assert loaded is not None and loaded.kind == "ivf" and loaded.nprobe == built.nprobe
    for q in queries:
        rows, scores = loaded.search(q, 10, exclude={0, 1})
        fresh_rows, fresh_scores = fresh.search(q, 10, exclude={0, 1})
        assert rows.tolist() == fresh_rows.tolist() == built.search(q, 10, exclude={0, 1})[0].tolist()
        np.testing.assert_allclose(scores, fresh_scores, rtol=1e-6)
        np.testing.assert_allclose(scores, vectors[rows] @ q, rtol=1e-4, atol=1e-4)


def test_a_saved_index_is_loaded_not_rebuilt_and_refused_for_other_vectors(tmp_path, monkeypatch):
    vectors = clustered(3000)
    ensure_index(tmp_path, vectors, "ivf", IVFConfig(build_threads=1))

    def no_build(*args, **kwargs):
        raise AssertionError("the saved index should have been loaded")

    monkeypatch.setattr(saved_index_module, "build_index", no_build)
    assert ensure_index(tmp_path, vectors, "ivf").kind == "ivf"  # a second start loads it
    changed = vectors.copy()
    changed[7] += 1.0
    assert load_index(tmp_path, changed) is None  # a retrained model's vectors do not reuse it
    monkeypatch.undo()
    rebuilt = ensure_index(tmp_path, changed, "ivf", IVFConfig(build_threads=1))
    assert load_index(tmp_path, changed) is not None and rebuilt.n_items == 3000
    save_index(ExactIndex(changed), tmp_path / "exact", changed)  # exact search saves nothing
    assert not (tmp_path / "exact").exists()


# -- through the recommend service --------------------------------------------------------------------
@pytest.fixture(scope="module")
def world():
    """1,500 items in 12 clusters with text, image and audio fields (a quarter lack the image), 150 users,
    and a fusion model trained a few epochs."""
    from core.models.fusion.config import FusionConfig
    from core.models.fusion.recommender import FusionRecommender
    from core.tuning.baselines import member_search

    rng = np.random.default_rng(3)
    n_items, n_users = 1500, 150
    cluster = rng.integers(12, size=n_items)
    fields = {"text": "text", "image": "image", "audio": "audio"}
    masks = {f: np.ones(n_items, bool) for f in fields}
    masks["image"] = rng.random(n_items) > 0.25
    matrices = {f: l2_normalise((rng.normal(size=(12, 10))[cluster] + 0.4 * rng.normal(size=(n_items, 10)))
                                * masks[f][:, None]) for f in fields}
    ids = [f"item{j}" for j in range(n_items)]
    emb = EmbeddingSet(item_ids=ids, matrices=matrices, masks=masks, modality_of=fields,
                       encoder_ids={f: f"test/{f}" for f in fields})
    rows, cols = [], []
    for u in range(n_users):
        liked = rng.choice(np.flatnonzero(cluster == u % 12), size=10, replace=False)
        rows += [u] * 10
        cols += liked.tolist()
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    data = InteractionData(user_ids=[f"u{u}" for u in range(n_users)], item_ids=ids, train=train, valid=empty,
                           test=empty, embeddings=emb, split_name="all-train")
    config = FusionConfig(strategy="gated", dim=16, hidden=0, use_item_id=False, user_mode="id", loss="bpr",
                          epochs=3, batch_size=512, lr=0.01, align_weight=0.0, seed=0)
    model = FusionRecommender(config, member_search=member_search).fit(data)
    catalog = Catalog("ann-world", [Item(i, i) for i in ids])
    return catalog, emb, model, data


def test_single_modality_what_if_through_the_ann_path_keeps_items_with_it_first(world, tmp_path, monkeypatch):
    from core.serving.service import RecommendService

    catalog, emb, model, data = world
    built = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path)
    assert built.index.kind == "ivf" and (tmp_path / "index" / "index.json").is_file()
    # the saved index reloaded with a candidate set well below the catalog
    service = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path,
                               settings=ServingSettings(whatif_candidates=100))
    exact = RecommendService(catalog, emb, model, encoders={}, index="exact", data=data)
    has_image = emb.modality_mask("image")
    image_only = {"text": 0.0, "image": 1.0, "audio": 0.0}
    for user in data.user_ids[:20]:
        q = service.encode_query(Query(user_id=user))
        result = service.recommend(q, k=30, modality_weights=image_only)
        assert "exact re-rank" in result.index_kind
        flags = [bool(has_image[catalog.index_of(r.item_id)]) for r in result.items]
        assert flags == sorted(flags, reverse=True), flags  # never one without an image ahead of one with it
        scores = [r.score for r in result.items if has_image[catalog.index_of(r.item_id)]]
        assert scores == sorted(scores, reverse=True)
        # the re-ranked scores are the exact what-if scores of those items
        want = exact.scores(q.vector, np.array([catalog.index_of(r.item_id) for r in result.items]),
                            modality_weights=image_only)
        np.testing.assert_allclose([r.score for r in result.items], want, rtol=1e-4, atol=1e-4)
    # with a candidate set as large as the default, the what-if top 10 matches exact what-if scoring
    service = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path,
                               settings=ServingSettings(whatif_candidates=2000))
    mixed = {"text": 0.2, "image": 1.0, "audio": 0.5}
    for user in data.user_ids[:10]:
        q = service.encode_query(Query(user_id=user))
        got = [r.item_id for r in service.recommend(q, k=10, modality_weights=mixed).items]
        assert got == [r.item_id for r in exact.recommend(q, k=10, modality_weights=mixed).items]


def test_service_reloads_the_saved_index_of_its_model(world, tmp_path, monkeypatch):
    from core.serving.service import RecommendService

    catalog, emb, model, data = world
    first = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path)

    def no_build(*args, **kwargs):
        raise AssertionError("the service rebuilt an index that was saved beside its model")

    monkeypatch.setattr(saved_index_module, "build_index", no_build)
    second = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path)
    q = second.encode_query(Query(user_id=data.user_ids[0]))
    assert [r.item_id for r in second.recommend(q, k=10).items] == [r.item_id for r in first.recommend(q, k=10).items]


# -- tuning and what is saved with the index ----------------------------------------------------------
def test_ivf_nprobe_is_tuned_on_its_own_vectors_and_capped_with_a_warning(caplog):
    vectors = clustered(4000)
    index = IVFIndex(vectors, IVFConfig(build_threads=1))
    assert index.nprobe < index.nprobe_ceiling and index.tuned_recall >= index.config.target_recall
    noise = np.random.default_rng(2).standard_normal((4000, 17)).astype(np.float32)  # no structure to find
    with caplog.at_level("WARNING", logger="core.serving.index"):
        capped = IVFIndex(noise, IVFConfig(build_threads=1, target_recall=0.999, max_probe_share=0.05))
    assert capped.nprobe == capped.nprobe_ceiling == int(capped._index.nlist * 0.05)
    assert capped.tuned_recall < 0.999 and "ceiling" in caplog.text


def test_saved_indexes_reload_with_their_search_width_and_equal_results(tmp_path):
    import json

    vectors = clustered(3000)
    queries = vectors[:40] + 0.2
    for kind, width in (("ivf", "nprobe"), ("hnsw", "ef")):
        folder = tmp_path / kind
        built = ensure_index(folder, vectors, kind)
        meta = json.loads((folder / "index" / "index.json").read_text())
        assert meta[width] == getattr(built, width) and meta["tuned_recall"] == built.tuned_recall
        loaded = load_index(folder, vectors)
        assert loaded.kind == kind and getattr(loaded, width) == getattr(built, width)
        assert loaded.tuned_recall == built.tuned_recall
        for q in queries:
            assert loaded.search(q, 10, exclude={3})[0].tolist() == built.search(q, 10, exclude={3})[0].tolist()


def chosen_then_reloaded(world, tmp_path, monkeypatch, setting: str, tuner: str, settings: ServingSettings):
    """Two services over one saved IVF index: the first chooses `setting` under `settings` and saves it in
    index.json, the second reloads it (calling `tuner` again fails the test) with the settings saved beside
    the index."""
    import json

    from core.serving.service import RecommendService

    catalog, emb, model, data = world
    first = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path,
                             settings=settings)
    meta = json.loads((tmp_path / "index" / "index.json").read_text())
    assert meta["settings"][setting] == getattr(first, setting)

    def no_tuning(self):
        raise AssertionError(f"the saved {setting} should have been reloaded")

    monkeypatch.setattr(RecommendService, tuner, no_tuning)
    second = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path)
    assert getattr(second, setting) == getattr(first, setting)
    assert second.settings == settings  # read back from beside the index
    return first, second


def test_the_what_if_candidate_count_is_chosen_once_and_saved_with_the_index(world, tmp_path, monkeypatch):
    from core.serving.service import RecommendService

    catalog, emb, model, data = world
    settings = ServingSettings(whatif_max_share=0.5, whatif_min_candidates=100)  # this small catalog: 100..750
    first, second = chosen_then_reloaded(world, tmp_path, monkeypatch, "whatif_candidates", "tune_whatif_candidates",
                                         settings)
    assert first.whatif_candidates in (0, 100, 200, 400)
    exact = RecommendService(catalog, emb, model, encoders={}, index="exact", data=data)
    weights = {"text": 0.0, "image": 1.0, "audio": 0.0}
    hits = 0
    for user in data.user_ids[:20]:  # the chosen count holds its recall on listeners as well
        q = second.encode_query(Query(user_id=user))
        got = {r.item_id for r in second.recommend(q, k=10, modality_weights=weights).items}
        hits += len(got & {r.item_id for r in exact.recommend(q, k=10, modality_weights=weights).items})
    assert hits / 200 >= 0.9


def test_modality_parts_from_the_kept_projections_equal_masked_scoring(world):
    catalog, emb, model, data = world
    rng = np.random.default_rng(8)
    q = rng.standard_normal(model.config.dim).astype(np.float32)
    rows = rng.choice(len(catalog.items), size=50, replace=False)
    base, parts = model.modality_part_scores(q, rows)
    subsets = [()] + [(m,) for m in model.modalities] + [tuple(model.modalities)]
    values = model.subset_scores(q, rows, subsets)
    np.testing.assert_allclose(base, model.score_vector(q, rows, modality_mask={m: False for m in model.modalities}),
                               rtol=1e-5, atol=1e-5)
    for k, m in enumerate(model.modalities):
        masked = model.score_vector(q, rows, modality_mask={x: x == m for x in model.modalities})
        np.testing.assert_allclose(values[1 + k], masked, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(base + parts[:, k], masked, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(values[-1], model.score_vector(q, rows), rtol=1e-5, atol=1e-5)
    all_base, all_parts = model.modality_part_scores(q)
    np.testing.assert_allclose(all_parts[rows], parts, rtol=1e-6, atol=1e-6)


def test_upload_terms_re_ranked_over_index_candidates_match_exact_scoring(world, tmp_path, monkeypatch):
    from core.serving.service import RecommendService

    catalog, emb, model, data = world
    service = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path,
                               settings=ServingSettings(term_candidates=1500))  # every item: must equal exact
    exact = RecommendService(catalog, emb, model, encoders={}, index="exact", data=data)
    for row in (3, 40, 700):
        q = service.encode_fields({f: emb.matrices[f][row] for f in emb.fields if emb.masks[f][row]})
        got = service.recommend(q, k=10)
        assert "exact re-rank" in got.index_kind
        want = exact.recommend(q, k=10)
        assert [r.item_id for r in got.items] == [r.item_id for r in want.items]
        np.testing.assert_allclose([r.score for r in got.items], [r.score for r in want.items], rtol=1e-4, atol=1e-4)


def test_nprobe_is_tuned_on_the_services_listener_and_liked_queries(world, tmp_path, monkeypatch):
    import json

    from core.serving.service import RecommendService

    catalog, emb, model, data = world
    seen = {}
    tune = IVFIndex._tune

    def spy(self, vectors, queries):
        seen.update(queries)
        return tune(self, vectors, queries)

    monkeypatch.setattr(IVFIndex, "_tune", spy)
    service = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path)
    assert set(seen) == {"listener", "liked", "similar items"}
    listeners = {tuple(np.round(model.user_vector(u), 5)) for u in range(len(data.user_ids))}
    # listener samples are the model's listeners' vectors with the learned bias (1, 0) and no prior
    listener, liked = seen["listener"], seen["liked"]
    assert all(tuple(np.round(q[:-2], 5)) in listeners for q in listener.vectors)
    np.testing.assert_array_equal(listener.vectors[:, -2:], [[1.0, 0.0]] * len(listener))
    np.testing.assert_allclose(liked.vectors[:, -2:], [[0.0, service.prior_weight]] * len(liked))
    # each sample excludes what the service excludes: the listener's training items, the liked items
    train = data.train.tocsr()
    for q, ex in listener.items():
        user = next(u for u in range(len(data.user_ids)) if np.allclose(model.user_vector(u), q[:-2]))
        assert set(ex) == set(train[user].indices.tolist())
    assert all(len(ex) == 3 for _, ex in liked.items())
    assert all(len(ex) == 3 for _, ex in seen["similar items"].items())
    meta = json.loads((tmp_path / "index" / "index.json").read_text())
    assert meta["tuned_on"]["listener"]["queries"] == len(data.user_ids)
    assert meta["tuned_recall"] == min(s["recall"] for s in meta["tuned_on"].values())
    reloaded = load_index(tmp_path, service.index_vectors())
    assert reloaded.tuned_on == meta["tuned_on"] and reloaded.nprobe == service.index.nprobe
    # each kind of query is searched with the width its own samples needed; others with the widest
    assert reloaded.nprobe_for == service.index.nprobe_for == {n: t["nprobe"] for n, t in meta["tuned_on"].items()}
    assert service.index.nprobe == max(service.index.nprobe_for.values())
    # the recall recorded for the listener set is that of the listener queries the service sends
    exact = ExactIndex(service.index_vectors())
    hits = 0
    for user in data.user_ids:
        q = service.encode_query(Query(user_id=user))
        query = np.concatenate([q.vector, [1.0, 0.0]]).astype(np.float32)
        hits += len(np.intersect1d(service.index.search(query, 10, q.exclude_rows, kind="listener")[0],
                                   exact.search(query, 10, q.exclude_rows)[0]))
    assert hits / (10 * len(data.user_ids)) == pytest.approx(meta["tuned_on"]["listener"]["recall"])


def test_without_listeners_nprobe_is_tuned_on_the_index_vectors(tmp_path):
    import json

    ensure_index(tmp_path, clustered(3000), "ivf", IVFConfig(build_threads=1), queries=lambda: {})
    meta = json.loads((tmp_path / "index" / "index.json").read_text())
    assert list(meta["tuned_on"]) == [index_module.ITEM_SAMPLE]


# -- the head: items of the largest score bound, scanned exactly beside the visited cells ---------------
def popular_world(n: int = 4000, dim: int = 16, clusters: int = 40, popular: int = 30, seed: int = 5):
    """(vectors (n, dim + 1): clustered content then a prior column, popular rows, cluster per row): a few
    popular items (prior 1, the others ≤ 0.1) spread over every cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    cluster = rng.integers(clusters, size=n)
    content = centres[cluster] + 0.3 * rng.standard_normal((n, dim))
    prior = 0.1 * rng.random(n)
    hits = rng.choice(n, size=popular, replace=False)
    prior[hits] = 1.0
    return np.hstack([content, prior[:, None]]).astype(np.float32), hits, cluster


def liked_queries(vectors: np.ndarray, cluster: np.ndarray, n: int, weight: float, seed: int) -> np.ndarray:
    """(n, dim + 1) content queries: the mean of three items of one cluster, with the prior weighted."""
    rng = np.random.default_rng(seed)
    out = []
    for c in rng.integers(cluster.max() + 1, size=n):
        rows = rng.choice(np.flatnonzero(cluster == c), size=3)
        out.append(np.concatenate([vectors[rows, :-1].mean(axis=0), [weight]]))
    return np.asarray(out, np.float32)


def test_a_liked_query_finds_a_popular_far_item_through_the_head():
    from core.serving.index import SampleQueries

    vectors, popular, cluster = popular_world()
    weight = 12.0  # the prior's weight: popular items of other clusters reach every query's top 10 (3.5 of 10)
    samples = SampleQueries(liked_queries(vectors, cluster, 100, weight, seed=1), kind="content")
    config = IVFConfig(build_threads=1, cell_columns=16, head_min=32)
    index = IVFIndex(vectors, config, queries={"liked": samples})
    assert index.head_for["liked"] > 0 and index.tuned_on["liked"]["recall"] >= config.target_recall
    nprobe, head_rows, _ = index._plans["content"]
    # the bound |q̄| |v| + w · prior ranks popular items high (large norms compete with them)
    assert len(set(popular.tolist()) & set(head_rows.tolist())) >= len(popular) // 2
    exact = ExactIndex(vectors)
    far, found = 0, 0
    for q in liked_queries(vectors, cluster, 60, weight, seed=2):  # new queries of the same kind
        truth, _ = exact.search(q, 10)
        cells, _ = index._cell_search(q, 10, nprobe)
        missed = set(truth.tolist()) & set(popular.tolist()) - set(cells.tolist())  # popular, in no visited cell
        rows, scores = index.search(q, 10, kind="content")
        np.testing.assert_allclose(scores, vectors[rows] @ q, rtol=1e-4, atol=1e-4)
        far, found = far + len(missed), found + len(missed & set(rows.tolist()))
    assert far >= 20  # the visited cells alone miss popular items of other clusters ...
    assert found >= 0.9 * far  # ... which the head brings back


def test_the_search_equals_exact_when_the_head_holds_every_item(caplog):
    vectors, _, cluster = popular_world(n=2000)
    queries = liked_queries(vectors, cluster, 40, 3.0, seed=3)
    # a target no pair reaches: both ceilings, and a head of every item
    config = IVFConfig(build_threads=1, cell_columns=16, target_recall=1.01, max_probe_share=0.05,
                       max_head_share=1.0)
    with caplog.at_level("WARNING", logger="core.serving.index"):
        index = IVFIndex(vectors, config, queries={"liked": queries})
    assert "ceilings" in caplog.text and index.head_for["liked"] == len(vectors)
    exact = ExactIndex(vectors)
    for q in queries:
        for exclude in ((), {int(exact.search(q, 1)[0][0]), 5}):
            rows, scores = index.search(q, 10, exclude, kind="liked")
            want_rows, want_scores = exact.search(q, 10, exclude)
            assert rows.tolist() == want_rows.tolist()
            np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)


def test_tuned_head_sizes_and_nprobe_round_trip_through_index_json(tmp_path):
    import json

    from core.serving.index import SampleQueries

    vectors, _, cluster = popular_world()
    config = IVFConfig(build_threads=1, cell_columns=16, head_min=32)
    queries = {"liked": SampleQueries(liked_queries(vectors, cluster, 60, 12.0, seed=1), kind="content"),
               "plain": liked_queries(vectors, cluster, 60, 0.0, seed=4)}
    built = ensure_index(tmp_path, vectors, "ivf", config, queries=lambda: queries)
    meta = json.loads((tmp_path / "index" / "index.json").read_text())
    assert meta["head_for"] == built.head_for and meta["nprobe_for"] == built.nprobe_for
    assert meta["kind_of"] == {"liked": "content", "plain": "plain"} and meta["cell_columns"] == 16
    assert {n: t["head"] for n, t in meta["tuned_on"].items()} == built.head_for
    loaded = load_index(tmp_path, vectors)
    assert (loaded.head_for, loaded.nprobe_for, loaded.head_key) == (built.head_for, built.nprobe_for, built.head_key)
    for kind in (None, "content", "plain"):  # the heads are found again from the vectors, row for row
        assert loaded._plans[kind][0] == built._plans[kind][0]
        assert loaded._plans[kind][1].tolist() == built._plans[kind][1].tolist()
    for q in liked_queries(vectors, cluster, 20, 12.0, seed=9):
        for kind in ("content", "plain", None):
            assert loaded.search(q, 10, {1, 2}, kind=kind)[0].tolist() == \
                built.search(q, 10, {1, 2}, kind=kind)[0].tolist()


def test_the_upload_candidate_count_is_chosen_by_recall_and_saved_with_the_index(world, tmp_path, monkeypatch):
    from core.serving.service import RecommendService

    catalog, emb, model, data = world
    settings = ServingSettings(whatif_max_share=0.5, term_min_candidates=50)  # this small catalog: 50..400
    first, second = chosen_then_reloaded(world, tmp_path, monkeypatch, "term_candidates", "tune_term_candidates",
                                         settings)
    assert first.term_candidates in (0, 50, 100, 200, 400)
    exact = RecommendService(catalog, emb, model, encoders={}, index="exact", data=data)
    hits = 0
    rows = np.random.default_rng(4).choice(len(catalog.items), size=20, replace=False)
    for row in rows:  # uploads not in the tuning sample: the chosen count holds its recall
        fields = {f: emb.matrices[f][row] + 0.02 for f in emb.fields if emb.masks[f][row]}
        got = second.recommend(second.encode_fields(fields), k=10)
        assert got.index_kind == ("ivf+exact re-rank" if second.term_candidates else "exact")
        want = exact.recommend(exact.encode_fields(fields), k=10)
        hits += len({r.item_id for r in got.items} & {r.item_id for r in want.items})
    assert hits / 200 >= 0.9


def test_serving_settings_are_saved_beside_the_index_and_said_on_the_protocol_card(world, tmp_path):
    import json
    from dataclasses import replace

    from core.serving.service import RecommendService
    from core.serving.settings import SETTINGS_FILE

    catalog, emb, model, data = world
    settings = ServingSettings(term_candidates=300, history_candidates=400)
    first = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path,
                             settings=settings)
    saved = json.loads((tmp_path / "index" / SETTINGS_FILE).read_text())
    assert saved["term_candidates"] == 300 and saved["history_candidates"] == 400
    second = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path)
    assert second.settings == settings  # read back with the index, not the defaults
    row = 40
    q = second.encode_fields({f: emb.matrices[f][row] for f in emb.fields if emb.masks[f][row]})
    result = second.recommend(q, k=10)
    assert result.index_kind == "ivf+exact re-rank"
    assert [r.item_id for r in result.items] == [r.item_id for r in first.recommend(q, k=10).items]
    card = result.protocol
    assert card["ranked by"] == "IVF candidates, re-ranked exactly"
    assert card["upload re-rank"] == ("uploads: the index's top 300 candidates re-ranked exactly (set in the "
                                      "serving settings)")
    assert card["known listener re-rank"].startswith("at least 400 candidates")
    second.settings = replace(second.settings, term_candidates=0)  # handed to every part: now scored exactly
    assert second.recommend(q, k=10).index_kind == "exact" and second.ranker.settings.term_candidates == 0
    (tmp_path / "index" / SETTINGS_FILE).unlink()  # an index saved before settings were saved: the defaults
    third = RecommendService(catalog, emb, model, encoders={}, index="ivf", data=data, index_dir=tmp_path)
    assert third.settings == ServingSettings() and third.index.kind == "ivf"
