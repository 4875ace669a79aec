"""Catalog: browse and search, the 2-D embedding map, and imports with a validation report."""
from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.app.conftest import goto, plotly_values, sample


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


@pytest.mark.slow  # umap-learn compiles its numba kernels on first use (tens of seconds)
def test_umap_map_is_computed_once_per_model_and_coloured_by_dominant_modality(app, app_env):
    from pathlib import Path

    from core.store import Store

    goto(app, "catalog")
    app.radio(key="map_method").set_value("UMAP").run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="map_colour").value == "dominant modality"
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    scatter = next(c for c in charts if c["data"][0]["type"] in ("scatter", "scattergl"))
    assert {t["name"] for t in scatter["data"]} <= {"Text", "Image", "Audio"}
    assert sum(len(plotly_values(t["x"])) for t in scatter["data"]) == 60
    model_id = Store(app_env["PRISM_DATA_DIR"]).active_model("demo")["id"]
    cached = list((Path(app_env["PRISM_DATA_DIR"]) / "models" / model_id / "maps").glob("joint-UMAP-*.npy"))
    assert len(cached) == 1  # beside the model it was made from, read back on the next visit


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


def test_good_import_reports_counts(app):
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


def test_switching_to_an_untrainable_catalog_offers_a_way_back(app):
    from ui.loaders import store

    if "mini" not in store().list_catalogs()["name"].tolist():
        test_good_import_reports_counts(app)
    goto(app, "catalog")
    app.session_state["catalog_name"] = "mini"  # as the sidebar picker would set it
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.error, "a catalog without interactions cannot train a model: say so"
    app.button(key="boot_back").click().run()
    assert not app.exception
    assert app.session_state["catalog_name"] == "demo"
    assert app.sidebar.selectbox(key="sidebar_catalog").value == "demo"
