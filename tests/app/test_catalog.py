"""Catalog: browse and search, the 2-D embedding map, and imports with a validation report."""
from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.app.conftest import goto, plotly_values, sample

IMPORTED = ("mini", "masked", "masked2")  # the catalogs the import tests store beside the shared demo


@pytest.fixture
def imports_removed():
    """Removes the catalogs an import test stored, before and after it, so no test depends on which import
    test ran first (a second import under a taken name is refused)."""
    from core.workspace.prepare import remove_catalog
    from ui.loaders import store

    def clean() -> None:
        for name in IMPORTED:
            if store().has_catalog(name):
                remove_catalog(store(), name)

    clean()
    yield
    clean()


def test_browse_search_and_map(app):
    goto(app, "catalog")
    assert len(app.get("imgs")) >= 1 or len(app.get("image")) >= 1
    app.text_input(key="cat_search").input("zzzz-no-such-title").run()
    assert "**0** of 60 items" in " ".join(m.value for m in app.markdown)
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    scatter = next(c for c in charts if c["data"][0]["type"] in ("scatter", "scattergl"))
    assert sum(len(plotly_values(t["x"])) for t in scatter["data"]) == 60  # every item on the map
    app.radio(key="map_method").set_value("t-SNE").run()
    assert not app.exception


def test_filter_by_offers_the_text_columns_and_filters(app):
    """pandas 3 reads text as `str` dtype: the genre column is still offered, and filtering by it works."""
    goto(app, "catalog")
    options = app.selectbox(key="cat_attr").options
    assert "genre" in options and "mood" in options
    app.selectbox(key="cat_attr").set_value("genre").run()
    app.multiselect(key="cat_values").set_value(["jazz"]).run()
    import os

    from core.store.database import Store

    catalog = Store(os.environ["PRISM_DATA_DIR"]).load_catalog("demo")
    jazz = sum(it.metadata.get("genre") == "jazz" for it in catalog.items)
    assert 0 < jazz < 60 and f"**{jazz}** of 60 items" in " ".join(m.value for m in app.markdown)


@pytest.mark.parametrize("dtype", [object, "string", "str"])
def test_categorical_columns_take_text_of_any_dtype_but_not_lists_or_numbers(dtype):
    import pandas as pd

    from ui.components import categorical_columns, default_map_colour

    frame = pd.DataFrame({"meta.genre": pd.Series(["jazz", "folk", "jazz", None], dtype=dtype),
                          "meta.mood": pd.Series(["calm", "calm", "dark", "calm"], dtype=dtype),
                          "meta.one": pd.Series(["x"] * 4, dtype=dtype),  # one value: nothing to filter
                          "meta.year": [1990, 1991, 1992, 1993],
                          "meta.songs": [["a"], ["b"], ["c"], ["d"]],
                          "title": ["A", "B", "C", "D"]})
    assert categorical_columns(frame) == ["meta.genre", "meta.mood"]
    assert categorical_columns(frame, max_values=1) == []
    assert default_map_colour(["meta.mood", "meta.genre"]) == "genre"
    assert default_map_colour(["meta.mood"]) == "mood" and default_map_colour([]) is None


def test_map_opens_coloured_by_genre_on_pca_when_no_umap_is_cached(app):
    goto(app, "catalog")
    assert app.selectbox(key="map_colour").value == "genre"
    assert app.radio(key="map_method").value == "PCA"
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    scatter = next(c for c in charts if c["data"][0]["type"] in ("scatter", "scattergl"))
    from core.catalog.demo import GENRES

    assert {t["name"] for t in scatter["data"]} <= set(GENRES) and len(scatter["data"]) > 2


