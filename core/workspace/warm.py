"""Warm start: prepare, before anyone visits, everything the first visitor of a catalog would wait for.

`python -m core warm` (core.cli.warm) builds the demo (or opens a stored catalog), encodes it, trains or loads
its model, evaluates the reference runs the Evaluate page draws, computes the default maps (cached on disk beside the
model), and runs the first query and its explanation through the same services the studio uses. What it
leaves on disk (catalog, embeddings, model, approximate index, runs, maps, the compiled kernels of librosa's
and shap's numba code) is what a restarted server then reads instead of computing.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.store.database import Store

DEFAULT_MAPS = ("PCA", "UMAP")  # the Catalog page's default projection and the slow one a room asks for
Say = Callable[[str], None]


@dataclass
class WarmReport:
    """What was prepared, stage by stage: wall seconds each, and the first query's top item."""

    catalog: str
    stages: dict[str, float] = field(default_factory=dict)
    top_item: str | None = None
    maps: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return sum(self.stages.values())


def warm(store: Store, catalog_name: str = "demo", *, query: str,
         maps: tuple[str, ...] = DEFAULT_MAPS, runs: bool = True, say: Say | None = None) -> WarmReport:
    """Prepare `catalog_name` (the demo is built when missing) for its first visitor, running `query` (the
    command line passes the tour's sentence, core.tour.schema.tour_sentence) and its explanation once;
    returns the timings."""
    from core.catalog.demo import DemoConfig
    from core.workspace.imports import ensure_demo_catalog
    from core.encoders.factory import EncoderConfig, build_encoders, preload_encoder_libraries
    from core.workspace.prepare import ensure_model, has_interactions, prepare_embeddings

    say = say or (lambda message: None)
    report = WarmReport(catalog=catalog_name)

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        say(f"{name}…")
        t0 = time.perf_counter()
        value = fn()
        report.stages[name] = time.perf_counter() - t0
        say(f"{name}: {report.stages[name]:.1f} s")
        return value

    config = EncoderConfig.from_env()

    def open_catalog():
        if catalog_name == "demo":
            preload_encoder_libraries(config)  # imported while the catalog renders
            return ensure_demo_catalog(store, DemoConfig.from_env())
        return store.load_catalog(catalog_name)

    catalog = stage("catalog", open_catalog)
    encoders = stage("encoders", lambda: build_encoders(config))
    embeddings = stage("embeddings", lambda: prepare_embeddings(store, catalog, encoders))
    model = stage("model", lambda: ensure_model(store, catalog, embeddings))
    record = store.active_model(catalog.name) or {"id": ""}
    folder = store.model_dir(record["id"]) if record["id"] else None

    def first_query():
        from core.explain.service import ExplainConfig, ExplainService
        from core.serving.service import Query, RecommendService

        service = RecommendService(catalog, embeddings, model, encoders, index_dir=folder)
        explainer = ExplainService(service, ExplainConfig())
        explainer.warm_up()  # shap's numba kernels
        encode_samples(service)  # librosa's numba kernels and the image path
        result = service.recommend(Query(text=query), k=10)
        top = result.items[0].item_id
        explainer.explain(Query(text=query), top, features=True, tokens=True)
        return top

    report.top_item = stage("first query and explanation", first_query)
    if maps:
        from core.explain.projection import item_map

        def all_maps():
            for method in maps:
                for space in ("joint", *embeddings.modalities):
                    item_map(folder, catalog, embeddings, model, space, method)
                    report.maps.append(f"{space} {method}")

        stage("maps", all_maps)
    if runs and has_interactions(catalog) and catalog_name == "demo":
        from core.workspace.prepare import ensure_reference_runs

        stage("reference runs", lambda: ensure_reference_runs(store, catalog, embeddings, model, record["id"]))
    return report


def encode_samples(service: Any) -> None:
    """Encode the sample cover and clip once: first calls compile kernels (librosa's numba, torch's)."""
    from core.store.paths import REPO_ROOT
    from core.serving.service import Query, Upload

    samples = REPO_ROOT / "assets" / "samples"
    query = Query(text="warm up", images=[Upload("cover.png", (samples / "cover.png").read_bytes())],
                  audio=[Upload("clip.flac", (samples / "clip.flac").read_bytes())])
    service.encode_query(query)
