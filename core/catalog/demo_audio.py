"""Audio synthesis for the demo catalog: a pure function of a track's attributes and a seeded generator, so the
same seed always yields byte-identical clips (the covers are core.catalog.demo_covers)."""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve, lfilter

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# Chord progressions as scale degrees (0 = tonic); the classic loops of each mode.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (5, 3, 0, 4), (0, 5, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 4)),
}
TARGET_DBFS = -14.0
_TABLE_N = 4096


def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12)


def _degree(scale: tuple[int, ...], d: int) -> int:
    """Semitones above the tonic of scale degree `d` (may exceed one octave)."""
    return 12 * (d // 7) + scale[d % 7]


def _table(amps: dict[float, float]) -> np.ndarray:
    """One period of a waveform with harmonic k at amplitude amps[k]: a wavetable oscillator's table."""
    ph = np.arange(_TABLE_N) / _TABLE_N * 2 * np.pi
    y = sum(a * np.sin(k * ph) for k, a in amps.items())
    return (y / np.abs(y).max()).astype(np.float32)


_TABLES = {
    "bright": _table({k: 1 / k ** 1.25 for k in range(1, 11)}),
    "warm": _table({1: 1.0, 2: 0.35, 3: 0.15, 4: 0.05}),
    "saw": _table({k: 1 / k for k in range(1, 13)}),
    "soft": _table({1: 1.0, 2: 0.2, 3: 0.08}),
    "string": _table({k: (1 / k) * (1.4 if k in (3, 4, 5) else 1.0) for k in range(1, 11)}),
    "bass": _table({1: 1.0, 2: 0.5, 3: 0.2, 4: 0.08}),
}


def _osc(table: str, freq: float | np.ndarray, n: int, sr: int, phase: float = 0.0) -> np.ndarray:
    """Wavetable oscillator: `freq` is a constant or a per-sample array (for vibrato)."""
    if np.isscalar(freq):
        cycles = phase + np.arange(n, dtype=np.float64) * (freq / sr)
    else:
        cycles = phase + np.cumsum(freq, dtype=np.float64) / sr
    idx = (cycles * _TABLE_N).astype(np.int64) & (_TABLE_N - 1)
    return _TABLES[table][idx]


def _env(n: int, sr: int, attack: float, tau: float | None, release: float, hold: int | None = None) -> np.ndarray:
    """Attack ramp, exponential decay with time constant `tau` (None: sustain), release at `hold` samples."""
    t = np.arange(n, dtype=np.float32) / sr
    e = np.minimum(1.0, t / max(attack, 1e-4))
    if tau is not None:
        e *= np.exp(-t / tau)
    if hold is not None and hold < n:
        tail = np.arange(n - hold, dtype=np.float32) / sr
        e[hold:] *= np.exp(-tail / max(release / 4.6, 1e-4))  # -40 dB after `release` seconds
    return e


KS_BLOCKS_FROM = 64  # periods from which the block recursion beats lfilter's O(n · period) (measured)


def _plucked_string(x: np.ndarray, period: int, g: float = 0.4985) -> np.ndarray:
    """(n,) float64 y[n] = x[n] + g·y[n-N-1] + g·y[n-N] (N = `period`), bit for bit what lfilter gives.

    lfilter runs the recursion as an IIR filter of order N + 1, so its cost grows with the period; for long
    periods the recursion is evaluated a period at a time (each block needs only earlier blocks), with the
    products and sums in the order of lfilter's transposed direct form, so the samples are identical.
    """
    if period < KS_BLOCKS_FROM:
        a = np.zeros(period + 2)
        a[0], a[period], a[period + 1] = 1.0, -g, -g
        return lfilter([1.0], a, x)
    n = x.size
    y = np.zeros(period + 1 + n, np.float64)  # period + 1 leading zeros: the filter's zero initial state
    y[period + 1:] = x
    out = y[period + 1:]
    for s in range(0, n, period):
        e = min(s + period, n)
        out[s:e] += g * y[s:e] + g * y[s + 1:e + 1]  # y[n-N-1] and y[n-N] lie in earlier blocks
    return out


def _note(instrument: str, midi: float, dur: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note of `instrument`, `dur` seconds held, with its natural ring-out."""
    f = _midi_hz(midi)
    hold = int(dur * sr)
    if instrument == "piano":
        n = int(min(dur + 0.4, 2.2) * sr)
        y = (_osc("bright", f, n, sr) * _env(n, sr, 0.004, 0.22, 0.12, hold)
             + 0.8 * _osc("warm", f, n, sr) * _env(n, sr, 0.004, 1.1, 0.12, hold))
    elif instrument == "bells":
        n = int(1.6 * sr)
        t = np.arange(n, dtype=np.float32) / sr
        y = np.zeros(n, np.float32)
        for ratio, amp, tau in ((1.0, 1.0, 0.9), (2.76, 0.45, 0.35), (5.4, 0.22, 0.15), (8.93, 0.1, 0.08)):
            if f * ratio < sr / 2.2:
                y += amp * np.sin(2 * np.pi * f * ratio * t) * np.exp(-t / tau)
        y *= np.minimum(1.0, t / 0.002)
    elif instrument == "guitar":
        # Karplus-Strong plucked string as one IIR filter: y[n] = x[n] + g/2 (y[n-N] + y[n-N-1])
        n = int(min(dur + 0.6, 2.2) * sr)
        period = max(2, int(round(sr / f - 0.5)))
        burst = rng.uniform(-1, 1, period).astype(np.float32)
        burst = np.convolve(burst, np.array([0.1, 0.2, 0.4, 0.2, 0.1]), mode="same")  # a softer pick
        x = np.zeros(n, np.float32)
        x[:period] = burst
        y = _plucked_string(x, period).astype(np.float32)
        y *= _env(n, sr, 0.001, None, 0.15, hold)
    elif instrument == "synth":
        n = int(min(dur + 0.15, 2.0) * sr)
        det = 2 ** (7 / 1200)
        bright = _env(n, sr, 0.005, 0.18, 0.08, hold)
        body = _env(n, sr, 0.005, 0.9, 0.08, hold)
        y = (0.5 * (_osc("saw", f * det, n, sr) + _osc("saw", f / det, n, sr, 0.3)) * bright
             + _osc("soft", f, n, sr) * body)
    elif instrument == "strings":
        n = int(min(dur + 0.3, 3.0) * sr)
        t = np.arange(n, dtype=np.float32) / sr
        vib = f * (1 + 0.004 * np.sin(2 * np.pi * 5.3 * t) * np.minimum(1, t / 0.3))
        y = 0.5 * (_osc("string", vib * 1.002, n, sr) + _osc("string", vib / 1.002, n, sr, 0.5))
        y *= _env(n, sr, 0.12, None, 0.25, hold)
    elif instrument == "bass":
        n = int(min(dur + 0.2, 2.0) * sr)
        y = _osc("bass", f, n, sr) * _env(n, sr, 0.004, 0.5, 0.08, hold)
    elif instrument == "pad":
        n = int((dur + 0.8) * sr)
        t = np.arange(n, dtype=np.float32) / sr
        y = sum(_osc("soft", f * 2 ** (c / 1200), n, sr, p) for c, p in ((-9, 0.0), (0, 0.33), (8, 0.66))) / 3
        y *= (1 + 0.15 * np.sin(2 * np.pi * 0.4 * t)) * _env(n, sr, min(0.6, dur / 2), None, 0.8, hold)
    else:
        raise ValueError(f"no synthesiser for instrument {instrument!r}")
    y = np.asarray(y, np.float32)
    k = min(y.size, int(0.006 * sr))
    y[-k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32)  # a note never ends on a click
    return y


def _drum(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One drum hit: kick, snare, hat (closed hi-hat) or ride."""
    if kind == "kick":
        n = int(0.35 * sr)
        t = np.arange(n, dtype=np.float32) / sr
        freq = 46 + 95 * np.exp(-t / 0.035)
        y = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.13)
        y[: int(0.002 * sr)] += rng.uniform(-0.3, 0.3, int(0.002 * sr))  # beater click
        return y.astype(np.float32)
    noise = rng.uniform(-1, 1, int(0.4 * sr)).astype(np.float32)
    hp = np.diff(noise, prepend=0.0)  # crude high-pass: cymbals live up top
    t = np.arange(noise.size, dtype=np.float32) / sr
    if kind == "hat":
        return (hp * np.exp(-t / 0.018) * 0.5)[: int(0.1 * sr)]
    if kind == "ride":
        ring = sum(np.sin(2 * np.pi * fr * t) for fr in (3150.0, 4470.0, 5920.0)) / 3
        return ((0.4 * hp + 0.25 * ring) * np.exp(-t / 0.25) * 0.45).astype(np.float32)
    if kind == "snare":
        body = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.04)
        return ((0.6 * noise * np.exp(-t / 0.07) + 0.5 * body) * 0.8).astype(np.float32)[: int(0.3 * sr)]
    raise ValueError(f"no drum sound {kind!r}")


