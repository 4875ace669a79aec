"""The demo catalog generator: deterministic bytes, the configured shape, media that load, and listeners whose
interactions carry the taste they were built with."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.catalog.demo import (
    DOMINANT_SHARE,
    GROUND_TRUTH_FILE,
    PALETTE_NAMES,
    DemoConfig,
    generate_demo,
    load_ground_truth,
    sample_listeners,
    sample_tracks,
    simulate_interactions,
)
from core.catalog.model import Catalog, Item
from core.errors import CatalogError
from core.catalog.media import load_audio, load_image
from core.workspace.imports import ensure_demo_catalog

SMALL = DemoConfig(n_tracks=24, n_listeners=20)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Catalog, Path]:
    out = tmp_path_factory.mktemp("demo-a")
    return generate_demo(out, SMALL), out


@pytest.fixture(scope="module")
def default_tables() -> tuple[DemoConfig, list, list, object]:
    """The full default catalog's tracks, listeners and interactions, without rendering media."""
    config = DemoConfig()
    tracks, listeners = sample_tracks(config), sample_listeners(config)
    return config, tracks, listeners, simulate_interactions(config, tracks, listeners)


# -- determinism ------------------------------------------------------------------------------------
def test_same_seed_gives_identical_files_whatever_the_workers(small, tmp_path: Path) -> None:
    catalog_a, out_a = small
    catalog_b = generate_demo(tmp_path / "b", SMALL, workers=1)
    hashes_a, hashes_b = _hashes(out_a), _hashes(tmp_path / "b")
    assert len(hashes_a) >= 2 * SMALL.n_tracks - 3  # covers + clips (a few may be missing) + ground truth
    assert hashes_a == hashes_b
    assert catalog_a.content_hash() == catalog_b.content_hash()


