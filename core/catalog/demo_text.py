"""The demo catalog's words: artist names, track titles and descriptions drawn from small vocabularies.

Every function draws from the generator it is given, in a fixed order, so a seed gives the same words.
"""
from __future__ import annotations

import numpy as np

# -- words ------------------------------------------------------------------------------------------
_GENRE_WORDS = {
    "ambient": ("ambient", "ambient drone", "atmospheric ambient", "ambient soundscape"),
    "techno": ("techno", "warehouse techno", "minimal techno", "club techno"),
    "jazz": ("jazz", "late-night jazz", "small-combo jazz", "modal jazz"),
    "folk": ("folk", "acoustic folk", "indie folk", "folk music"),
    "hip-hop": ("hip-hop", "boom-bap hip-hop", "lo-fi hip-hop", "underground hip-hop"),
    "classical": ("classical", "chamber music", "neo-classical", "classical music"),
}
_MOOD_WORDS = {
    "calm": ("calm", "serene", "tranquil", "peaceful", "unhurried"),
    "happy": ("happy", "joyful", "upbeat", "cheerful", "bright"),
    "melancholic": ("melancholic", "wistful", "bittersweet", "sad", "longing"),
    "energetic": ("energetic", "high-energy", "restless", "pulsing", "fiery"),
    "dark": ("dark", "brooding", "shadowy", "ominous", "moody"),
}
_INSTRUMENT_WORDS = {
    "piano": ("piano", "felt piano", "soft keys", "upright piano"),
    "guitar": ("guitar", "acoustic guitar", "fingerpicked guitar", "nylon-string guitar"),
    "synth": ("synth", "analog synth", "synthesizer", "modular synth"),
    "strings": ("strings", "a string section", "violins", "cello and violins"),
    "bass": ("bass", "a deep bassline", "upright bass", "round bass"),
    "bells": ("bells", "chimes", "glockenspiel", "celesta"),
}
_THEME_WORDS = {
    "sea": ("the sea", "a quiet harbour at dawn", "waves breaking on a pebble beach",
            "a lighthouse keeper's night", "salt air and drifting boats"),
    "city": ("city life", "a crowded subway platform", "late trains and empty avenues",
             "the skyline seen from a rooftop", "streetlights and traffic"),
    "forest": ("the forest", "a walk through the pines", "birdsong in a clearing", "an old-growth forest",
               "fallen leaves on a woodland trail"),
    "desert": ("the desert", "heat shimmering over the dunes", "a canyon at sundown", "cactus flowers and dry wind",
               "sand and endless horizons"),
    "stars": ("the night sky", "counting the stars", "a comet passing overhead", "the silence of outer space",
              "constellations over a field"),
    "rain": ("the rain", "a rainy afternoon", "rain on the window", "storm clouds rolling in",
             "puddles under grey skies"),
    "road": ("the open road", "a long drive at night", "highway lights", "leaving town for good",
             "a road trip with friends"),
    "home": ("home", "a warm kitchen", "old photographs", "coming home after a long time",
             "a quiet Sunday at home"),
}
_TITLE_NOUNS = {
    "sea": ("Tide", "Harbour", "Undertow", "Saltwater", "Lighthouse", "Driftwood", "Breakers", "Shoreline"),
    "city": ("Subway", "Rooftops", "Avenue", "Skyline", "Crosswalk", "Night Bus", "Concrete", "Downtown"),
    "forest": ("Pines", "Canopy", "Fern", "Hollow Oak", "Timber", "Clearing", "Birch", "Undergrowth"),
    "desert": ("Dunes", "Mirage", "Canyon", "Sandstorm", "Cactus", "Oasis", "Mesa", "Dry Wind"),
    "stars": ("Orion", "Comet", "Nebula", "Starlight", "Satellite", "Meteor", "Zenith", "North Star"),
    "rain": ("Drizzle", "Downpour", "Raincoat", "Puddles", "Monsoon", "Thunder", "Grey Skies", "Rainfall"),
    "road": ("Highway", "Mileage", "Crossroads", "Route 9", "Overpass", "Exit Sign", "Tailwind", "Motel"),
    "home": ("Hearth", "Porch Light", "Kitchen Table", "Old Photographs", "Doorstep", "Homecoming", "Attic",
             "Armchair"),
}
_TITLE_ADJECTIVES = {
    "calm": ("Still", "Slow", "Quiet", "Soft", "Gentle"),
    "happy": ("Golden", "Bright", "Lucky", "Little", "Sweet"),
    "melancholic": ("Faded", "Lost", "Distant", "Lonely", "Last"),
    "energetic": ("Electric", "Wild", "Rapid", "Burning", "Loud"),
    "dark": ("Black", "Hollow", "Cold", "Midnight", "Silent"),
}
_TITLE_SUFFIXES = ("(Reprise)", "Pt. II", "(Night Version)", "(Interlude)", "No. 3")
_FIRST_NAMES = ("Nadia", "Eli", "Mara", "Jonas", "Ines", "Theo", "Lena", "Omar", "Yuki", "Rosa", "Felix", "Ada",
                "Kofi", "Signe", "Ravi", "June", "Milo", "Zora", "Anton", "Leila", "Hugo", "Noor", "Pia", "Tomas")
