"""The demo catalog: a seeded tri-modal music catalog (description, cover art, audio clip) with simulated
listeners whose tastes are known, so what a model learns can be checked against the truth.

Each track has latent attributes that show partially and differently in each modality:

    attribute    text                    image (cover)          audio (clip)
    genre        usually named           shapes                 rhythm, accompaniment
    mood         usually named           finish (light, grain)  mode (major/minor), note density
    instrument   sometimes named         -                      lead timbre
    theme        named (what it is about) -                     -
    palette      -                       colours                -
    bpm          -                       -                      tempo

theme, palette and bpm are drawn independently of everything else, so a listener who cares only about one
of them (the "words", "palette" and "tempo" listeners) has a taste that lives in exactly one modality.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.catalog.demo_audio import synth_clip
from core.catalog.demo_covers import PALETTES, render_cover
from core.catalog.demo_text import artists_by_genre, describe_track, pick, track_title
from core.catalog.model import MODALITIES, Catalog, Item
from core.errors import CatalogError

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

CATALOG_NAME = "demo"
GROUND_TRUTH_FILE = "ground_truth.json"
PNG_COMPRESS_LEVEL = 1  # zlib level of the covers (lossless whatever the level; 1 is the fastest)
GENRES: tuple[str, ...] = ("ambient", "techno", "jazz", "folk", "hip-hop", "classical")
MOODS: tuple[str, ...] = ("calm", "happy", "melancholic", "energetic", "dark")
INSTRUMENTS: tuple[str, ...] = ("piano", "guitar", "synth", "strings", "bass", "bells")
PALETTE_NAMES: tuple[str, ...] = tuple(PALETTES)
THEMES: tuple[str, ...] = ("sea", "city", "forest", "desert", "stars", "rain", "road", "home")
CATEGORIES: dict[str, tuple[str, ...]] = {"genre": GENRES, "mood": MOODS, "instrument": INSTRUMENTS,
                                          "palette": PALETTE_NAMES, "theme": THEMES}
ATTRIBUTES: tuple[str, ...] = ("genre", "mood", "instrument", "bpm", "palette", "theme")
LISTENER_KINDS: tuple[str, ...] = ("tempo", "palette", "words", "mixed")

# How much of each attribute each modality carries: a listener's modality weights are their attribute
# weights pushed through this table. Instrument leans on audio because the text names it only sometimes.
VISIBILITY: dict[str, dict[str, float]] = {
    "genre": {"text": 1 / 3, "image": 1 / 3, "audio": 1 / 3},
    "mood": {"text": 1 / 3, "image": 1 / 3, "audio": 1 / 3},
    "instrument": {"text": 0.3, "image": 0.0, "audio": 0.7},
    "bpm": {"text": 0.0, "image": 0.0, "audio": 1.0},
    "palette": {"text": 0.0, "image": 1.0, "audio": 0.0},
    "theme": {"text": 1.0, "image": 0.0, "audio": 0.0},
}
DOMINANT_SHARE = 0.75  # a listener's dominant modality carries at least this share of their taste

_MOOD_GIVEN_GENRE = {  # calm, happy, melancholic, energetic, dark
    "ambient": (0.45, 0.10, 0.30, 0.02, 0.13),
    "techno": (0.03, 0.15, 0.10, 0.42, 0.30),
    "jazz": (0.30, 0.28, 0.28, 0.08, 0.06),
    "folk": (0.28, 0.32, 0.32, 0.04, 0.04),
    "hip-hop": (0.10, 0.20, 0.20, 0.25, 0.25),
    "classical": (0.30, 0.20, 0.30, 0.05, 0.15),
}
_INSTRUMENT_GIVEN_GENRE = {  # piano, guitar, synth, strings, bass, bells
    "ambient": (0.20, 0.05, 0.35, 0.15, 0.00, 0.25),
    "techno": (0.05, 0.00, 0.60, 0.00, 0.25, 0.10),
    "jazz": (0.45, 0.20, 0.00, 0.00, 0.20, 0.15),
    "folk": (0.12, 0.60, 0.00, 0.18, 0.00, 0.10),
    "hip-hop": (0.30, 0.05, 0.30, 0.05, 0.25, 0.05),
    "classical": (0.45, 0.00, 0.00, 0.45, 0.00, 0.10),
}
_MOOD_ENERGY = {"calm": 0.2, "melancholic": 0.35, "happy": 0.6, "dark": 0.55, "energetic": 0.9}
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

@dataclass(frozen=True)
class DemoConfig:
    """What to generate; everything derives from `seed`, so the same config gives the same bytes."""

    seed: int = 7  # the one source of randomness
    n_tracks: int = 600  # items in the catalog
    n_listeners: int = 500  # simulated users
    min_interactions: int = 20  # per listener (capped at half the catalog for tiny catalogs)
    max_interactions: int = 40  # per listener, inclusive
    min_seconds: float = 3.0  # shortest clip
    max_seconds: float = 6.0  # longest clip
    sample_rate: int = 22050  # Hz, the rate the audio encoders use
    cover_size: int = 256  # cover side in pixels
    audio_format: str = "flac"  # "flac" (lossless, about half the size of wav) or "wav"
    bpm_min: float = 70.0  # tempo is uniform in [bpm_min, bpm_max], independent of genre and mood
    bpm_max: float = 150.0
    missing_share: float = 0.03  # tracks lacking one modality (text, cover or audio), to show masking
    share_tempo: float = 0.2  # listeners who care only about BPM: their taste is audio-only
    share_palette: float = 0.2  # listeners who care only about cover colours: image-only
    share_words: float = 0.2  # listeners who care only about the theme the text names: text-only
    temperature: float = 0.2  # softmax temperature over affinity in [0, 1]; lower = pickier listeners
    noise: float = 0.1  # sd of random noise added to every (listener, track) affinity
    popularity_weight: float = 0.6  # weight of log Zipf popularity in the choice logits
    zipf_exponent: float = 0.9  # popularity of the track of rank r is proportional to r ** -exponent
    days: float = 180.0  # span of the interaction timestamps
    start_time: float = 1_704_067_200.0  # earliest timestamp (2024-01-01 UTC)

    def __post_init__(self) -> None:
        problems = []
        if self.n_tracks < 2 or self.n_listeners < 1:
            problems.append("n_tracks must be >= 2 and n_listeners >= 1")
        if not 1 <= self.min_interactions <= self.max_interactions:
            problems.append("need 1 <= min_interactions <= max_interactions")
        if not 0.5 <= self.min_seconds <= self.max_seconds:
            problems.append("need 0.5 <= min_seconds <= max_seconds")
        if not 0 < self.bpm_min <= self.bpm_max:
            problems.append("need 0 < bpm_min <= bpm_max")
        if self.audio_format not in ("flac", "wav"):
            problems.append(f"audio_format {self.audio_format!r} must be 'flac' or 'wav'")
        if self.cover_size < 32:
            problems.append("cover_size must be at least 32 px")
        if min(self.share_tempo, self.share_palette, self.share_words) < 0 or \
                self.share_tempo + self.share_palette + self.share_words > 1:
            problems.append("listener shares must be >= 0 and sum to at most 1")
        if self.temperature <= 0 or self.noise < 0 or not 0 <= self.missing_share <= 1:
            problems.append("need temperature > 0, noise >= 0 and 0 <= missing_share <= 1")
        if problems:
            raise CatalogError("DemoConfig is invalid: " + "; ".join(problems))

    @classmethod
    def from_env(cls) -> DemoConfig:
        """Defaults overridden by $PRISM_DEMO_SEED, $PRISM_DEMO_TRACKS and $PRISM_DEMO_LISTENERS."""
        overrides = {}
        for key, var in (("seed", "PRISM_DEMO_SEED"), ("n_tracks", "PRISM_DEMO_TRACKS"),
                         ("n_listeners", "PRISM_DEMO_LISTENERS")):
            value = os.environ.get(var)
            if value:
                try:
                    overrides[key] = int(value)
                except ValueError as e:
                    raise CatalogError(f"${var}={value!r} is not an integer; unset it or give a whole number") from e
        return cls(**overrides)


@dataclass
class TrackSpec:
    """One demo track: its latent attributes and the words said about it."""

    id: str
    title: str
    artist: str
    text: str | None  # None when the track lacks the text modality
    genre: str
    mood: str
    energy: float  # 0..1, follows mood: loudness of drums, density of notes
    bpm: int
    instrument: str
    palette: str
    theme: str
    key_root: int  # MIDI note of the tonic
    mode: str  # "major" | "minor", from mood
    seconds: float  # clip length
    missing: str | None  # the modality this track lacks, if any

    @property
    def key(self) -> str:
        return f"{_NOTE_NAMES[self.key_root % 12]} {self.mode}"

    def metadata(self) -> dict[str, Any]:
        """The latent attributes as Item.metadata, so plots can be coloured by them."""
        return {"artist": self.artist, "genre": self.genre, "mood": self.mood, "energy": self.energy,
                "bpm": self.bpm, "instrument": self.instrument, "palette": self.palette, "theme": self.theme,
                "key": self.key, "duration_s": self.seconds}


@dataclass
class ListenerTaste:
    """One simulated listener: what they care about and what they like."""

    id: str
    kind: str  # one of LISTENER_KINDS
    attribute_weights: dict[str, float]  # attribute -> weight, summing to 1
    preferences: dict[str, dict[str, float]]  # categorical: category -> liking in [0, 1]; bpm: mean, width

    @property
    def modality_weights(self) -> dict[str, float]:
        """Share of this listener's taste that each modality can see."""
        return {m: round(sum(w * VISIBILITY[a][m] for a, w in self.attribute_weights.items()), 4)
                for m in MODALITIES}

    @property
    def dominant_modality(self) -> str | None:
        """The modality carrying at least DOMINANT_SHARE of the taste, or None for mixed tastes."""
        weights = self.modality_weights
        best = max(weights, key=weights.__getitem__)
        return best if weights[best] >= DOMINANT_SHARE else None


