"""Audio encoders benchmark: how well each audio field puts like with like on real sound effects, and how fast
it encodes 5-second clips, both measured in one run so that the ratios hold on a shared machine.

Like with like: leave-one-out 1-NN category accuracy on the sonic-pi samples (166 clips, 14 categories from
the file-name prefix), cosine similarity of each field as the pipeline stores it: the aiSFX embedding
L2-normalised, the named descriptor standardised with statistics fitted on these clips (as a catalog of them
would be), and a plain MFCC(20) mean + std baseline standardised the same way.

Speed: 5-s synthetic demo-style clips (22,050 Hz FLAC files, decoded as the pipeline does), clips per second.

    nice -n 5 python -m benchmarks.audio               # both parts
    nice -n 5 python -m benchmarks.audio --clips 30    # a quicker speed part
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGETS = {"sonic-pi 1-NN accuracy, default audio field": 0.62, "aiSFX, 5-s clips/s": 15.0}


def loo_accuracy(z: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy of L2-normalised rows `z` by cosine similarity."""
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    return float(np.mean(labels[sims.argmax(axis=1)] == labels))


def chance_accuracy(labels: np.ndarray) -> float:
    """Expected accuracy of a random other clip as the neighbour."""
    _, counts = np.unique(labels, return_counts=True)
    return float(np.sum(counts / len(labels) * (counts - 1) / (len(labels) - 1)))


def standardised(raw: np.ndarray) -> np.ndarray:
    """Rows standardised per dimension over the set, then L2-normalised."""
    from core.encoders.base import l2_normalise

    return l2_normalise((raw - raw.mean(axis=0)) / np.maximum(raw.std(axis=0), 1e-6))


def mfcc_baseline(files: list[Path]) -> np.ndarray:
    """(N, 40) MFCC(20) mean and std of each clip at 22,050 Hz."""
    import librosa

    from core.catalog.media import load_audio

    rows = []
    for f in files:
        y = load_audio(f, min_seconds=0.005)
        m = librosa.feature.mfcc(y=y, sr=22_050, n_mfcc=20)
        rows.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
    return np.asarray(rows, np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=60, help="5-s clips for the speed part")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the speed part")
    args = parser.parse_args()

    from tqdm import tqdm

    from core.encoders.audio import AudioDescriptor
    from core.encoders.audio_aisfx import AiSfxEncoder
    from core.encoders.pipeline import fit_stats
    from core.encoders.base import l2_normalise
    from core.store.paths import shared_data_dir
    from benchmarks.encoders import five_second_clips

    start = time.perf_counter()
    aisfx = AiSfxEncoder(min_seconds=0.005)  # one-shot samples shorter than the catalog minimum are padded
    load_s = time.perf_counter() - start
    descriptor = AudioDescriptor(min_seconds=0.005)
    results: dict[str, float] = {"aiSFX load (s)": load_s}

    folder = shared_data_dir() / "sonic-pi-samples"
    files = sorted(folder.glob("*.flac"))
    if not args.skip_accuracy and files:
        labels = np.array([f.name.split("_")[0] for f in files])
        emb = []
        for i in tqdm(range(0, len(files), 16), desc="aiSFX sonic-pi", unit="batch", mininterval=5.0):
            emb.append(aisfx.encode(files[i:i + 16]))
        raw = descriptor.describe(files)
        stats = fit_stats(raw, descriptor)
        results["sonic-pi 1-NN accuracy, default audio field"] = loo_accuracy(np.concatenate(emb), labels)
        results["sonic-pi 1-NN accuracy, descriptor"] = loo_accuracy(
            l2_normalise((raw - stats["mean"]) / stats["std"]), labels)
        results["sonic-pi 1-NN accuracy, MFCC(20) mean+std"] = loo_accuracy(standardised(mfcc_baseline(files)),
                                                                             labels)
        results["sonic-pi chance"] = chance_accuracy(labels)
        print(f"sonic-pi: {len(files)} clips, {len(set(labels))} categories")
    elif not files:
        print(f"no sonic-pi clips under {folder}; the accuracy part is skipped")

    with tempfile.TemporaryDirectory(prefix="prism-audio-bench-") as tmp:
        clips = five_second_clips(Path(tmp), args.clips)
        aisfx.encode(clips[:2])
        descriptor.describe(clips[:2])
        timings = {"aiSFX": [], "descriptor": []}
        for _ in range(2):  # interleaved, so both see the same load on the machine
            for name, fn in (("aiSFX", aisfx.encode), ("descriptor", descriptor.describe)):
                t0, c0 = time.perf_counter(), time.process_time()
                fn(clips)
                timings[name].append((time.perf_counter() - t0, time.process_time() - c0))
        for name, runs in timings.items():
            wall = min(w for w, _ in runs)
            cpu = min(c for _, c in runs)
            results[f"{name}, 5-s clips/s"] = len(clips) / wall
            results[f"{name}, CPU s per clip"] = cpu / len(clips)
        results["aiSFX / descriptor speed"] = results["aiSFX, 5-s clips/s"] / results["descriptor, 5-s clips/s"]

    print(f"\nAudio encoders: aiSFX {aisfx.id} beside the descriptor {descriptor.id}\n")
    print(f"{'measure':<46}{'value':>9}  target")
    for name, value in results.items():
        target = TARGETS.get(name)
        verdict = f"≥ {target:g}  {'ok' if value >= target else 'MISSED'}" if target else ""
        print(f"{name:<46}{value:>9.3f}  {verdict}")


if __name__ == "__main__":
    main()