_LAST_NAMES = ("Vell", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Reyes", "Brandt", "Castell", "Ivers", "Achebe",
               "Novak", "Serrano", "Holm", "Kaur", "Duval", "Marsh", "Petrov", "Quinn", "Sato", "Werner")
_BAND_NOUNS = ("Lanterns", "Foxes", "Satellites", "Tapes", "Orchards", "Signals", "Harbours", "Paper Boats",
               "Owls", "Echoes", "Comets", "Radios")
_BAND_ADJECTIVES = ("Velvet", "Northern", "Quiet", "Electric", "Wandering", "Golden", "Paper", "Hollow")
_EXTRAS = ("Best heard on headphones.", "Recorded live in one take.", "A fan favourite.",
           "Made for late evenings.", "Short and sweet.", "Mixed in a small home studio.")


def pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:]


def artists_by_genre(seed: int, genres: tuple[str, ...]) -> dict[str, list[str]]:
    """Five artists per genre, so an artist says something about genre but nothing private."""
    rng = np.random.default_rng([seed, 1])
    used: set[str] = set()
    out: dict[str, list[str]] = {}
    for genre in genres:
        names: list[str] = []
        while len(names) < 5:
            if rng.random() < 0.25:
                name = f"The {pick(rng, _BAND_ADJECTIVES)} {pick(rng, _BAND_NOUNS)}"
            else:
                name = f"{pick(rng, _FIRST_NAMES)} {pick(rng, _LAST_NAMES)}"
            if name not in used:
                used.add(name)
                names.append(name)
        out[genre] = names
    return out


def track_title(rng: np.random.Generator, mood: str, theme: str, taken: set[str]) -> str:
    """A title from the theme's nouns and the mood's adjectives, not yet `taken` where possible."""
    for _ in range(30):
        noun, adj = pick(rng, _TITLE_NOUNS[theme]), pick(rng, _TITLE_ADJECTIVES[mood])
        form = rng.random()
        if form < 0.4:
            title = f"{adj} {noun}"
        elif form < 0.55:
            title = noun
        elif form < 0.65:
            title = f"The {noun}"
        elif form < 0.8:
            title = f"{noun} {pick(rng, _TITLE_SUFFIXES)}"
        else:
            title = f"{noun} and {pick(rng, _TITLE_NOUNS[theme])}"
            if title.count(noun) > 1:
                continue
        if title not in taken:
            break
    k = 2
    while title in taken:  # the vocabulary ran dry for this theme and mood
        title, k = f"{title.split(' (Take')[0]} (Take {k})", k + 1
    taken.add(title)
    return title


def describe_track(rng: np.random.Generator, genre: str, mood: str, instrument: str, theme: str, artist: str) -> str:
    """A one- to three-sentence description: genre and mood usually said, instrument sometimes, tempo never."""
    g = pick(rng, _GENRE_WORDS[genre]) if rng.random() < 0.85 else None
    m = pick(rng, _MOOD_WORDS[mood]) if rng.random() < 0.8 else None
    t = pick(rng, _THEME_WORDS[theme]) if rng.random() < 0.95 else None
    noun = pick(rng, ("track", "piece", "song", "tune"))
    if g and m:
        forms = [f"{_capital(_article(m))} {m} {g} {noun}" + (f" about {t}." if t else "."),
                 f"{_capital(m)} {g}" + (f" inspired by {t}." if t else " from start to finish."),
                 (f"{_capital(t)}, rendered as {m} {g}." if t else f"{_capital(m)} {g}, nothing more.")]
    elif g:
        forms = [f"{_capital(_article(g))} {g} {noun}" + (f" about {t}." if t else "."),
                 f"{_capital(g)}" + (f" inspired by {t}." if t else " through and through.")]
    elif m:
        forms = [f"{_capital(_article(m))} {m} {noun}" + (f" about {t}." if t else "."),
                 f"Something {m}" + (f", inspired by {t}." if t else " for a quiet hour.")]
    else:
        forms = [f"{_capital(_article(noun))} {noun}" + (f" about {t}." if t else " without a label."),
                 f"Inspired by {t}." if t else "Hard to put in a box."]
    sentences = [forms[int(rng.integers(len(forms)))]]
    if rng.random() < 0.4:
        i = pick(rng, _INSTRUMENT_WORDS[instrument])
        sentences.append(pick(rng, (f"Led by {i}.", f"Built around {i}.", f"Featuring {i}.",
                                     f"With {i} up front.")))
    if rng.random() < 0.3:
        sentences.append(pick(rng, _EXTRAS + (f"By {artist}.",)))
    return " ".join(sentences)


ATTRIBUTES = ("genre", "mood", "instrument", "theme")  # the demo's item metadata a request can name


def request_sentence(rng: np.random.Generator, genre: str, mood: str, instrument: str, theme: str) -> str:
    """A listener's request naming all four attributes in the generator's own words, in a form no track
    description takes ("{mood} {genre} with {instrument}, for {theme}"): the free-text queries whose right
    answer is known (core.evaluation.requests)."""
    return (f"{pick(rng, _MOOD_WORDS[mood])} {pick(rng, _GENRE_WORDS[genre])} with "
            f"{pick(rng, _INSTRUMENT_WORDS[instrument])}, for {pick(rng, _THEME_WORDS[theme])}")