@pytest.mark.slow  # umap-learn compiles its numba kernels on first use (tens of seconds)
def test_umap_map_is_computed_once_per_model_and_coloured_by_dominant_modality(app, app_env):
    from pathlib import Path

    from core.store.database import Store

    model_id = Store(app_env["PRISM_DATA_DIR"]).active_model("demo")["id"]
    maps = Path(app_env["PRISM_DATA_DIR"]) / "models" / model_id / "maps"
    before = set(maps.glob("*.npy")) if maps.is_dir() else set()
    try:
        goto(app, "catalog")
        app.radio(key="map_method").set_value("UMAP").run()
        app.selectbox(key="map_colour").set_value("dominant modality").run()
        assert not app.exception, [e.value for e in app.exception]
        charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
        scatter = next(c for c in charts if c["data"][0]["type"] in ("scatter", "scattergl"))
        assert {t["name"] for t in scatter["data"]} <= {"Text", "Image", "Audio"}
        assert sum(len(plotly_values(t["x"])) for t in scatter["data"]) == 60
        cached = list(maps.glob("joint-UMAP-*.npy"))
        assert len(cached) == 1  # beside the model it was made from, read back on the next visit
    finally:  # the shared demo again without a UMAP map: the map opens on PCA for the other tests
        for path in set(maps.glob("*.npy")) - before:
            path.unlink()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_bad_import_shows_error_and_changes_nothing(app):
    from ui.loaders import store

    goto(app, "catalog")
    before = store().list_catalogs()["name"].tolist()
    bad = _zip({"manifest.csv": b"id,name\n1,x\n"})  # no title column
    app.file_uploader(key="imp_zip").set_value(("broken.zip", bad, "application/zip"))
    app.text_input(key="imp_name").input("broken")
    app.button[[b.label for b in app.button].index("Import")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("not imported" in e.value for e in app.error)
    assert store().list_catalogs()["name"].tolist() == before


def test_good_import_reports_counts(app, imports_removed):
    from ui.loaders import store

    goto(app, "catalog")
    manifest = b"id,title,text,image,audio,genre\na1,First,soft piano,a1.png,a1.flac,ambient\n" \
               b"a2,Second,loud drums,a2.png,,techno\n"
    good = _zip({"manifest.csv": manifest, "a1.png": sample("cover.png"), "a2.png": sample("cover.png"),
                 "a1.flac": sample("clip.flac")})
    app.file_uploader(key="imp_zip").set_value(("mini.zip", good, "application/zip"))
    app.text_input(key="imp_name").input("mini")
    app.button[[b.label for b in app.button].index("Import")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert "mini" in store().list_catalogs()["name"].tolist()
    assert any("Imported" in s.value for s in app.success)


def test_switching_to_a_catalog_without_interactions_opens_it_content_only(app, imports_removed):
    from ui.loaders import store

    test_good_import_reports_counts(app, None)  # "mini", without interactions, imported in this test
    assert len(store().load_catalog("mini").interactions) == 0
    goto(app, "catalog")
    app.session_state["catalog_name"] = "mini"  # as the sidebar picker would set it
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert store().active_model("mini")["name"] == "content-only", "served by its content, nothing trained"
    assert app.sidebar.selectbox(key="sidebar_catalog").value == "mini"
    app.session_state["catalog_name"] = "demo"
    app.run()
    assert not app.exception


def _import(app, archive: bytes, file_name: str, name: str = ""):
    app.file_uploader(key="imp_zip").set_value((file_name, archive, "application/zip"))
    app.text_input(key="imp_name").input(name)
    app.button[[b.label for b in app.button].index("Import")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    return " ".join(e.value for e in app.error)


def test_unusable_media_are_masked_and_reported_with_a_csv(app, imports_removed):
    from ui.loaders import store

    goto(app, "catalog")
    manifest = (b"id,title,text,image\nb1,One,soft piano,b1.png\nb2,Two,loud drums,b2.png\n"
                b"b3,Three,=HYPERLINK(x),b3.png\n")
    archive = _zip({"manifest.csv": manifest, "b1.png": sample("cover.png"), "b2.png": b"not an image",
                    "b3.png": sample("cover.png")})
    assert _import(app, archive, "masked.zip", "masked") == ""
    assert store().load_catalog("masked").items[1].image is None
    assert any("1 media cell(s) could not be used" in w.value for w in app.warning)
    download = [b for b in app.get("download_button") if "import report" in b.proto.label]
    assert download, "the import report is offered as a CSV"
    # strict: the same catalog is refused, nothing stored
    app.checkbox(key="imp_strict").check()
    errors = _import(app, archive, "masked2.zip", "masked2")
    assert "row 3, column image" in errors and "masked2" not in store().list_catalogs()["name"].tolist()


def test_no_overwrite_and_no_server_paths_from_the_browser_by_default(app):
    from ui.loaders import store

    goto(app, "catalog")
    assert not [c for c in app.checkbox if c.key == "imp_overwrite"], "overwrite is off by default"
    assert app.radio(key="imp_kind").options == ["Manifest (zip upload)"]
    good = _zip({"manifest.csv": b"id,title,text\nz1,Z,some words\n"})
    before = store().load_catalog("demo").content_hash()
    assert "belongs to the built-in demo" in _import(app, good, "demo.zip")
    assert store().load_catalog("demo").content_hash() == before
    assert _import(app, good, "once.zip", "once") == ""
    assert "exists already" in _import(app, good, "once.zip", "once")


def test_folder_imports_only_under_the_allowed_roots(app, tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    (allowed / "cat").mkdir(parents=True)
    (allowed / "cat" / "manifest.csv").write_text("id,title,text\nr1,R,words here\n")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "secret-notes.txt").write_text("x")
    monkeypatch.setenv("PRISM_IMPORT_ROOTS", str(allowed))
    goto(app, "catalog")
    app.radio(key="imp_kind").set_value("Manifest (folder path)").run()
    for path in (tmp_path / "private", allowed / ".." / "private"):
        app.text_input(key="imp_path").input(str(path))
        app.button[[b.label for b in app.button].index("Import")].click().run()
        errors = " ".join(e.value for e in app.error)
        assert "outside the folders this studio may import from" in errors and "secret-notes" not in errors
    app.text_input(key="imp_path").input(str(allowed / "cat"))
    app.text_input(key="imp_name").input("rooted")
    app.button[[b.label for b in app.button].index("Import")].click().run()
    assert any("Imported" in s.value for s in app.success), [e.value for e in app.error]


def test_import_of_unsplit_interactions_says_no_split(app):
    goto(app, "catalog")
    manifest = b"id,title,text,image,audio\nb1,First,soft piano,,\nb2,Second,loud drums,,\n"
    inter = b"user_id,item_id\nu1,b1\nu1,b2\nu2,b1\n"
    app.file_uploader(key="imp_zip").set_value(("nosplit.zip", _zip({"manifest.csv": manifest,
                                                                     "interactions.csv": inter}),
                                                "application/zip"))
    app.text_input(key="imp_name").input("nosplit")
    app.button[[b.label for b in app.button].index("Import")].click().run()
    assert not app.exception, [e.value for e in app.exception]
    captions = " ".join(c.value for c in app.caption).replace("\\", "")  # markdown escapes
    assert "splits: no split" in captions and "train 0" not in captions and "none 3" not in captions