def _id(prefix: str, i: int, n: int) -> str:
    return f"{prefix}{i + 1:0{max(4, len(str(n)))}d}"


def sample_tracks(config: DemoConfig) -> list[TrackSpec]:
    """The tracks' latent attributes, titles and descriptions; track i's attributes depend only on (seed, i)."""
    artists = artists_by_genre(config.seed, GENRES)
    titles: set[str] = set()
    tracks = []
    for i in range(config.n_tracks):
        rng = np.random.default_rng([config.seed, 2, i])
        genre = pick(rng, GENRES)
        mood = MOODS[rng.choice(len(MOODS), p=np.array(_MOOD_GIVEN_GENRE[genre]) / sum(_MOOD_GIVEN_GENRE[genre]))]
        p_inst = np.array(_INSTRUMENT_GIVEN_GENRE[genre])
        instrument = INSTRUMENTS[rng.choice(len(INSTRUMENTS), p=p_inst / p_inst.sum())]
        palette, theme = pick(rng, PALETTE_NAMES), pick(rng, THEMES)
        bpm = int(round(rng.uniform(config.bpm_min, config.bpm_max)))
        energy = round(float(np.clip(_MOOD_ENERGY[mood] + rng.normal(0, 0.08), 0, 1)), 3)
        key_root = int(rng.integers(45, 57))  # A2..G#3: the chords sit low, the lead an octave up
        seconds = round(float(rng.uniform(config.min_seconds, config.max_seconds)), 2)
        missing = pick(rng, MODALITIES) if rng.random() < config.missing_share else None
        artist = pick(rng, tuple(artists[genre]))
        title = track_title(rng, mood, theme, titles)
        text = None if missing == "text" else describe_track(rng, genre, mood, instrument, theme, artist)
        tracks.append(TrackSpec(
            id=_id("T", i, config.n_tracks), title=title, artist=artist, text=text, genre=genre, mood=mood,
            energy=energy, bpm=bpm, instrument=instrument, palette=palette, theme=theme, key_root=key_root,
            mode="minor" if mood in ("melancholic", "dark") else "major", seconds=seconds, missing=missing))
    return tracks