def _add(buf: np.ndarray, sig: np.ndarray, at: float, sr: int, gain: float = 1.0) -> None:
    """Mix `sig` into `buf` starting at `at` seconds, cut at the buffer's end."""
    i = int(round(at * sr))
    if i >= buf.size:
        return
    j = min(buf.size, i + sig.size)
    buf[i:j] += gain * sig[: j - i]


def _reverb(y: np.ndarray, sr: int, seconds: float, wet: float, rng: np.random.Generator) -> np.ndarray:
    """A small room: convolution with decaying, darkened noise (no external impulse responses needed)."""
    n = int(seconds * sr)
    t = np.arange(n, dtype=np.float32) / sr
    ir = rng.standard_normal(n).astype(np.float32) * np.exp(-t * 6.9 / seconds)
    ir = lfilter([0.25], [1.0, -0.75], ir).astype(np.float32)  # one-pole low-pass: warmer tail
    ir[: int(0.012 * sr)] = 0.0  # pre-delay keeps the attack clear
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-9
    tail = fftconvolve(y, ir)[: y.size].astype(np.float32)
    return (1 - wet) * y + wet * tail


# Per genre: (lead subdivisions scale, accompaniment, drum pattern, reverb seconds, reverb wet)
_GENRE_SOUND = {
    "ambient": (0.5, "pad", None, 2.6, 0.45),
    "techno": (1.0, "offbass", "four", 0.8, 0.12),
    "jazz": (1.0, "comp", "swing", 1.2, 0.2),
    "folk": (1.0, "strum", "shaker", 1.0, 0.18),
    "hip-hop": (1.0, "keys", "boombap", 0.9, 0.12),
    "classical": (1.0, "strings", None, 2.0, 0.32),
}
_MOOD_SUBDIV = {"calm": 1, "melancholic": 1, "happy": 2, "dark": 2, "energetic": 4}


