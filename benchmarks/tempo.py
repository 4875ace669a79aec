"""Tempo benchmark: the audio descriptor's tempo estimate on synthetic clips of known tempo — click tracks
(`librosa.clicks`, plain and with accented downbeats) and generated drum loops (rock backbeat, four-on-the-floor,
sixteenth-note hats) at tempos drawn uniformly from 60–180 BPM. Prints the share within 4% of the true tempo,
the octave-error share (within 4% of double or half the tempo) and the rest, overall and per kind.

    python -m benchmarks.tempo                    # 40 clips per kind, seed 1 (the reported run)
    python -m benchmarks.tempo --seed 0           # the seed the estimator's settings were chosen on
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SR = 22_050
SECONDS = 8.0  # clip length; the descriptor reads its central 5-s window
TOLERANCE = 0.04  # "correct" = within 4% of the true tempo
KINDS = ("clicks", "accented clicks", "rock loop", "four-on-the-floor loop", "sixteenths loop")


def _kick(rng: np.random.Generator) -> np.ndarray:
    """A sine sweep from ~150 to ~50 Hz with a fast decay (≈ 0.25 s)."""
    t = np.arange(int(0.25 * SR)) / SR
    f0, f1 = rng.uniform(120, 170), rng.uniform(45, 60)
    phase = 2 * np.pi * (f1 * t + (f0 - f1) * 0.03 * (1 - np.exp(-t / 0.03)))
    return np.sin(phase) * np.exp(-t / 0.07)


def _snare(rng: np.random.Generator) -> np.ndarray:
    """A noise burst over a ~190 Hz body (≈ 0.2 s)."""
    t = np.arange(int(0.2 * SR)) / SR
    noise = rng.standard_normal(t.size)
    return (0.6 * noise * np.exp(-t / 0.05) + 0.5 * np.sin(2 * np.pi * rng.uniform(170, 210) * t)
            * np.exp(-t / 0.04))


def _hat(rng: np.random.Generator) -> np.ndarray:
    """A high-passed noise tick (≈ 50 ms)."""
    t = np.arange(int(0.05 * SR)) / SR
    noise = np.diff(rng.standard_normal(t.size + 1))  # first difference: a crude high-pass
    return 0.5 * noise * np.exp(-t / 0.012)


def _place(y: np.ndarray, sound: np.ndarray, at: float, gain: float) -> None:
    i = int(at * SR)
    if i < y.size:
        n = min(sound.size, y.size - i)
        y[i:i + n] += gain * sound[:n]


def drum_loop(bpm: float, pattern: str, rng: np.random.Generator, seconds: float = SECONDS) -> np.ndarray:
    """A loop at `bpm` (quarter notes): "rock" (kick 1 & 3, snare 2 & 4, eighth hats), "four" (kick every beat,
    clap 2 & 4, off-beat hats) or "sixteenths" (rock with sixteenth hats); timing jittered by ±5 ms."""
    beat = 60.0 / bpm
    y = np.zeros(int(seconds * SR))
    kick, snare, hat = _kick(rng), _snare(rng), _hat(rng)
    start = rng.uniform(0.0, beat)
    for k in range(int((seconds - start) / beat) + 1):
        t = start + k * beat
        jitter = lambda: rng.uniform(-0.005, 0.005)  # noqa: E731 — a fresh draw per hit
        if pattern == "four" or k % 2 == 0:
            _place(y, kick, t + jitter(), rng.uniform(0.8, 1.0))
        if k % 2 == 1:
            _place(y, snare, t + jitter(), rng.uniform(0.6, 0.9))
        subdivisions = 4 if pattern == "sixteenths" else 2
        for s in range(subdivisions):
            if pattern == "four" and s == 0:
                continue  # four-on-the-floor: hats on the off-beats only
            _place(y, hat, t + s * beat / subdivisions + jitter(), rng.uniform(0.25, 0.45))
    y += 0.003 * rng.standard_normal(y.size)  # a little noise floor
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def click_track(bpm: float, accented: bool, rng: np.random.Generator, seconds: float = SECONDS) -> np.ndarray:
    """librosa.clicks on every beat from a random phase; accented: a louder, higher click on each downbeat."""
    import librosa

    beat = 60.0 / bpm
    times = np.arange(rng.uniform(0.0, beat), seconds, beat)
    n = int(seconds * SR)
    freq = rng.uniform(800, 1500)
    y = librosa.clicks(times=times, sr=SR, click_freq=freq, length=n)
    if accented:
        y = 0.6 * y + librosa.clicks(times=times[::4], sr=SR, click_freq=1.5 * freq, length=n)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def make_clip(kind: str, bpm: float, rng: np.random.Generator) -> np.ndarray:
    """One synthetic clip of `kind` (see KINDS) at `bpm`."""
    if kind in ("clicks", "accented clicks"):
        return click_track(bpm, kind == "accented clicks", rng)
    pattern = {"rock loop": "rock", "four-on-the-floor loop": "four", "sixteenths loop": "sixteenths"}[kind]
    return drum_loop(bpm, pattern, rng)


def classify(estimate: float, truth: float) -> str:
    """"correct" (within 4%), "octave" (within 4% of double or half) or "other"."""
    if abs(estimate - truth) <= TOLERANCE * truth:
        return "correct"
    if any(abs(estimate - f * truth) <= TOLERANCE * f * truth for f in (2.0, 0.5)):
        return "octave"
    return "other"


def run(estimate: Callable[[np.ndarray], float], per_kind: int, seed: int) -> dict[str, dict[str, float]]:
    """{kind (and "all"): {"correct", "octave", "other" shares, "n"}} of `estimate` over the synthetic clips."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    outcomes: dict[str, list[str]] = {k: [] for k in KINDS}
    jobs = [(kind, float(rng.uniform(60.0, 180.0))) for kind in KINDS for _ in range(per_kind)]
    # mininterval: plain periodic lines when the output is a log file
    for kind, bpm in tqdm(jobs, desc="tempo clips", unit="clip", mininterval=5.0):
        outcomes[kind].append(classify(estimate(make_clip(kind, bpm, rng)), bpm))
    outcomes["all"] = [o for k in KINDS for o in outcomes[k]]
    return {k: {c: float(np.mean([o == c for o in v])) for c in ("correct", "octave", "other")} | {"n": len(v)}
            for k, v in outcomes.items()}


