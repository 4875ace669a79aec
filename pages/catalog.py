"""Catalog: browse and search items with their media, map the embedding space in 2-D, import a catalog."""
from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.store.export import neutralise_frame
from core.limits import check_import_root, limits
from ui import charts, components, loaders, state
from ui.navigation import ensure_frame
from ui.theme import MODALITY_LABELS, modality_bar, page_header

ensure_frame()

PAGE_SIZE = 12
PER_ROW = 6

page_header("Catalog", "Every item with its text, cover and clip; a map of the joint embedding space; import "
            "your own catalog.")
ws = loaders.workspace()
catalog = ws.catalog
ss = st.session_state
frame = loaders.items_frame(ws.root, catalog.name, ws.stamp, ws)
gates = loaders.gate_frame(ws.root, catalog.name, ws.stamp, ws)
meta_cols = [c for c in frame.columns if c.startswith("meta.")]
categorical = components.categorical_columns(frame)

tab_browse, tab_map, tab_import = st.tabs(["Browse", "Embedding map", "Import"])

# -- browse --------------------------------------------------------------------------------------------
with tab_browse:
    f1, f2, f3 = st.columns([3, 2, 2])
    search = f1.text_input("Search titles and descriptions", key="cat_search", placeholder="e.g. piano, dusk, jazz")
    attr = f2.selectbox("Filter by", ["—", *[c.removeprefix("meta.") for c in categorical]], key="cat_attr")
    values = []
    if attr != "—":
        values = f3.multiselect("Values", sorted(frame[f"meta.{attr}"].dropna().unique()), key="cat_values")
    must_have = st.pills("Must have", ["text", "image", "audio"], selection_mode="multi", key="cat_has",
                         format_func=lambda m: MODALITY_LABELS[m])
    view = frame
    if search:
        needle = search.lower()
        view = view[view["title"].str.lower().str.contains(needle, regex=False)
                    | view["text"].str.lower().str.contains(needle, regex=False)]
    if values:
        view = view[view[f"meta.{attr}"].isin(values)]
    for m in must_have or []:
        view = view[view[f"has_{m}"]]
    pages = max(1, -(-len(view) // PAGE_SIZE))
    top = st.columns([2, 1, 4])
    page_no = top[1].number_input("Page", 1, pages, 1, key="cat_page") if pages > 1 else 1
    top[0].markdown(f"**{len(view):,}** of {len(frame):,} items · page {page_no} of {pages}")
    shown = view.iloc[(page_no - 1) * PAGE_SIZE: page_no * PAGE_SIZE]
    for start in range(0, len(shown), PER_ROW):
        cols = st.columns(PER_ROW, gap="small")
        for col, item_id in zip(cols, shown["id"].iloc[start:start + PER_ROW]):
            item = catalog.item(item_id)
            with col.container(border=True):
                components.item_image(catalog, item)
                st.markdown(f'<div class="prism-card-title">{components.html_text(item.title)}</div>'
                            f'<div class="prism-card-meta">{components.html_text(components.item_subtitle(item))}</div>'
                            + (modality_bar(gates.loc[item_id].to_dict()) if item_id in gates.index else ""),
                            unsafe_allow_html=True)
                components.item_audio(catalog, item)

    with st.expander("Table and item details", expanded=False):
        table = view.drop(columns=["image_path", "audio_path"]).rename(
            columns=lambda c: c.removeprefix("meta."))
        st.dataframe(neutralise_frame(table), hide_index=True, height=300)  # its CSV download opens safely
        detail = st.selectbox("Item", view["id"].tolist(), key="cat_detail",
                              format_func=lambda i: f"{catalog.item(i).title} ({i})") if len(view) else None
        if detail:
            item = catalog.item(detail)
            d1, d2 = st.columns([1, 3], gap="large")
            with d1:
                components.item_image(catalog, item)
                components.item_audio(catalog, item)
            with d2:
                st.subheader(components.md_escape(item.title))
                st.markdown(components.md_escape(item.text) if item.text else "*(no text)*")
                if detail in gates.index:
                    st.markdown("Modality weights (active model): "
                                + " · ".join(f"{MODALITY_LABELS.get(m, m)} {w:.0%}"
                                             for m, w in gates.loc[detail].items())
                                + modality_bar(gates.loc[detail].to_dict(), height=10), unsafe_allow_html=True)
                st.json(item.metadata, expanded=False)

# -- embedding map -------------------------------------------------------------------------------------
with tab_map:
    m1, m2, m3 = st.columns(3)
    spaces = ["joint", *ws.embeddings.modalities]
    space = m1.selectbox("Space", spaces, key="map_space",
                         format_func=lambda s: "joint (fusion model)" if s == "joint" else f"{s} encoder")
    methods = ["PCA", "UMAP", "t-SNE"]
    if "map_method" not in ss:  # UMAP (neighbourhoods kept) when it was computed before, else the quick PCA
        ss["map_method"] = "UMAP" if loaders.map_is_cached(ws.root, "UMAP", space, ws) else "PCA"
    method = m2.radio("Projection", methods, horizontal=True, key="map_method",
                      help="UMAP keeps neighbourhoods (genres separate); PCA keeps the largest directions of "
                           "variance. Computed once per model.")
    colour_options = [*[c.removeprefix("meta.") for c in meta_cols], "dominant modality", "interactions"]
    default_colour = components.default_map_colour(categorical) or "dominant modality"
    colour = m3.selectbox("Colour by", colour_options, key="map_colour",
                          index=colour_options.index(default_colour))  # a genre when there is one
    with st.spinner(f"Projecting {len(frame)} items with {method}…"):
        coords = loaders.embedding_map(ws.root, catalog.name, ws.stamp, method, space, ws)
    info = frame.set_index("id")
    plot = coords.assign(title=coords["item_id"].map(info["title"]).map(html.escape))  # plotly reads tags in hovers
    plot["dominant modality"] = coords["item_id"].map(gates.idxmax(axis=1)) if len(gates.columns) else "—"
    plot["interactions"] = coords["item_id"].map(info["interactions"])
    for c in meta_cols:
        plot[c.removeprefix("meta.")] = coords["item_id"].map(info[c])
    title = f"{method} of the {'joint fusion space' if space == 'joint' else space + ' embeddings'}"
    st.plotly_chart(charts.embedding_scatter(plot, colour, title), key="map_chart")
    st.caption("Each dot is an item; hover for its title. *Dominant modality* is the modality with the largest "
               "gate weight for that item in the active model.")

# -- import ----------------------------------------------------------------------------------------------
with tab_import:
    st.markdown("A **manifest** catalog is a folder or `.zip` with `manifest.csv` / `.json` / `.parquet` "
                "(columns `id, title, text, image, audio`, extra columns kept as metadata) and the media beside "
                "it. An **MMRec** folder holds `<name>.inter` and one `.npy` feature matrix per modality. "
                "Every file is checked before anything is written: a failed import leaves the store as it was.")
    lim = limits()
    kinds = ["Manifest (zip upload)"] + (["Manifest (folder path)", "MMRec (folder path)"] if lim.import_roots else [])
    kind = st.radio("Format", kinds, horizontal=True, key="imp_kind")
    if not lim.import_roots:
        st.caption("Folders on the server can be imported from the command line (`python -m core import …`); "
                   "from the browser only where the operator allows them (`PRISM_IMPORT_ROOTS`).")
    with st.form("imp_form"):
        upload = path_text = None
        if kind == "Manifest (zip upload)":
            upload = st.file_uploader(f"Catalog .zip (up to {lim.max_upload_mb:g} MB)", type=["zip"], key="imp_zip")
        else:
            path_text = st.text_input("Folder path on the server (under an allowed import root)", key="imp_path",
                                      placeholder="/path/to/catalog")
        n1, n2, n3 = st.columns([3, 1, 1])
        name = n1.text_input("Catalog name (optional; default from the file or folder name)", key="imp_name")
        strict = n2.checkbox("Strict", key="imp_strict",
                             help="Refuse the whole import when any media file cannot be used (default: import "
                                  "the item without that modality and list the file in the report)")
        overwrite = False
        if lim.allow_browser_overwrite:
            overwrite = n3.checkbox("Overwrite", key="imp_overwrite",
                                    help="Replace a stored catalog of that name (never the demo)")
        go = st.form_submit_button("Import", type="primary", icon=":material/upload:")
    if not lim.allow_browser_overwrite:
        st.caption("Stored catalogs are never replaced from the browser here: choose a new name (the operator "
                   "setting `PRISM_ALLOW_BROWSER_OVERWRITE=1` allows it; the demo is never replaced).")
    if go:
        from core.workspace.imports import import_manifest
        from core.workspace.imports import import_mmrec

        st_store = loaders.store()
        bar = st.progress(0.0, text="validating…")

        def on_progress(done: int, total: int, message: str = "") -> None:
            bar.progress(min(1.0, done / max(total, 1)), text=components.md_escape(message) or None)

        try:
            if upload is not None:
                if upload.size > lim.max_upload_bytes:
                    raise PrismError(f"the upload is {upload.size / 2**20:,.1f} MB, over the {lim.max_upload_mb:g} MB "
                                     "upload limit (PRISM_MAX_UPLOAD_MB); import it from the command line")
                with st_store.scratch_dir("upload") as tmp:  # removed however the import ends, swept after a kill
                    src = tmp / (Path(upload.name).name[-100:] or "catalog.zip")
                    src.write_bytes(upload.getvalue())
                    report = import_manifest(src, st_store, name=name or None, overwrite=overwrite,
                                             progress=on_progress, strict=strict)
            elif path_text:
                folder = check_import_root(path_text, lim.import_roots)
                if kind.startswith("MMRec"):
                    report = import_mmrec(folder, st_store, name=name or None, overwrite=overwrite,
                                          progress=on_progress)
                else:
                    report = import_manifest(folder, st_store, name=name or None, overwrite=overwrite,
                                             progress=on_progress, strict=strict)
            else:
                report = None
                st.warning("No catalog was received: choose a .zip first. A file over the upload limit "
                           f"({st.get_option('server.maxUploadSize')} MB) is refused by the uploader itself, which "
                           "then shows its own error under the drop zone." if kind == "Manifest (zip upload)"
                           else "Type a folder path first.")
        except PrismError as e:
            ss["import_report"] = None
            components.show_error(e, "The catalog was not imported (nothing was changed)")
        except OSError as e:  # e.g. the temporary folder is full while the upload is written out
            ss["import_report"] = None
            components.show_error(PrismError(f"the server could not write the upload ({e.strerror}); free disk "
                                             "space on the server and try again"),
                                  "The catalog was not imported (nothing was changed)")
        else:
            if report is not None:
                ss["import_report"] = dataclasses.asdict(report)
        finally:
            bar.empty()
    report = ss.get("import_report")
    if report:
        st.success(f"Imported **{components.md_escape(report['catalog'])}** from "
                   f"{components.md_escape(Path(report['source']).name)}.", icon=":material/check_circle:")
        r1, r2, r3 = st.columns(3)
        r1.metric("Items", f"{report['items']:,}")
        r2.metric("Users", f"{report['users']:,}")
        r3.metric("Interactions", f"{report['interactions']:,}")
        details = ["items per modality: " + (", ".join(f"{MODALITY_LABELS.get(m, m).lower()} {n:,}" for m, n in
                                                        report.get("modalities", {}).items() if n) or "none")]
        if report.get("interactions"):
            from core.catalog.validation import split_line

            details.append("splits: " + split_line(report.get("splits") or {}))
        if report.get("features"):
            details.append("precomputed features: " + ", ".join(f"{k} ({v})" for k, v in report["features"].items()))
        if details:
            st.caption(components.md_escape(" · ".join(details)))
        for w in report.get("warnings") or []:
            st.warning(components.md_escape(components.without_server_paths(w)), icon=":material/warning:")
        components.media_problems(report.get("problems") or [], report["catalog"], key="imp_problems_new")
        target = report["catalog"]
        if target != catalog.name:
            st.button(f"Switch to {target}", key="imp_switch", on_click=state.set_catalog, args=(target,),
                      help="Encodes it and trains a model the first time (with progress); without "
                           "interactions it opens as a content-only catalog")
    stored_problems = catalog.metadata.get("import_problems") or []
    if stored_problems and (not report or report["catalog"] != catalog.name):
        st.markdown(f"#### Import report of {components.md_escape(catalog.name)}")
        components.media_problems(stored_problems, catalog.name, key="imp_problems_active")

    with st.expander("Encode this catalog on Ray (large catalogs, clusters)"):
        from ui.engines import ray_encode_panel

        ray_encode_panel(ws)

    stored = loaders.store().list_catalogs()
    if not stored.empty:
        st.markdown("#### Stored catalogs")
        st.dataframe(stored.assign(created=pd.to_datetime(stored["created_at"], unit="s").dt.strftime("%Y-%m-%d %H:%M"))
                     .drop(columns=["created_at"]), hide_index=True)
    if catalog.name != loaders.DEMO_CATALOG:
        with st.expander(f"Remove the catalog {components.md_escape(catalog.name)}"):
            st.caption("Removes it with its embeddings, models, runs and tuned settings; the other catalogs are "
                       "untouched, and the studio switches back to the demo (which cannot be removed).")
            loaders.offer_removal(loaders.store(), catalog.name, loaders.DEMO_CATALOG)