@pytest.mark.parametrize("how", ["cannot start", "dies"])
def test_rendering_falls_back_to_threads_when_worker_processes_fail(how, small, tmp_path: Path, monkeypatch,
                                                                     caplog) -> None:
    import subprocess
    import sys

    real = subprocess.Popen

    def popen(cmd, *args, **kwargs):
        if how == "cannot start":
            raise OSError(11, "Resource temporarily unavailable")
        return real([sys.executable, "-c", "print(0, flush=True); raise SystemExit('worker crashed')"], *args,
                    **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    steps: list[int] = []
    with caplog.at_level("WARNING", logger="core.catalog.demo"):
        generate_demo(tmp_path / "t", SMALL, workers=2, progress=lambda done, total, _m: steps.append(done))
    assert "rendering the demo in threads" in caplog.text
    assert how == "cannot start" or "worker crashed" in caplog.text
    assert _hashes(tmp_path / "t") == _hashes(small[1])
    # the threads render every track again after a crashed worker: progress may repeat a step, never go back
    assert sorted(set(steps)) == list(range(SMALL.n_tracks + 3)) and steps == sorted(steps)


def test_worker_processes_render_without_threads(small, tmp_path: Path, monkeypatch) -> None:
    import core.catalog.demo as demo

    def no_threads(*args, **kwargs):
        raise AssertionError("the worker processes should have rendered every track")

    monkeypatch.setattr(demo, "ThreadPoolExecutor", no_threads)
    few = replace(SMALL, n_tracks=8, n_listeners=5)
    steps: list[int] = []
    catalog = generate_demo(tmp_path / "p", few, workers=2, progress=lambda done, total, _m: steps.append(done))
    assert steps == list(range(few.n_tracks + 3))
    assert all((tmp_path / "p" / item.image).is_file() for item in catalog.items if item.image)
    assert all((tmp_path / "p" / item.audio).is_file() for item in catalog.items if item.audio)


def test_different_seed_gives_different_catalog(small, tmp_path: Path) -> None:
    catalog_a, out_a = small
    other = replace(SMALL, seed=SMALL.seed + 1, n_tracks=6, n_listeners=5)
    catalog_c = generate_demo(tmp_path / "c", other)
    hashes_a, hashes_c = _hashes(out_a), _hashes(tmp_path / "c")
    shared = set(hashes_a) & set(hashes_c) - {GROUND_TRUTH_FILE}
    assert shared and all(hashes_a[f] != hashes_c[f] for f in shared)
    assert [i.title for i in catalog_a.items[:6]] != [i.title for i in catalog_c.items]


# -- shape of the catalog -----------------------------------------------------------------------------
def test_small_catalog_matches_its_config(small) -> None:
    catalog, out = small
    assert catalog.name == "demo" and catalog.media_root == out.resolve()
    assert catalog.metadata["source"] == "demo" and catalog.metadata["seed"] == SMALL.seed
    assert catalog.metadata["config"]["n_tracks"] == SMALL.n_tracks
    assert len(catalog.items) == SMALL.n_tracks
    assert catalog.item_ids[0] == "T0001" and len(set(catalog.item_ids)) == SMALL.n_tracks
    assert catalog.users == [f"L{i:04d}" for i in range(1, SMALL.n_listeners + 1)]
    per_user = catalog.interactions.groupby("user_id").size()
    assert (per_user == SMALL.n_tracks // 2).all()  # 20..40 capped at half of a 24-track catalog
    assert not catalog.interactions.duplicated(["user_id", "item_id"]).any()
    assert catalog.interactions["split"].isna().all()
    assert {"genre", "mood", "bpm", "instrument", "palette", "theme"} <= set(catalog.items[0].metadata)


def test_default_config_interaction_counts_and_times(default_tables) -> None:
    config, tracks, listeners, inter = default_tables
    per_user = inter.groupby("user_id").size()
    assert len(per_user) == config.n_listeners
    assert per_user.between(config.min_interactions, config.max_interactions).all()
    assert per_user.std() > 3  # drawn, not constant
    t = inter["timestamp"].to_numpy()
    assert t.min() >= config.start_time and t.max() <= config.start_time + config.days * 86400
    assert (inter.groupby("user_id")["timestamp"].diff().dropna() >= 0).all()
    assert (inter["rating"] >= 1).all() and inter["rating"].max() > 3  # play counts
    counts = inter["item_id"].value_counts()
    assert counts.iloc[0] > 3 * counts.median()  # popularity bias: a head of hits


def test_a_few_tracks_miss_one_modality(default_tables, small) -> None:
    _, tracks, _, _ = default_tables
    missing = [t.missing for t in tracks if t.missing]
    assert 0.01 <= len(missing) / len(tracks) <= 0.06
    assert set(missing) == {"text", "image", "audio"}
    catalog, out = small
    for item in catalog.items:
        for modality in ("image", "audio"):
            ref = getattr(item, modality)
            assert ref is None or (out / ref).is_file()
    present = catalog.modalities_present()
    assert all(SMALL.n_tracks - 3 <= present[m] <= SMALL.n_tracks for m in present)


def test_text_says_genre_usually_and_never_tempo_or_palette(default_tables) -> None:
    _, tracks, _, _ = default_tables
    texts = [t for t in tracks if t.text]
    said_genre = np.mean([t.genre.split("-")[0] in t.text.lower() or
                          (t.genre == "classical" and "chamber" in t.text.lower()) for t in texts])
    assert said_genre > 0.7
    assert not any("bpm" in t.text.lower() or any(ch.isdigit() for ch in t.text) for t in texts)
    assert not any(p in t.text.lower() for t in texts for p in PALETTE_NAMES)
    assert len({t.text for t in texts}) > 0.9 * len(texts)  # varied phrasing
    assert len({t.title for t in tracks}) == len(tracks)


# -- media --------------------------------------------------------------------------------------------
def test_covers_are_pngs_of_the_configured_size(small) -> None:
    catalog, out = small
    covers = [item for item in catalog.items if item.image]
    for item in covers:
        img = load_image(out / item.image)
        assert img.size == (SMALL.cover_size, SMALL.cover_size)
        assert np.asarray(img, np.float32).std() > 8  # a picture, not a flat fill
    means = {tuple(np.asarray(load_image(out / i.image), np.float32).mean(axis=(0, 1)).round()) for i in covers}
    assert len(means) == len(covers)


def test_clips_are_audible_in_range_and_of_configured_length(small) -> None:
    catalog, out = small
    clips = [item for item in catalog.items if item.audio]
    for item in clips:
        y, sr = sf.read(out / item.audio, dtype="float32")
        assert sr == SMALL.sample_rate and y.ndim == 1
        assert SMALL.min_seconds - 0.01 <= y.size / sr <= SMALL.max_seconds + 0.01
        assert np.abs(y).max() < 0.99  # no clipping
        assert -16.0 <= 20 * np.log10(np.sqrt(np.mean(y ** 2))) <= -13.0  # about -14 dBFS
        assert abs(item.metadata["duration_s"] - y.size / sr) < 0.01
        load_audio(out / item.audio)  # raises on silent or unreadable clips


def test_tempo_is_audible(small) -> None:
    librosa = pytest.importorskip("librosa")
    catalog, out = small
    hits = 0
    clips = [item for item in catalog.items if item.audio]
    for item in clips:
        y, sr = sf.read(out / item.audio, dtype="float32")
        est = float(librosa.feature.tempo(y=y, sr=sr)[0])
        bpm = item.metadata["bpm"]
        hits += any(abs(est - bpm * f) / (bpm * f) < 0.05 for f in (0.5, 1.0, 2.0))
    assert hits >= 0.7 * len(clips)


# -- listeners carry the structure they were built with ---------------------------------------------
def _items_of(inter, listener_id: str) -> list[str]:
    return inter.loc[inter["user_id"] == listener_id, "item_id"].tolist()


def test_tempo_listeners_play_tracks_near_their_tempo(default_tables) -> None:
    _, tracks, listeners, inter = default_tables
    by_id = {t.id: t for t in tracks}
    all_bpm = np.array([t.bpm for t in tracks], float)
    theirs, chance = [], []
    for lt in listeners:
        if lt.kind != "tempo":
            continue
        mu = lt.preferences["bpm"]["mean"]
        theirs.append(np.mean([abs(by_id[i].bpm - mu) for i in _items_of(inter, lt.id)]))
        chance.append(np.mean(np.abs(all_bpm - mu)))
    assert len(theirs) == 100
    assert np.mean(theirs) < 0.5 * np.mean(chance)


@pytest.mark.parametrize("kind, attribute, n_categories", [("palette", "palette", 8), ("words", "theme", 8)])
def test_single_attribute_listeners_share_their_favourite(default_tables, kind, attribute, n_categories) -> None:
    _, tracks, listeners, inter = default_tables
    by_id = {t.id: t for t in tracks}
    shares = []
    for lt in listeners:
        if lt.kind != kind:
            continue
        favourite = max(lt.preferences[attribute], key=lt.preferences[attribute].get)
        items = _items_of(inter, lt.id)
        shares.append(np.mean([getattr(by_id[i], attribute) == favourite for i in items]))
    assert np.mean(shares) > 3 / n_categories  # chance is about 1 / n_categories


def test_ground_truth_describes_listeners_and_tracks(small) -> None:
    catalog, out = small
    truth = load_ground_truth(catalog)
    assert truth == load_ground_truth(out) == load_ground_truth(out / GROUND_TRUTH_FILE)
    assert sorted(truth["listeners"]) == catalog.users
    assert list(truth["tracks"]) == catalog.item_ids
    for item in catalog.items:
        assert truth["tracks"][item.id]["palette"] == item.metadata["palette"]
    for listener in truth["listeners"].values():
        weights = listener["modality_weights"]
        assert abs(sum(weights.values()) - 1) < 1e-3
        assert abs(sum(listener["attribute_weights"].values()) - 1) < 1e-3
        expected = {"tempo": "audio", "palette": "image", "words": "text"}.get(listener["kind"])
        if expected:
            assert listener["dominant_modality"] == expected
        elif listener["dominant_modality"] is not None:
            assert weights[listener["dominant_modality"]] >= DOMINANT_SHARE


def test_load_ground_truth_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="ground_truth.json"):
        load_ground_truth(tmp_path)
    with pytest.raises(CatalogError, match="no media folder"):
        load_ground_truth(Catalog(name="x", items=[Item("a", "A")]))


# -- config and store ---------------------------------------------------------------------------------
def test_invalid_config_is_refused() -> None:
    with pytest.raises(CatalogError, match="min_interactions"):
        DemoConfig(min_interactions=50, max_interactions=40)
    with pytest.raises(CatalogError, match="audio_format"):
        DemoConfig(audio_format="mp3")


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRISM_DEMO_TRACKS", "60")
    monkeypatch.setenv("PRISM_DEMO_LISTENERS", "40")
    config = DemoConfig.from_env()
    assert (config.n_tracks, config.n_listeners, config.seed) == (60, 40, 7)
    monkeypatch.setenv("PRISM_DEMO_SEED", "many")
    with pytest.raises(CatalogError, match="PRISM_DEMO_SEED"):
        DemoConfig.from_env()


def test_ensure_demo_catalog_generates_once_and_round_trips(store) -> None:
    config = DemoConfig(n_tracks=8, n_listeners=6)
    calls: list[tuple[int, int]] = []
    first = ensure_demo_catalog(store, config, progress=lambda d, t, m: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1]
    assert first.media_root == (store.root / "media-cache" / "demo-7").resolve()
    cover = first.media_path(next(i.image for i in first.items if i.image))
    stamp = cover.stat().st_mtime_ns
    calls.clear()
    again = ensure_demo_catalog(store, config, progress=lambda d, t, m: calls.append((d, t)))
    assert not calls and cover.stat().st_mtime_ns == stamp  # nothing regenerated
    assert again.content_hash() == first.content_hash()
    assert again.interactions["split"].isna().all()
    bigger = ensure_demo_catalog(store, replace(config, n_tracks=10),  # a new config rebuilds
                                 progress=lambda d, t, m: calls.append((d, t)))
    assert len(bigger.items) == 10 and calls
    assert len(list((bigger.media_root / "covers").glob("*.png"))) <= 10


def test_a_broken_or_foreign_demo_is_rebuilt(store) -> None:
    # imports never take the name "demo"; a catalog of that name not made by the generator is broken
    store.save_catalog(Catalog(name="demo", items=[Item("a", "A", text="t")], metadata={"source": "csv"}))
    config = DemoConfig(n_tracks=4, n_listeners=2)
    rebuilt = ensure_demo_catalog(store, config)
    assert rebuilt.metadata["source"] == "demo" and len(rebuilt.items) == 4
    cover = rebuilt.media_path(next(i.image for i in rebuilt.items if i.image))
    cover.unlink()  # its media gone: rebuilt again, the same content
    again = ensure_demo_catalog(store, config)
    assert again.media_path(next(i.image for i in again.items if i.image)).is_file()
    assert again.content_hash() == rebuilt.content_hash()


def test_cover_layers_composite_as_the_whole_layer_would():
    """_Canvas.add processes only a layer's drawn part; every pixel equals compositing the whole layer
    (blurred at quarter resolution), for shapes in the middle, at the edges and corners, and any blur."""
    from PIL import Image, ImageDraw, ImageFilter

    from core.catalog.demo_covers import _Canvas

    def whole(canvas: Image.Image, lay: Image.Image, blur: float) -> Image.Image:
        size = lay.size[0]
        if blur > 0:
            small = lay.resize((size // 4, size // 4), Image.BILINEAR).filter(ImageFilter.GaussianBlur(blur / 4))
            lay = small.resize((size, size), Image.BICUBIC)
        return Image.alpha_composite(canvas, lay)

    rng = np.random.default_rng(3)
    for size in (512, 200, 130):  # 130 is off the quarter grid: the whole layer is used
        base = rng.random((size, size, 3)).astype(np.float32)
        for blur in (0.0, 0.025, 3.0, 12.0, 30.7, 61.0):
            for cx, cy, r in ((0.5, 0.5, 0.05), (0.02, 0.97, 0.2), (0.99, 0.01, 0.4), (0.4, 0.6, 0.35)):
                cv = _Canvas(base)
                before = cv.img.copy()
                lay, d = cv.layer()
                s = size
                d.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=(200, 30, 90, 170))
                d.line([(0, s * cy), (s * cx, s * cy)], fill=(10, 250, 10, 255), width=3)
                cv.add(lay, blur)
                np.testing.assert_array_equal(np.asarray(cv.img), np.asarray(whole(before, lay, blur)))
        cv = _Canvas(base)
        before = np.asarray(cv.img).copy()
        cv.add(cv.layer()[0], 10.0)  # nothing drawn: the canvas is unchanged
        np.testing.assert_array_equal(np.asarray(cv.img), before)