def synth_clip(genre: str, mood: str, instrument: str, bpm: float, key_root: int, mode: str,
               energy: float, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A mono float32 clip: chords, a lead line on `instrument` and genre drums at `bpm`, about -14 dBFS."""
    if genre not in _GENRE_SOUND:
        raise ValueError(f"no sound for genre {genre!r}; known: {sorted(_GENRE_SOUND)}")
    n = int(round(seconds * sr))
    beat = 60.0 / bpm
    scale = MAJOR if mode == "major" else MINOR
    prog = PROGRESSIONS[mode][rng.integers(len(PROGRESSIONS[mode]))]
    beats_per_chord = 4 if bpm >= 100 else 2
    n_beats = int(np.ceil(seconds / beat)) + 1
    sub_scale, accomp, drums, rv_seconds, rv_wet = _GENRE_SOUND[genre]

    lead = np.zeros(n, np.float32)
    back = np.zeros(n, np.float32)
    low = np.zeros(n, np.float32)
    kit = np.zeros(n, np.float32)

    def chord(b: int, sevenths: bool = False) -> list[int]:
        deg = prog[(b // beats_per_chord) % len(prog)]
        tones = (0, 2, 4, 6) if sevenths else (0, 2, 4)
        return [key_root + _degree(scale, deg + k) for k in tones]

    # -- lead line: chord tones on a grid of beat subdivisions, accents on the beat so tempo is audible
    subdiv = max(1, int(_MOOD_SUBDIV[mood] * sub_scale)) if not (bpm > 128 and _MOOD_SUBDIV[mood] == 4) else 2
    octave = 0 if instrument == "bass" else 12
    pattern = rng.integers(3)
    step = beat / subdiv
    legato = {"strings": 1.0, "synth": 0.8, "bass": 0.9}.get(instrument, 1.6)
    prev = rng.integers(4)
    for s in range(n_beats * subdiv):
        b, on_beat = s // subdiv, s % subdiv == 0
        if not on_beat and rng.random() < 0.15:
            continue  # a rest now and then, never on the beat
        tones = chord(b) + [chord(b)[0] + 12]
        if pattern == 0:
            idx = s % len(tones)
        elif pattern == 1:
            cyc = s % (2 * len(tones) - 2)
            idx = cyc if cyc < len(tones) else 2 * len(tones) - 2 - cyc
        else:
            prev = int(np.clip(prev + rng.integers(-1, 2), 0, len(tones) - 1))
            idx = prev
        vel = 1.0 if (on_beat and b % 4 == 0) else 0.85 if on_beat else 0.55
        _add(lead, _note(instrument, tones[idx] + octave, step * legato, sr, rng), s * step, sr, vel)

    # -- accompaniment
    bass_inst = "bass" if instrument != "bass" else "piano"
    for seg in range(0, n_beats, beats_per_chord):
        t0, notes = seg * beat, chord(seg)
        seg_len = beats_per_chord * beat
        if accomp == "pad":
            for m in notes:
                _add(back, _note("pad", m, seg_len, sr, rng), t0, sr, 0.5)
        elif accomp == "strings":
            for m in notes:
                _add(back, _note("strings", m - 12 * (m == notes[0]), seg_len, sr, rng), t0, sr, 0.45)
        elif accomp == "keys":
            for m in chord(seg, sevenths=True):
                _add(back, _note("piano", m, seg_len * 0.9, sr, rng), t0, sr, 0.3)
            _add(low, _note(bass_inst, notes[0] - 12, seg_len * 0.7, sr, rng), t0, sr, 0.8)
    for b in range(n_beats):
        t0, notes = b * beat, chord(b)
        if accomp == "offbass":
            _add(low, _note(bass_inst, notes[0] - 12, beat * 0.35, sr, rng), t0 + beat / 2, sr, 0.8)
        elif accomp == "comp":
            if b % 2 == 1:  # comping on 2 and 4
                for m in chord(b, sevenths=True):
                    _add(back, _note("piano", m, beat * 0.5, sr, rng), t0, sr, 0.28)
            walk = notes[b % 3] - 12  # walking bass through the chord tones
            _add(low, _note(bass_inst, walk, beat * 0.9, sr, rng), t0, sr, 0.7)
        elif accomp == "strum":
            if b % 2 == 0 or energy > 0.6:
                for k, m in enumerate(notes + [notes[0] + 12]):
                    _add(back, _note("guitar", m, beat, sr, rng), t0 + 0.012 * k, sr, 0.3)

    # -- drums: one sample per kind per clip, placed on the grid
    if drums is not None:
        hits = {k: _drum(k, sr, rng) for k in ("kick", "snare", "hat", "ride")}
        level = 0.5 + 0.5 * energy
        for b in range(n_beats):
            t0 = b * beat
            if drums == "four":
                _add(kit, hits["kick"], t0, sr, 1.0 * level)
                _add(kit, hits["hat"], t0 + beat / 2, sr, 0.6 * level)
                if b % 2 == 1 and energy > 0.5:
                    _add(kit, hits["snare"], t0, sr, 0.45 * level)
            elif drums == "boombap":
                if b % 4 in (0, 2):
                    _add(kit, hits["kick"], t0, sr, 1.0 * level)
                if b % 4 == 1:
                    _add(kit, hits["kick"], t0 + beat * 0.58, sr, 0.7 * level)
                if b % 2 == 1:
                    _add(kit, hits["snare"], t0, sr, 0.8 * level)
                _add(kit, hits["hat"], t0, sr, 0.45 * level)
                _add(kit, hits["hat"], t0 + beat * 0.58, sr, 0.3 * level)  # swung off-beat
            elif drums == "swing":
                _add(kit, hits["ride"], t0, sr, 0.5 * level)
                if b % 2 == 1:
                    _add(kit, hits["ride"], t0 + beat * 0.66, sr, 0.3 * level)
                if b % 4 == 0:
                    _add(kit, hits["kick"], t0, sr, 0.35 * level)
            elif drums == "shaker":
                if energy > 0.35:
                    _add(kit, hits["hat"], t0, sr, 0.25 * level)
                    _add(kit, hits["hat"], t0 + beat / 2, sr, 0.15 * level)

    y = lead + 0.8 * back + 0.75 * low + 0.8 * kit
    y = _reverb(y, sr, rv_seconds, rv_wet, rng)
    y -= y.mean()
    fade_in, fade_out = int(0.015 * sr), int(min(0.5, seconds / 6) * sr)
    y[:fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)
    y[-fade_out:] *= np.linspace(1, 0, fade_out, dtype=np.float32) ** 2
    return normalise_loudness(y)


def normalise_loudness(y: np.ndarray, target_dbfs: float = TARGET_DBFS, ceiling: float = 0.95) -> np.ndarray:
    """Scale to `target_dbfs` RMS; a soft limiter keeps peaks under `ceiling` so nothing clips."""
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    if rms < 1e-9:
        return y.astype(np.float32)
    y = y * (10 ** (target_dbfs / 20) / rms)
    if np.abs(y).max() > ceiling:
        y = ceiling * np.tanh(y / ceiling)  # ~linear at the RMS level, rounds off only the peaks
    return y.astype(np.float32)
