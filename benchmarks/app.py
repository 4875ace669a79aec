"""Benchmark of the running studio, driven in headless Chromium.

Measures: cold start of `streamlit run app.py` to a rendered Home page (catalog, embeddings and model already
stored), a text query → rendered result cards, one image + one 10-s audio clip → rendered cards, and the RSS
of the streamlit process. Prints a table against the targets and writes benchmarks/results/app.json.

    HF_HUB_OFFLINE=1 python -m benchmarks.app                 # the default data folder (.prism, full demo)
    HF_HUB_OFFLINE=1 python -m benchmarks.app --tracks 60 --listeners 40 --data-dir /tmp/prism-small
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.studio import CHROMIUM, CHROMIUM_ARGS, start_studio, stop_studio, wait_healthy  # noqa: E402

TARGETS = {"cold start → Home rendered": (15.0, "s"), "text query → results rendered (median)": (1.0, "s"),
           "image + 10-s audio → results rendered": (2.0, "s"), "streamlit RSS": (3.0, "GiB")}
# "visible" = the query's summary line is on screen; "rendered" = the run finished and every card is drawn.
QUERIES = ["calm ambient piano for a rainy evening", "energetic techno with a driving beat",
           "melancholic strings at dusk", "happy folk guitar by the sea", "dark hip-hop with heavy bass",
           "dreamy synth pads for a late-night drive"]


def prepare(env: dict[str, str]) -> float:
    """Build what the first start would (demo catalog, embeddings, model) so the cold start only loads; seconds."""
    t0 = time.perf_counter()
    code = ("from core.catalog.demo import DemoConfig\n"
            "from core.workspace.imports import ensure_demo_catalog\n"
            "from core.encoders.factory import EncoderConfig, build_encoders\n"
            "from core.store.database import Store\n"
            "from core.workspace.prepare import ensure_model, prepare_embeddings\n"
            "s = Store(); c = ensure_demo_catalog(s, DemoConfig.from_env())\n"
            "e = prepare_embeddings(s, c, build_encoders(EncoderConfig.from_env()))\n"
            "ensure_model(s, c, e)\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
    return time.perf_counter() - t0


def rss_gib(pid: int) -> float:
    """Resident memory of a process and its children, in GiB (from /proc)."""
    total_kb = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024 ** 2


def ten_second_clip(path: Path, sr: int = 22050) -> Path:
    """A 10-s synthetic clip (chords over a kick pattern) for the upload measurement."""
    import numpy as np
    import soundfile as sf

    t = np.arange(10 * sr) / sr
    y = sum(np.sin(2 * np.pi * f * t) for f in (196.0, 246.9, 293.7)) * 0.1
    beat = (t % 0.5) < 0.05
    y = y + beat * np.sin(2 * np.pi * 60 * t) * 0.4
    sf.write(path, (y / np.abs(y).max() * 0.3).astype("float32"), sr, format="WAV", subtype="PCM_16")
    return path


def idle(pg, timeout: float = 180_000) -> None:
    """Wait until the script run finished and the page is drawn (no status widget, no stale elements)."""
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && "
                         "!document.querySelector('[data-stale=\"true\"]')", timeout=timeout)


def wait_for_query(pg, text: str) -> None:
    """Wait until the results of the query with `text` are drawn (its summary line and the cards)."""
    pg.get_by_text(f"“{text}”").first.wait_for(timeout=180_000)
    pg.get_by_role("button", name="Why?", exact=True).first.wait_for(timeout=180_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="data folder (default: $PRISM_DATA_DIR or .prism)")
    parser.add_argument("--tracks", type=int, help="demo size (default: the full demo)")
    parser.add_argument("--listeners", type=int)
    parser.add_argument("--port", type=int, default=8599)
    parser.add_argument("--queries", type=int, default=5, help="timed text queries")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if args.data_dir:
        env["PRISM_DATA_DIR"] = args.data_dir
    if args.tracks:
        env["PRISM_DEMO_TRACKS"] = str(args.tracks)
    if args.listeners:
        env["PRISM_DEMO_LISTENERS"] = str(args.listeners)
    print("preparing the stored workspace (not timed as cold start)…", flush=True)
    prepare_s = prepare(env)

    results: dict[str, float] = {}
    url = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        clip = ten_second_clip(Path(tmp) / "ten-seconds.wav")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1500, "height": 1000})
        log = open(Path(tmp) / "streamlit.log", "wb")
        t0 = time.perf_counter()
        proc = start_studio(env, args.port, log)
        try:
            wait_healthy(url, proc, timeout=300.0)
            pg.goto(url)
            pg.get_by_text("recommendations from words, pictures and sound").wait_for(timeout=180_000)
            idle(pg)
            results["cold start → Home rendered"] = time.perf_counter() - t0

            pg.get_by_test_id("stSidebarNav").get_by_text("Recommend", exact=True).click()
            idle(pg)
            box = pg.get_by_label("Describe what you want to hear")
            button = pg.get_by_role("button", name="Recommend", exact=True)

            def query(text: str) -> tuple[float, float]:
                """Seconds from the click to the query's results on screen, and to the page settled."""
                box.fill(text)
                pg.wait_for_timeout(300)  # let the text reach the server before the click
                t = time.perf_counter()
                button.click()
                wait_for_query(pg, text)
                visible = time.perf_counter() - t
                idle(pg)
                return visible, time.perf_counter() - t

            results["first text query (encoders may still load)"] = query(QUERIES[0])[1]
            timed = [query(text) for text in QUERIES[1:1 + args.queries]]
            results["text query → results visible (median)"] = statistics.median(v for v, _ in timed)
            results["text query → results rendered (median)"] = statistics.median(r for _, r in timed)
            results["text query → results rendered (max)"] = max(r for _, r in timed)

            inputs = pg.locator("[data-testid='stFileUploaderDropzoneInput']")
            t2 = time.perf_counter()
            inputs.nth(0).set_input_files(str(REPO / "assets" / "samples" / "cover.png"))
            inputs.nth(1).set_input_files(str(clip))
            pg.get_by_text("ten-seconds.wav").first.wait_for()
            results["upload of both files to the browser widget"] = time.perf_counter() - t2
            first = query("cover and clip, first")  # validates and encodes both files
            pg.get_by_text("1 clip", exact=False).first.wait_for()
            timed = [query(f"cover and clip, take {i}") for i in range(3)]
            results["first image + 10-s audio query"] = first[1]
            results["image + 10-s audio → results visible (median)"] = statistics.median(v for v, _ in timed)
            results["image + 10-s audio → results rendered"] = statistics.median(r for _, r in timed)
            results["streamlit RSS"] = rss_gib(proc.pid)
        except Exception:
            shot = REPO / "benchmarks" / "results" / "app-failure.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(shot))
            print(f"failed; screenshot in {shot}; measured so far: {results}", file=sys.stderr)
            raise
        finally:
            stop_studio(proc)
            browser.close()
            log.close()

    print(f"\nPrism studio benchmark ({'demo ' + str(args.tracks) + ' tracks' if args.tracks else 'full demo'}; "
          f"workspace prepared in {prepare_s:.1f} s beforehand)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'measure':<48} {'value':>10} {'target':>10}  ok")
    for name, value in results.items():
        target = TARGETS.get(name)
        unit = target[1] if target else ("GiB" if "RSS" in name else "s")
        ok = "" if target is None else ("yes" if value < target[0] else "NO")
        tgt = f"< {target[0]:g} {unit}" if target else ""
        print(f"{name:<48} {value:>8.2f} {unit:<2} {tgt:>9}  {ok}")
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "app.json").write_text(json.dumps({"results": results, "prepare_s": prepare_s,
                                              "tracks": args.tracks, "listeners": args.listeners}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
