"""A demo render worker: `python -m core.catalog.demo_render OUT_DIR CONFIG_JSON SHARE SHARES` writes the covers
and clips of tracks SHARE, SHARE + SHARES, SHARE + 2·SHARES, ... of the demo that CONFIG_JSON (a DemoConfig's
fields) describes into OUT_DIR, and prints each track's index once its files are written.

core.catalog.demo.generate_demo starts one per worker as a plain process: drawing a cover and mixing a clip
run much Python between the calls that release the GIL, so threads of one process wait on each other. A
module of its own is run rather than a multiprocessing child, which would run the parent's main script again
(under Streamlit, the app's page).
"""
from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from core.catalog.demo import DemoConfig, render_track_media, sample_tracks

    if len(argv) != 4:
        print("usage: python -m core.catalog.demo_render OUT_DIR CONFIG_JSON SHARE SHARES", file=sys.stderr)
        return 2
    out_dir, config, share, shares = argv[0], DemoConfig(**json.loads(argv[1])), int(argv[2]), int(argv[3])
    tracks = sample_tracks(config)
    for i in range(share, len(tracks), shares):
        render_track_media(out_dir, config, i, tracks[i])
        print(i, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
