"""The named audio descriptor: known answers on synthetic signals, and like-with-like on real clips."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from core.encoders.audio import FEATURE_NAMES, AudioDescriptor, estimate_tempo, fit_window
from core.encoders.base import DescriptorEncoder, l2_normalise
from core.encoders.pipeline import fit_stats
from core.errors import UnsupportedMediaError

SR = 22_050


def _tone(freq: float, seconds: float = 5.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _clicks(bpm: float, seconds: float = 5.0) -> np.ndarray:
    """Short noise bursts on every beat."""
    y = np.zeros(int(seconds * SR), np.float32)
    burst = np.random.default_rng(0).standard_normal(400).astype(np.float32) * np.hanning(400).astype(np.float32)
    for start in np.arange(0.1, seconds, 60.0 / bpm):
        i = int(start * SR)
        y[i:i + 400] += burst[: len(y[i:i + 400])]
    return 0.5 * y


def _row(y: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, AudioDescriptor().describe([y])[0]))


def test_feature_names_and_groups():
    desc = AudioDescriptor()
    assert isinstance(desc, DescriptorEncoder)
    assert desc.id == "librosa-descriptor-v3" and desc.dim == len(FEATURE_NAMES) == 83
    grouped = [f for names in desc.feature_groups.values() for f in names]
    assert sorted(grouped) == sorted(FEATURE_NAMES) and len(set(grouped)) == desc.dim
    assert set(desc.feature_groups) == {"timbre", "pitch", "spectrum", "rhythm", "loudness"}
    assert [f for f in FEATURE_NAMES if f.startswith("chroma")][9] == "chroma A"
    assert AudioDescriptor(window_seconds=10).id != desc.id  # other analysis settings, other cache entries


def test_fit_window_centres_short_and_cuts_long_clips():
    short = np.ones(4, np.float32)
    np.testing.assert_array_equal(fit_window(short, 8), [0, 0, 1, 1, 1, 1, 0, 0])
    long = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_window(long, 4), [3, 4, 5, 6])


def test_a_tone_is_pitched_where_it_sounds():
    a440 = _row(_tone(440.0))
    chroma = {k: v for k, v in a440.items() if k.startswith("chroma ")}
    assert max(chroma, key=chroma.get) == "chroma A"
    assert abs(a440["spectral centroid mean"] - 440) < 60  # a pure tone's spectrum is centred on it
    c523 = _row(_tone(523.25))
    chroma = {k: v for k, v in c523.items() if k.startswith("chroma ")}
    assert max(chroma, key=chroma.get) == "chroma C"
    assert _row(_tone(3000.0))["spectral centroid mean"] > a440["spectral centroid mean"] + 2000


def test_loudness_follows_amplitude():
    quiet, loud = _row(_tone(440.0, amp=0.05)), _row(_tone(440.0, amp=0.4))
    assert loud["RMS mean"] == pytest.approx(8 * quiet["RMS mean"], rel=0.05)


@pytest.mark.parametrize("bpm", [90.0, 120.0, 140.0])
def test_tempo_of_a_click_track(bpm):
    assert _row(_clicks(bpm))["tempo (BPM)"] == pytest.approx(bpm, rel=0.04)


@pytest.mark.parametrize("bpm", [70.0, 100.0, 140.0, 175.0])
def test_tempo_of_librosa_click_tracks_has_no_octave_error(bpm):
    import librosa

    times = np.arange(0.05, 8.0, 60.0 / bpm)
    y = librosa.clicks(times=times, sr=SR, length=int(8.0 * SR)).astype(np.float32)
    assert _row(0.5 * y)["tempo (BPM)"] == pytest.approx(bpm, rel=0.04)


@pytest.mark.parametrize(("bpm", "pattern"), [(64.0, "rock"), (96.0, "sixteenths"), (128.0, "four"),
                                              (172.0, "rock")])
def test_tempo_of_drum_loops_follows_the_quarter_notes(bpm, pattern):
    from benchmarks.tempo import drum_loop

    y = drum_loop(bpm, pattern, np.random.default_rng(int(bpm)))  # hats on eighths or sixteenths
    assert _row(y)["tempo (BPM)"] == pytest.approx(bpm, rel=0.04)


def test_tempo_bands_light_up_round_the_tempo():
    row = _row(_clicks(120.0))
    bands = {name: value for name, value in row.items() if name.startswith("tempo ≈")}
    assert max(bands, key=bands.get) == "tempo ≈ 120 BPM" and bands["tempo ≈ 120 BPM"] > 0.8
    assert bands["tempo ≈ 100 BPM"] < 0.1 and bands["tempo ≈ 140 BPM"] < 0.1


def test_tempo_of_a_flat_envelope_is_zero():
    assert estimate_tempo(np.ones(200, np.float32), SR / 512) == 0.0


def test_inputs_paths_bytes_and_waveforms_agree(tmp_path):
    y = _clicks(100.0, seconds=3.0) + _tone(330.0, seconds=3.0, amp=0.1)
    wav = tmp_path / "clip.wav"
    sf.write(wav, y, SR, subtype="FLOAT")
    raw = AudioDescriptor().describe([wav, wav.read_bytes(), y])
    assert raw.shape == (3, 83) and np.isfinite(raw).all()
    np.testing.assert_allclose(raw[0], raw[2], rtol=1e-4, atol=1e-4)  # a float WAV file is the waveform itself
    np.testing.assert_allclose(raw[1], raw[2], rtol=1e-4, atol=1e-4)  # and so are its bytes (an upload)
    flac = tmp_path / "clip.flac"
    sf.write(flac, y, SR, format="FLAC", subtype="PCM_16")
    # 16-bit quantisation moves features of near-silent bands, but the clip stays itself: its nearest
    # neighbour among other sounds is the float original
    stats = AudioDescriptor.default_stats()
    rows = (AudioDescriptor().describe([_tone(880.0), _clicks(140.0), y, flac]) - stats["mean"]) / stats["std"]
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    assert int(np.argmax(rows[:3] @ rows[3])) == 2
    enc = AudioDescriptor().encode([y, _tone(880.0)])
    np.testing.assert_allclose(np.linalg.norm(enc, axis=1), 1.0, atol=1e-5)


@pytest.mark.filterwarnings("ignore")  # the decoder's fallback warns before it fails
def test_unreadable_audio_is_refused(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    with pytest.raises(UnsupportedMediaError, match="bad.wav"):
        AudioDescriptor().describe([bad])


@pytest.mark.shared_data
def test_like_with_like_on_real_clips(shared_data):
    files = sorted((shared_data / "sonic-pi-samples").glob("*.flac"))
    if len(files) < 50:
        pytest.skip(f"expected the 166 sonic-pi clips in {shared_data / 'sonic-pi-samples'}")
    # many one-shot drum samples are shorter than the catalog minimum; the descriptor itself handles them
    descriptor = AudioDescriptor(min_seconds=0.01)
    raw = descriptor.describe(files)
    labels = np.array([f.name.split("_")[0] for f in files])
    stats = fit_stats(raw, descriptor)  # standardised as a catalog of these clips would be
    z = l2_normalise((raw - stats["mean"]) / stats["std"])
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    accuracy = float(np.mean(labels[sims.argmax(axis=1)] == labels))
    _, counts = np.unique(labels, return_counts=True)
    chance = float(np.sum(counts / len(labels) * (counts - 1) / (len(labels) - 1)))  # a random other clip
    print(f"leave-one-out 1-NN category accuracy {accuracy:.3f} on {len(files)} clips, "
          f"{len(counts)} categories; chance {chance:.3f}")
    assert accuracy >= 3 * chance
