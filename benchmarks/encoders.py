"""Benchmark of the foundation on the demo catalog: building it, encoding all of it from a cold cache, the
throughput of each encoder, the time a warm cache takes to re-encode the whole catalog, and the peak memory
of the process. Prints a table against the targets and writes benchmarks/results/encoders.json.

    HF_HUB_OFFLINE=1 python -m benchmarks.encoders                  # 600 demo tracks (the app's default)
    HF_HUB_OFFLINE=1 python -m benchmarks.encoders --tracks 120     # a quicker run
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGETS = {"demo build + cold encode (s)": (120.0, "≤"), "text MiniLM (sentences/s)": (300.0, "≥"),
           "audio descriptor (5-s clips/s)": (20.0, "≥"), "audio aiSFX (5-s clips/s)": (15.0, "≥"),
           "warm-cache re-encode (s)": (5.0, "≤"),
           "peak memory (GiB)": (3.0, "≤")}


def peak_rss_gib() -> float:
    """The process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _rate(fn, inputs: list, repeat: int = 1) -> float:
    """Inputs per second of `fn(inputs)`, after one warm-up call on a couple of them."""
    fn(inputs[:2])
    start = time.perf_counter()
    for _ in range(repeat):
        fn(inputs)
    return repeat * len(inputs) / (time.perf_counter() - start)


def five_second_clips(folder: Path, n: int, seed: int = 7) -> list[Path]:
    """`n` synthetic 5-s demo-style clips written as 22,050 Hz FLAC, like the demo catalog's audio."""
    import numpy as np
    import soundfile as sf

    from core.catalog.demo import DemoConfig, sample_tracks
    from core.catalog.demo_audio import synth_clip

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, t in enumerate(sample_tracks(DemoConfig(seed=seed, n_tracks=max(n, 2)))[:n]):
        y = synth_clip(t.genre, t.mood, t.instrument, float(t.bpm), t.key_root, t.mode, t.energy, 5.0, 22_050,
                       np.random.default_rng([seed, 7, i]))
        path = folder / f"clip-{i:03d}.flac"
        sf.write(path, y, 22_050, format="FLAC", subtype="PCM_16")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=600, help="demo catalog size for the warm-cache pass")
    parser.add_argument("--clips", type=int, default=60, help="5-s clips for the audio throughput")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target machine has 2 cores)")
    args = parser.parse_args()

    import torch
    from tqdm import tqdm

    from core.catalog.demo import DemoConfig, generate_demo
    from core.encoders.cache import EmbeddingCache
    from core.encoders.factory import EncoderConfig, build_encoders
    from core.encoders.pipeline import encode_catalog

    torch.set_num_threads(args.threads)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="prism-bench-") as tmp:
        root = Path(tmp)
        build_start = time.perf_counter()
        with tqdm(total=args.tracks + 2, desc="demo catalog", unit="track") as bar:
            catalog = generate_demo(root / "demo", DemoConfig(n_tracks=args.tracks),
                                    progress=lambda done, total, msg: bar.update(done - bar.n))
        results["demo build (s)"] = time.perf_counter() - build_start
        start = time.perf_counter()
        encoders = build_encoders(EncoderConfig())
        results["load all encoders (s)"] = time.perf_counter() - start

        texts = [it.text for it in catalog.items if it.text][:256]
        covers = [catalog.media_path(it.image) for it in catalog.items if it.image]
        clips = five_second_clips(root / "clips", args.clips)
        results["text MiniLM (sentences/s)"] = _rate(encoders["text"].encode, texts)
        results["image EfficientNet-Lite0 (images/s)"] = _rate(encoders["image"].encode, covers[:64])
        results["image descriptor (images/s)"] = _rate(encoders["image_desc"].describe, covers[:200])
        descriptor = encoders.get("audio_desc", encoders["audio"])  # "audio" is the descriptor without aiSFX
        results["audio descriptor (5-s clips/s)"] = _rate(descriptor.describe, clips)
        if "audio_desc" in encoders:
            results["audio aiSFX (5-s clips/s)"] = _rate(encoders["audio"].encode, clips)

        cache = EmbeddingCache(root / "cache")
        fields = {f: e for f, e in encoders.items() if f != "clip_text"}
        with tqdm(desc="cold encode", unit="item-field") as bar:
            def show(done: int, total: int, message: str) -> None:
                bar.total = total
                bar.update(done - bar.n)
                bar.set_postfix_str(message[:40])

            start = time.perf_counter()
            encode_catalog(catalog, fields, cache, progress=show)
            results["cold encode of the catalog (s)"] = time.perf_counter() - start
        results["demo build + cold encode (s)"] = (results["demo build (s)"] + results["load all encoders (s)"]
                                                   + results["cold encode of the catalog (s)"])
        start = time.perf_counter()
        emb = encode_catalog(catalog, fields, cache)
        results["warm-cache re-encode (s)"] = time.perf_counter() - start
        results["peak memory (GiB)"] = peak_rss_gib()

    print(f"\nEncoders on {len(catalog.items)} demo tracks ({len(emb.fields)} fields), "
          f"{args.threads} torch threads\n")
    print(f"{'measure':<42}{'value':>10}  target")
    for name, value in results.items():
        target = TARGETS.get(name)
        verdict = ""
        if target:
            limit, op = target
            ok = value >= limit if op == "≥" else value <= limit
            verdict = f"{op} {limit:g}  {'ok' if ok else 'MISSED'}"
        print(f"{name:<42}{value:>10.2f}  {verdict}")
    out = REPO / "benchmarks" / "results" / "encoders.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tracks": len(catalog.items), "threads": args.threads, "results": results}, indent=1))


if __name__ == "__main__":
    main()
