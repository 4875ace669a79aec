"""The studio's first start on the demo, stage by stage, on an empty store: the calls ui.loaders makes when
nothing is stored yet (encoder libraries imported in the background, the demo catalog generated, the
encoders loaded, every field encoded, the first model trained from the configuration a first start takes).
The demo's inputs are encoded from the shipped demo vectors where their content hashes match
(core.encoders.demo_vectors); `--encode-all` runs every encoder over every input instead, as on a first start
without that file. Prints wall and CPU seconds per stage (the render workers' included) and the peak memory;
writes benchmarks/results/first_start.json.

    HF_HUB_OFFLINE=1 python -m benchmarks.first_start                 # target: 60 s on 2 idle cores
    HF_HUB_OFFLINE=1 python -m benchmarks.first_start --keep DIR      # keep the store it built in DIR
    HF_HUB_OFFLINE=1 python -m benchmarks.first_start --encode-all    # without the shipped vectors
    HF_HUB_OFFLINE=1 python -m benchmarks.first_start --encode-all --write-demo-vectors   # and write them again
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_SECONDS = 60.0  # the whole first start, idle 2-core machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="build the store in this (empty or new) folder and keep it")
    parser.add_argument("--encode-all", action="store_true",
                        help="encode every input, without the shipped demo vectors (PRISM_DEMO_VECTORS=0)")
    parser.add_argument("--write-demo-vectors", action="store_true",
                        help="then write what was encoded as the shipped demo vectors (needs --encode-all)")
    args = parser.parse_args()
    if args.write_demo_vectors and not args.encode_all:
        parser.error("--write-demo-vectors writes what this run encoded: give --encode-all too")
    if args.encode_all:
        os.environ["PRISM_DEMO_VECTORS"] = "0"

    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"{args.keep} is not empty; a first start needs an empty store")
    root = args.keep or Path(tempfile.mkdtemp(prefix="prism-first-start-"))
    os.environ["PRISM_DATA_DIR"] = str(root)  # as the studio would be started: the store is empty
    stages: dict[str, tuple[float, float]] = {}
    start = time.perf_counter()

    def cpu_seconds() -> float:  # this process and its finished children (the demo's render workers)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def stage(name: str, fn):
        wall, cpu = time.perf_counter(), cpu_seconds()
        value = fn()
        stages[name] = (time.perf_counter() - wall, cpu_seconds() - cpu)
        print(f"{name}: {stages[name][0]:.1f} s", flush=True)
        return value

    try:
        from core.catalog.demo import DemoConfig
        from core.workspace.imports import ensure_demo_catalog
        from core.encoders.factory import EncoderConfig, build_encoders, preload_encoder_libraries
        from core.data.splits import build_interaction_data
        from core.store.database import Store
        from core.tuning import quick_fusion_config
        from core.workspace.prepare import ensure_model, prepare_embeddings

        store = Store(root)
        config = EncoderConfig.from_env()

        def catalog_step():
            preload_encoder_libraries(config)
            return ensure_demo_catalog(store, DemoConfig.from_env())

        catalog = stage("1 demo catalog", catalog_step)
        encoders = stage("2 load the encoders", lambda: build_encoders(config))
        embeddings = stage("3 encode", lambda: prepare_embeddings(store, catalog, encoders))

        def model_step():
            data = build_interaction_data(catalog, embeddings, split="auto", seed=0)
            fusion_config, source = quick_fusion_config(store, catalog, data)
            model = ensure_model(store, catalog, embeddings, config=fusion_config, config_source=source)
            return model, source

        model, source = stage("4 first model", model_step)
        total = time.perf_counter() - start
        if args.write_demo_vectors:
            from core.encoders.cache import EmbeddingCache
            from core.encoders.demo_vectors import SHIPPED, write_vectors
            from core.workspace.prepare import raw_media_encoders

            n = write_vectors(SHIPPED, catalog, DemoConfig.from_env(), EmbeddingCache(store.embedding_cache_dir),
                              raw_media_encoders(catalog, encoders))
            print(f"wrote {n:,} vectors to {SHIPPED.relative_to(REPO)} ({SHIPPED.stat().st_size / 2**20:.1f} MiB)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    load = os.getloadavg()

    vectors = "every input encoded" if args.encode_all else "shipped demo vectors where the hashes match"
    print(f"\nFirst start on {len(catalog.items)} demo tracks, empty store, {vectors}; load average at the end "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)\n")
    print(f"{'stage':<24}{'wall s':>8}{'CPU s':>8}")
    for name, (wall, cpu) in stages.items():
        print(f"{name:<24}{wall:>8.1f}{cpu:>8.1f}")
    print(f"{'end to end':<24}{total:>8.1f}{'':>8}  target < {TARGET_SECONDS:g} s "
          f"{'ok' if total < TARGET_SECONDS else 'MISSED'}")
    print(f"peak memory {peak:.2f} GiB; model {model.name}, best epoch {model.best_epoch}; configuration: {source}")
    out = REPO / "benchmarks" / "results" / "first_start.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    valid = [h["valid_metric"] for h in model.history if h.get("valid_metric") is not None]
    out.write_text(json.dumps({"tracks": len(catalog.items), "encode_all": args.encode_all, "total_s": total,
                               "peak_rss_gib": peak, "load_average": load, "best_epoch": model.best_epoch,
                               "best_valid": max(valid) if valid else None,
                               "stages": {k: {"wall_s": w, "cpu_s": c} for k, (w, c) in stages.items()}},
                              indent=1))


if __name__ == "__main__":
    main()