def _categorical_preference(rng: np.random.Generator, categories: tuple[str, ...]) -> dict[str, float]:
    """One or two favourite categories: the first liked fully, the second partly."""
    k = 1 if rng.random() < 0.6 else 2
    favourites = rng.choice(len(categories), size=k, replace=False)
    prefs = {categories[int(favourites[0])]: 1.0}
    if k == 2:
        prefs[categories[int(favourites[1])]] = round(float(rng.uniform(0.4, 0.8)), 3)
    return prefs


def sample_listeners(config: DemoConfig) -> list[ListenerTaste]:
    """The listeners' tastes: single-modality kinds in the configured shares, the rest mixed."""
    rng = np.random.default_rng([config.seed, 3])
    n = config.n_listeners
    counts = [int(round(s * n)) for s in (config.share_tempo, config.share_palette, config.share_words)]
    kinds = ["tempo"] * counts[0] + ["palette"] * counts[1] + ["words"] * counts[2]
    kinds = (kinds + ["mixed"] * n)[:n]
    kinds = [kinds[int(j)] for j in rng.permutation(n)]
    listeners = []
    for i, kind in enumerate(kinds):
        if kind == "tempo":
            weights = {"bpm": 1.0}
        elif kind == "palette":
            weights = {"palette": 1.0}
        elif kind == "words":
            weights = {"theme": 1.0}
        else:
            # mixed tastes lean on the shared attributes (genre, mood) like most people's do
            raw = rng.dirichlet([3.0, 2.0, 1.5, 0.6, 0.6, 0.6])
            raw[raw < 0.03] = 0.0
            raw /= raw.sum()
            weights = {a: round(float(w), 4) for a, w in zip(ATTRIBUTES, raw) if w > 0}
        prefs: dict[str, dict[str, float]] = {}
        for attribute in weights:
            if attribute == "bpm":
                margin = min(10.0, (config.bpm_max - config.bpm_min) / 4)
                prefs["bpm"] = {"mean": round(float(rng.uniform(config.bpm_min + margin, config.bpm_max - margin)), 1),
                                "width": round(float(rng.uniform(6.0, 12.0)), 1)}
            else:
                prefs[attribute] = _categorical_preference(rng, CATEGORIES[attribute])
        listeners.append(ListenerTaste(_id("L", i, n), kind, weights, prefs))
    return listeners


