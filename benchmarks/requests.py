"""Free-text requests on the demo: does the top result carry everything the sentence asks for?

Every genre × mood × instrument × theme combination some demo track carries becomes one request naming all
four in the generator's own words, in a form no description takes (core.evaluation.requests). Each is run
through the recommend service at the shipped weights, as a visitor would type it, and through the raw text
encoder's kNN (MiniLM cosine over the tracks' descriptions) for comparison; the tour's sentence is shown with
its top three. Prints a table; writes JSON with --out.

    HF_HUB_OFFLINE=1 python -m benchmarks.requests                    # the studio's store (demo built if missing)
    HF_HUB_OFFLINE=1 python -m benchmarks.requests --store DIR        # e.g. what benchmarks.first_start --keep left
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def run(store_dir: Path | None, limit: int | None, seed: int) -> dict[str, Any]:
    from core.catalog.demo import DemoConfig
    from core.catalog.demo_text import ATTRIBUTES, request_sentence
    from core.encoders.factory import EncoderConfig, build_encoders
    from core.evaluation.requests import item_attributes, requests, score_answers
    from core.serving.service import Query, RecommendService
    from core.store.database import Store
    from core.tour.schema import tour_sentence
    from core.workspace.imports import ensure_demo_catalog
    from core.workspace.prepare import ensure_model, prepare_embeddings

    store = Store(store_dir) if store_dir else Store()
    catalog = ensure_demo_catalog(store, DemoConfig.from_env())
    encoders = build_encoders(EncoderConfig.from_env())
    embeddings = prepare_embeddings(store, catalog, encoders)
    model = ensure_model(store, catalog, embeddings)
    service = RecommendService(catalog, embeddings, model, encoders)
    attributes = item_attributes(catalog, ATTRIBUTES)
    asked = requests(attributes, request_sentence, seed=seed, limit=limit)
    text_fields = [f for f in embeddings.matrices if embeddings.modality_of[f] == "text" and f in encoders]
    field = text_fields[0]
    items = embeddings.matrices[field] / np.maximum(np.linalg.norm(embeddings.matrices[field], axis=1,
                                                                   keepdims=True), 1e-12)
    carries = np.asarray(embeddings.masks[field], bool)
    studio_top, raw_top = [], []
    t0 = time.perf_counter()
    for i, (sentence, _) in enumerate(asked):
        studio_top.append(catalog.item_ids.index(service.recommend(Query(text=sentence), k=1).items[0].item_id))
        q = np.asarray(encoders[field].encode([sentence]), np.float64)[0]
        raw_top.append(int(np.argmax(np.where(carries, items @ (q / np.linalg.norm(q)), -np.inf))))
        if (i + 1) % 50 == 0 or i + 1 == len(asked):
            print(f"[{time.strftime('%H:%M:%S')}] {i + 1}/{len(asked)} requests", file=sys.stderr, flush=True)
    wanted = [w for _, w in asked]
    tour = tour_sentence()
    shown = []
    if tour:
        for rec in service.recommend(Query(text=tour), k=3).items:
            row = catalog.item_ids.index(rec.item_id)
            shown.append({"rank": rec.rank, "title": rec.title, **dict(zip(ATTRIBUTES, attributes[row]))})
    return {"catalog": catalog.name, "requests": len(asked), "seed": seed, "attributes": list(ATTRIBUTES),
            "studio": score_answers(studio_top, wanted, attributes, ATTRIBUTES),
            "raw_text_knn": score_answers(raw_top, wanted, attributes, ATTRIBUTES),
            "raw_field": field, "seconds": time.perf_counter() - t0,
            "settings": {"similarity": service.similarity_weight, "like": service.like_weight,
                         "closest": service.closest_weight, "prior": service.prior_weight},
            "tour_sentence": tour, "tour_top": shown, "examples": [s for s, _ in asked[:3]]}


def format_table(r: dict[str, Any]) -> str:
    names = ["full@1", "attributes@1", *(f"{a}@1" for a in r["attributes"])]
    lines = [f"Free-text requests on {r['catalog']!r}: {r['requests']} sentences, each naming a genre, mood, "
             f"instrument and theme some track carries (e.g. \"{r['examples'][0]}\")",
             f"{'ranking':<34}" + "".join(f"{n:>14}" for n in names)]
    s = r["settings"]
    for label, key in ((f"studio (λ {s['similarity']:g}, μ {s['like']:g}, κ {s['closest']:g})", "studio"),
                       (f"raw text kNN ({r['raw_field']})", "raw_text_knn")):
        lines.append(f"{label:<34}" + "".join(f"{r[key][n]:>14.3f}" for n in names))
    if r["tour_sentence"]:
        lines.append(f"\nthe tour's sentence \"{r['tour_sentence']}\":")
        for t in r["tour_top"]:
            lines.append(f"  {t['rank']}. {t['title']:<28} " + " · ".join(str(t[a]) for a in r["attributes"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None, help="store folder (default: the studio's)")
    parser.add_argument("--limit", type=int, default=None, help="ask only this many requests (seeded draw)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the phrasing (and of the draw)")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = run(args.store, args.limit, args.seed)
    print(format_table(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