def descriptor_tempo() -> Callable[[np.ndarray], float]:
    """The audio descriptor's "tempo (BPM)" feature as a function of a 22,050 Hz waveform."""
    from core.encoders.audio import FEATURE_NAMES, AudioDescriptor

    descriptor = AudioDescriptor(workers=1)
    column = FEATURE_NAMES.index("tempo (BPM)")
    return lambda y: float(descriptor.describe([y])[0, column])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=40, help="clips of each kind")
    parser.add_argument("--seed", type=int, default=1, help="seed of tempos, phases and sounds")
    args = parser.parse_args()

    table = run(descriptor_tempo(), args.per_kind, args.seed)
    print(f"\nDescriptor tempo on synthetic clips, 60–180 BPM, seed {args.seed} "
          f"(correct = within {TOLERANCE:.0%}; octave = within {TOLERANCE:.0%} of ×2 or ×½)\n")
    print(f"{'clips':<26}{'n':>5}{'correct':>10}{'octave':>9}{'other':>8}")
    for kind, row in table.items():
        print(f"{kind:<26}{row['n']:>5}{row['correct']:>10.1%}{row['octave']:>9.1%}{row['other']:>8.1%}")
    overall = table["all"]
    print(f"\ntargets: correct ≥ 90% ({'ok' if overall['correct'] >= 0.9 else 'MISSED'}), "
          f"octave errors ≤ 5% ({'ok' if overall['octave'] <= 0.05 else 'MISSED'})")


if __name__ == "__main__":
    main()