def affinity_matrix(tracks: list[TrackSpec], listeners: list[ListenerTaste]) -> np.ndarray:
    """(U, N) noiseless affinity in [0, 1]: each listener's weighted liking of each track's attributes."""
    aff = np.zeros((len(listeners), len(tracks)), np.float64)
    bpm = np.array([t.bpm for t in tracks], np.float64)
    codes = {a: np.array([CATEGORIES[a].index(getattr(t, a)) for t in tracks]) for a in CATEGORIES}
    for u, listener in enumerate(listeners):
        for attribute, w in listener.attribute_weights.items():
            pref = listener.preferences[attribute]
            if attribute == "bpm":
                aff[u] += w * np.exp(-0.5 * ((bpm - pref["mean"]) / pref["width"]) ** 2)
            else:
                table = np.array([pref.get(c, 0.0) for c in CATEGORIES[attribute]])
                aff[u] += w * table[codes[attribute]]
    return aff


def popularity_ranks(config: DemoConfig) -> np.ndarray:
    """(N,) Zipf popularity rank of each track (1 = most popular), independent of its attributes."""
    return np.random.default_rng([config.seed, 4]).permutation(config.n_tracks) + 1


def simulate_interactions(config: DemoConfig, tracks: list[TrackSpec],
                          listeners: list[ListenerTaste]) -> pd.DataFrame:
    """Listening events: each listener draws tracks from softmax(affinity / T + popularity) without
    replacement, with play counts as ratings and timestamps spread over `config.days`; split left <NA>."""
    rng = np.random.default_rng([config.seed, 5])
    n_items = len(tracks)
    aff = affinity_matrix(tracks, listeners)
    log_pop = -config.zipf_exponent * np.log(popularity_ranks(config).astype(np.float64))
    noisy = aff + rng.normal(0.0, config.noise, aff.shape)
    logits = noisy / config.temperature + config.popularity_weight * log_pop[None, :]
    # Gumbel top-k is exact sampling without replacement from softmax(logits)
    keys = logits - np.log(-np.log(rng.uniform(1e-12, 1.0, aff.shape)))
    cap = max(1, n_items // 2)
    users, items, ratings, times = [], [], [], []
    for u, listener in enumerate(listeners):
        k = min(int(rng.integers(config.min_interactions, config.max_interactions + 1)), cap)
        chosen = np.argsort(-keys[u], kind="stable")[:k]
        chosen = chosen[rng.permutation(k)]  # listening order is not preference order
        span = rng.uniform(0.25, 0.45) * config.days * 86400.0
        start = config.start_time + rng.uniform(0.0, config.days * 86400.0 - span)
        stamps = np.round(start + np.sort(rng.uniform(0.0, span, k)))
        plays = 1 + rng.poisson(0.5 + 4.0 * aff[u, chosen])
        users += [listener.id] * k
        items += [tracks[int(j)].id for j in chosen]
        ratings += plays.astype(np.float64).tolist()
        times += stamps.tolist()
    frame = pd.DataFrame({
        "user_id": pd.array(users, dtype="string"),
        "item_id": pd.array(items, dtype="string"),
        "rating": np.array(ratings, np.float64),
        "timestamp": np.array(times, np.float64),
        "split": pd.array([pd.NA] * len(users), dtype="string"),
    })
    return frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def ground_truth(config: DemoConfig, tracks: list[TrackSpec], listeners: list[ListenerTaste]) -> dict[str, Any]:
    """The generator's truth: per listener taste weights (per attribute and modality), per track attributes.

    Layout: {"seed", "config", "categories", "bpm_range", "visibility", "dominant_share",
    "listeners": {id: {"kind", "dominant_modality" (text|image|audio|None), "attribute_weights",
    "modality_weights", "preferences"}}, "tracks": {id: {genre, mood, energy, bpm, instrument, palette,
    theme, key, duration_s, mode, missing, popularity_rank}}}.
    """
    ranks = popularity_ranks(config)
    return {
        "seed": config.seed,
        "config": asdict(config),
        "categories": {a: list(c) for a, c in CATEGORIES.items()},
        "bpm_range": [config.bpm_min, config.bpm_max],
        "visibility": VISIBILITY,
        "dominant_share": DOMINANT_SHARE,
        "listeners": {
            lt.id: {"kind": lt.kind, "dominant_modality": lt.dominant_modality,
                    "attribute_weights": lt.attribute_weights, "modality_weights": lt.modality_weights,
                    "preferences": lt.preferences}
            for lt in listeners},
        "tracks": {
            t.id: {**{k: v for k, v in t.metadata().items() if k != "artist"}, "mode": t.mode,
                   "missing": t.missing, "popularity_rank": int(r)}
            for t, r in zip(tracks, ranks)},
    }


def _clear_stale(folder: Path, keep: set[str]) -> None:
    """Remove generated media a previous, larger or differently formatted run left behind."""
    for f in folder.iterdir():
        if f.is_file() and f.name not in keep and f.suffix in (".png", ".flac", ".wav") and f.stem[:1] == "T":
            f.unlink()


def track_item(config: DemoConfig, t: TrackSpec) -> Item:
    """Track `t`'s catalog item: its text, and the cover and clip files it has (relative to the media folder)."""
    image_ref = None if t.missing == "image" else f"covers/{t.id}.png"
    audio_ref = None if t.missing == "audio" else f"audio/{t.id}.{config.audio_format}"
    return Item(id=t.id, title=t.title, text=t.text, image=image_ref, audio=audio_ref, metadata=t.metadata())


def render_track_media(out_dir: Path | str, config: DemoConfig, i: int, t: TrackSpec) -> Item:
    """Write track i's cover and clip (those it has) under `out_dir` and return its catalog item."""
    import soundfile as sf

    item, out_dir = track_item(config, t), Path(out_dir)
    if item.image:
        img = render_cover(t.title, t.artist, t.genre, t.mood, t.palette, config.cover_size,
                           np.random.default_rng([config.seed, 6, i]))
        # PNG is lossless at every level: level 1 writes the same pixels 3x faster than the default 6
        # (about 10% larger files)
        img.save(out_dir / item.image, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    if item.audio:
        y = synth_clip(t.genre, t.mood, t.instrument, float(t.bpm), t.key_root, t.mode, t.energy, t.seconds,
                       config.sample_rate, np.random.default_rng([config.seed, 7, i]))
        sf.write(out_dir / item.audio, y, config.sample_rate, format=config.audio_format.upper(),
                 subtype="PCM_16")
    return item


# Media are rendered in worker processes (core.catalog.demo_render), threads when there is one worker, the
# workers are turned off, or they cannot be started.
RENDER_IN_PROCESSES = True


def _render_all(out_dir: Path, config: DemoConfig, tracks: list[TrackSpec], workers: int,
                done: Callable[[int, TrackSpec], None]) -> list[Item]:
    """Every track's media and item, in track order (`done(k, track)` once the first k + 1 are written)."""
    if RENDER_IN_PROCESSES and workers > 1 and _render_in_processes(out_dir, config, tracks, workers, done):
        return [track_item(config, t) for t in tracks]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        jobs = [pool.submit(render_track_media, out_dir, config, i, t) for i, t in enumerate(tracks)]
        items = []
        for k, (job, t) in enumerate(zip(jobs, tracks)):
            items.append(job.result())
            done(k, t)
        return items


def _render_in_processes(out_dir: Path, config: DemoConfig, tracks: list[TrackSpec], workers: int,
                         done: Callable[[int, TrackSpec], None]) -> bool:
    """Render in `workers` `core.catalog.demo_render` processes, passing progress on in track order; False when
    they cannot be started or one fails (the caller renders in threads then, and says so in the log)."""
    import queue
    import subprocess
    import sys
    import tempfile
    import threading

    root = Path(__file__).resolve().parents[2]  # the folder `core` is in: the workers import from it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    args = [str(out_dir), json.dumps(asdict(config))]
    procs: list[subprocess.Popen] = []
    errors = [tempfile.TemporaryFile() for _ in range(workers)]
    try:
        try:
            for k in range(workers):
                procs.append(subprocess.Popen([sys.executable, "-m", "core.catalog.demo_render", *args, str(k),
                                               str(workers)], stdout=subprocess.PIPE, stderr=errors[k], text=True,
                                              env=env, cwd=root))
        except OSError as e:
            log.warning("rendering the demo in threads: worker processes cannot be started (%s)", e)
            return False
        written: queue.Queue[int | None] = queue.Queue()

        def read(proc: subprocess.Popen) -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.strip().isdigit():
                    written.put(int(line))
            written.put(None)

        for proc in procs:
            threading.Thread(target=read, args=(proc,), daemon=True).start()
        finished, next_k, ended = set(), 0, 0
        while ended < len(procs):
            i = written.get()
            if i is None:
                ended += 1
                continue
            finished.add(i)
            while next_k in finished:
                done(next_k, tracks[next_k])
                next_k += 1
        codes = [proc.wait() for proc in procs]
        if any(codes) or next_k < len(tracks):
            tails = []
            for code, err in zip(codes, errors):
                err.seek(0)
                text = err.read().decode("utf-8", "replace").strip().splitlines()
                tails.append(f"exit {code}: {text[-1] if text else 'no message'}")
            # the threads render every track again: an error of the media themselves (a full disk) is raised there
            log.warning("rendering the demo in threads: a worker process failed after %d of %d tracks (%s)",
                        next_k, len(tracks), "; ".join(tails))
            return False
        return True
    finally:
        for proc in procs:  # stopped early (an error, or the caller's progress raised): no worker outlives it
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for err in errors:
            err.close()


def generate_demo(out_dir: Path, config: DemoConfig = DemoConfig(), progress: Progress | None = None,
                  *, workers: int = 2) -> Catalog:
    """Write covers/, audio/ and ground_truth.json under `out_dir`; return the catalog that refers to them.

    `workers` processes render media (_render_all); every track draws from its own seeded generator, so the
    files are the same whatever the number or kind of workers.
    """
    out_dir = Path(out_dir).resolve()
    total = config.n_tracks + 2
    if progress:
        progress(0, total, "sampling tracks and listeners")
    tracks = sample_tracks(config)
    listeners = sample_listeners(config)
    interactions = simulate_interactions(config, tracks, listeners)
    if progress:
        progress(1, total, f"simulated {len(interactions):,} listening events")
    covers, audio = out_dir / "covers", out_dir / "audio"
    try:
        covers.mkdir(parents=True, exist_ok=True)
        audio.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CatalogError(f"cannot create the demo media folders under {out_dir}: {e.strerror}") from e
    def done(k: int, t: TrackSpec) -> None:
        if progress:
            progress(k + 2, total, f"rendered {t.id} · {t.title}")

    items = _render_all(out_dir, config, tracks, workers, done)
    _clear_stale(covers, {Path(it.image).name for it in items if it.image})
    _clear_stale(audio, {Path(it.audio).name for it in items if it.audio})
    truth = ground_truth(config, tracks, listeners)
    (out_dir / GROUND_TRUTH_FILE).write_text(json.dumps(truth, indent=1), encoding="utf-8")
    if progress:
        progress(total, total, "demo catalog ready")
    return Catalog(name=CATALOG_NAME, items=items, interactions=interactions, media_root=out_dir,
                   metadata={"source": "demo", "seed": config.seed, "config": asdict(config)})


def _same_config(stored: Any, config: DemoConfig) -> bool:
    # JSON turns tuples into lists and ints may come back as floats: compare JSON forms
    return json.dumps(stored, sort_keys=True) == json.dumps(json.loads(json.dumps(asdict(config))), sort_keys=True)


def _media_present(catalog: Catalog) -> bool:
    """Whether every media file of the catalog is on disk (checked on a sample of one in ten, and the last)."""
    items = catalog.items[::10] + catalog.items[-1:]
    return all(catalog.media_path(ref).is_file() for it in items for ref in (it.image, it.audio) if ref)


def demo_is_current(stored: Catalog | None, config: DemoConfig) -> bool:
    """Whether `stored` (the catalog stored as "demo"; None when it does not load) can be reused for `config`:
    made by this generator with the same config, its ground truth and media on disk."""
    if stored is not None and stored.metadata.get("source") != "demo":
        log.warning("the catalog named %r was not made by the demo generator; rebuilding the demo", CATALOG_NAME)
        stored = None
    root = stored.media_root if stored is not None else None
    return (stored is not None and _same_config(stored.metadata.get("config"), config) and root is not None
            and (root / GROUND_TRUTH_FILE).is_file() and _media_present(stored))


def load_ground_truth(catalog_or_dir: Catalog | Path | str) -> dict[str, Any]:
    """The ground truth the generator wrote beside a demo catalog's media (catalog, folder or file)."""
    if isinstance(catalog_or_dir, Catalog):
        if catalog_or_dir.media_root is None:
            raise CatalogError(f"catalog {catalog_or_dir.name!r} has no media folder, so no demo ground truth; "
                               "only catalogs made by generate_demo carry one")
        path = catalog_or_dir.media_root / GROUND_TRUTH_FILE
    else:
        path = Path(catalog_or_dir)
        if path.is_dir():
            path = path / GROUND_TRUTH_FILE
    if not path.is_file():
        raise CatalogError(f"{path} does not exist; it is written by generate_demo — regenerate the demo "
                           "catalog (ensure_demo_catalog) to get it back")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CatalogError(f"{path} is not readable JSON ({e}); delete it and regenerate the demo catalog") from e
