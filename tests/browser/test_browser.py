"""The running studio in headless Chromium: a text query, an image + audio upload, an explanation, a corrupt
upload — with a screenshot of every page in test-artifacts/."""
from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.studio import CHROMIUM, CHROMIUM_ARGS, start_studio, stop_studio, wait_healthy
from core.store.paths import REPO_ROOT
from tests.app.demo_env import build_small_demo

pytestmark = pytest.mark.browser

ARTIFACTS = REPO_ROOT / "test-artifacts"
SAMPLES = REPO_ROOT / "assets" / "samples"
WAIT_MS = 180_000  # generous: 2 shared cores, and the first query may wait for the encoders to load


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Iterator[str]:
    """The studio serving a prebuilt small demo; yields its URL."""
    root = tmp_path_factory.mktemp("prism-browser")
    env = build_small_demo(root)
    env.pop("PRISM_NO_WARMUP")  # as in production: encoders load in the background after Home
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "streamlit.log").open("wb")
    proc = start_studio({**os.environ, **env}, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        stop_studio(proc)
        log.close()


@pytest.fixture(scope="module")
def studio_page(studio):
    """One browser page (one studio session) for the whole scenario."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent; install Debian's chromium to run the browser test")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(WAIT_MS)
        yield pg
        context.close()
        browser.close()


def idle(pg) -> None:
    """Wait until the app has finished its script run: no 'Running…' status widget and no stale
    (greyed-out) elements, twice in a row half a second apart."""
    check = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && "
             "!document.querySelector('[data-stale=\"true\"]')")
    for _ in range(2):
        pg.wait_for_timeout(500)
        pg.wait_for_function(check, timeout=WAIT_MS)


def nav(pg, label: str) -> None:
    """Go to a page through the sidebar (the session, uploads and results stay)."""
    pg.get_by_test_id("stSidebarNav").get_by_text(label, exact=True).click()
    idle(pg)


def shot(pg, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its own container, so grow the viewport."""
    height = pg.evaluate("() => Math.max(...[...document.querySelectorAll('section, [data-testid=stMain]')]"
                         ".map(e => e.scrollHeight), 1000)")
    pg.set_viewport_size({"width": 1500, "height": min(int(height) + 40, 6000)})
    pg.wait_for_timeout(400)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    pg.set_viewport_size({"width": 1500, "height": 1000})


def why_buttons(pg):
    return pg.get_by_role("button", name="Why?", exact=True)


def test_studio_end_to_end(studio_page, studio):
    pg = studio_page
    # a deep link is the very first request of the fresh server: the page still comes inside the frame
    pg.goto(f"{studio}/catalog")
    pg.get_by_text("Active catalog").first.wait_for()
    assert pg.get_by_test_id("stSidebarNav").get_by_text("Home", exact=True).count() == 1
    pg.goto(studio)
    pg.get_by_text("recommendations from words, pictures and sound").wait_for()
    idle(pg)
    shot(pg, "1-home")

    # a text query
    nav(pg, "Recommend")
    pg.get_by_label("Describe what you want to hear").fill("calm ambient piano for a quiet evening")
    pg.get_by_role("button", name="Recommend", exact=True).click()
    pg.get_by_text("ms in all").wait_for()
    idle(pg)
    why_buttons(pg).nth(9).wait_for()  # ten result cards
    shot(pg, "2-recommend-text")

    # an image and an audio clip on top of the text
    inputs = pg.locator("[data-testid='stFileUploaderDropzoneInput']")
    inputs.nth(0).set_input_files(str(SAMPLES / "cover.png"))
    inputs.nth(1).set_input_files(str(SAMPLES / "clip.flac"))
    pg.get_by_text("clip.flac").first.wait_for()  # both files are in the uploaders
    pg.get_by_role("button", name="Recommend", exact=True).click()
    idle(pg)
    pg.get_by_text("In the query:").wait_for()
    pg.get_by_text("1 image", exact=False).first.wait_for()
    pg.get_by_text("1 clip", exact=False).first.wait_for()
    why_buttons(pg).nth(9).wait_for()  # ten result cards
    shot(pg, "3-recommend-uploads")

    # one explanation
    why_buttons(pg).first.click()
    idle(pg)
    pg.get_by_text("Exact Shapley values").wait_for()
    pg.get_by_test_id("stPlotlyChart").nth(1).wait_for()  # the waterfall and the modality shares
    pg.locator(".js-plotly-plot").first.wait_for()
    shot(pg, "4-explain")

    # a corrupt upload: an error saying what to fix, and the results stay
    nav(pg, "Recommend")
    why_buttons(pg).nth(9).wait_for()  # ten result cards
    pg.locator("[data-testid='stFileUploaderDropzoneInput']").nth(0).set_input_files(
        str(SAMPLES / "corrupt.png"))
    pg.get_by_text("corrupt.png").first.wait_for()
    pg.get_by_role("button", name="Recommend", exact=True).click()
    idle(pg)
    error = pg.get_by_test_id("stAlertContentError").filter(has_text="corrupt.png")
    error.first.wait_for()
    assert "not added" in error.first.inner_text()
    why_buttons(pg).nth(9).wait_for()  # ten result cards
    shot(pg, "5-recommend-corrupt-upload")

    for label, name, ready in (("Evaluate", "6-evaluate", "Download a run"), ("Catalog", "7-catalog", "Must have"),
                               ("Train", "8-train", "Saved models")):
        nav(pg, label)
        pg.get_by_text(ready).first.wait_for()
        idle(pg)
        assert pg.get_by_test_id("stException").count() == 0, f"{label} raised"
        shot(pg, name)


TOUR_TITLES = ["What the catalog carries", "One query, three modalities", "Why the top item",
               "Feedback re-ranks at once", "Does it work?", "Your own data"]  # assets/tours/demo.yaml


def step_heading(pg, i: int):
    return pg.get_by_role("heading", name=f"{i + 1}. {TOUR_TITLES[i]}")


def test_home_alias_and_tour_by_keyboard_and_offline_report(studio_page, studio, tmp_path):
    pg = studio_page
    pg.goto(f"{studio}/home")  # where older links point: Home, without a "Page not found" dialog
    pg.get_by_text("recommendations from words, pictures and sound").wait_for()
    idle(pg)
    assert pg.get_by_text("Page not found").count() == 0

    nav(pg, "Tour")
    step_heading(pg, 0).wait_for()
    for i in range(len(TOUR_TITLES)):
        step_heading(pg, i).wait_for()
        idle(pg)
        assert pg.get_by_test_id("stException").count() == 0, f"tour step {i + 1} raised"
        assert pg.get_by_text(f"Step {i + 1} of {len(TOUR_TITLES)}").count() == 1
        if i in (0, 1, 2):
            shot(pg, f"9-tour-step-{i + 1}")
        if i == 1:  # the back key returns one step, the next key comes back
            pg.locator("body").press("ArrowLeft")
            step_heading(pg, 0).wait_for()
            idle(pg)
            pg.locator("body").press("ArrowRight")
            step_heading(pg, 1).wait_for()
            idle(pg)
        if i < len(TOUR_TITLES) - 1:
            pg.locator("body").press("ArrowRight")
    shot(pg, "9-tour-last")

    # the report at the end of the tour, opened from disk with every request outside the file refused
    with pg.expect_download(timeout=WAIT_MS) as download:
        pg.get_by_role("button", name="Download report").click()
    report = tmp_path / "tour-report.html"
    download.value.save_as(report)
    assert report.stat().st_size < 10_000_000
    context = pg.context.browser.new_context(viewport={"width": 1500, "height": 1000})  # no shared state
    outside: list[str] = []

    def refuse(route) -> None:
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", refuse)
    page = context.new_page()
    page.goto(report.as_uri())
    charts = page.locator(".chart")
    assert charts.count() >= 5
    page.wait_for_function("() => [...document.querySelectorAll('.chart')]"
                           ".every(c => c.querySelector('.main-svg'))", timeout=60_000)  # plotly drew every chart
    images = page.evaluate("() => [...document.images].map(i => i.complete && i.naturalWidth)")
    assert images and all(w and w > 0 for w in images), images
    assert outside == []
    height = page.evaluate("() => document.body.scrollHeight")
    page.set_viewport_size({"width": 1500, "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "10-tour-report.png"))
    context.close()


def test_tour_keys_work_in_a_fresh_tab_and_after_the_notes_button(studio_page, studio):
    """A new tab: → pressed as soon as the first step shows still advances (the buttons' code may still be
    loading); presenter notes are off until asked for; after clicking the notes button (focus on it), ← and →
    still move between steps."""
    notes_start = "Point at the modality counts"  # step 1's notes in assets/tours/demo.yaml
    pg = studio_page.context.new_page()
    pg.set_default_timeout(WAIT_MS)
    try:
        pg.goto(f"{studio}/tour")
        step_heading(pg, 0).wait_for()
        # the key script is drawn before the step's heading; once it is in the page, a key is kept until the
        # buttons exist. No click first, no waiting for the run to end
        pg.wait_for_function("window.__prismArrowKeys === true")
        pg.keyboard.press("ArrowRight")
        step_heading(pg, 1).wait_for()
        idle(pg)
        pg.keyboard.press("ArrowLeft")
        step_heading(pg, 0).wait_for()
        idle(pg)
        assert pg.get_by_text(notes_start).count() == 0  # off on the room's screen
        pg.get_by_role("button", name="Presenter notes").click()
        pg.get_by_text(notes_start).wait_for()
        idle(pg)
        shot(pg, "9-tour-notes-shown")
        pg.keyboard.press("ArrowRight")  # the notes button has the focus now
        step_heading(pg, 1).wait_for()
        idle(pg)
        pg.keyboard.press("ArrowLeft")
        step_heading(pg, 0).wait_for()
    finally:
        pg.close()


def test_enter_in_tracks_you_like_picks_one_track(studio_page, studio):
    """Typing a word in "Tracks you like" and pressing Enter adds one track, not every match."""
    pg = studio_page.context.new_page()
    pg.set_default_timeout(WAIT_MS)
    try:
        pg.goto(f"{studio}/recommend")
        box = pg.get_by_test_id("stMultiSelect").filter(has_text="Tracks you like")
        box.wait_for()
        idle(pg)
        box.locator("input").click()
        box.locator("input").type("e")
        pg.wait_for_timeout(500)
        pg.keyboard.press("Enter")
        pg.wait_for_timeout(500)
        chips = box.locator("[data-tag]")  # the chips of the chosen tracks
        assert chips.count() == 1, [chips.nth(i).inner_text() for i in range(chips.count())]
        shot(pg, "3b-recommend-liked-enter")
    finally:
        pg.close()


def test_filter_by_genre_and_a_new_run_shows_in_results(studio_page, studio):
    """The Catalog's "Filter by" offers the genre (a pandas `str` column) and filters by it; a run started in
    Evaluate's *New evaluation* is drawn in *Results* in the same session."""
    pg = studio_page.context.new_page()
    pg.set_default_timeout(WAIT_MS)
    try:
        pg.goto(f"{studio}/catalog")
        pg.get_by_text("Filter by").wait_for()
        idle(pg)
        pg.get_by_test_id("stSelectbox").filter(has_text="Filter by").click()
        pg.get_by_role("option", name="genre", exact=True).click()
        idle(pg)
        pg.get_by_test_id("stMultiSelect").filter(has_text="Values").click()
        pg.get_by_role("option", name="jazz", exact=True).click()
        pg.keyboard.press("Escape")
        idle(pg)
        pg.get_by_text(re.compile(r"\d+ of 60 items")).wait_for()
        assert pg.get_by_text("60 of 60 items").count() == 0
        shot(pg, "6b-catalog-filter-genre")

        pg.goto(f"{studio}/evaluate")
        pg.get_by_text("Protocol of the charts below").wait_for()
        idle(pg)
        before = pg.get_by_test_id("stMultiSelect").filter(has_text="Runs").locator("[data-tag]").count()
        pg.get_by_role("tab", name="New evaluation").click()
        models = pg.get_by_test_id("stMultiSelect").filter(has_text="Models")
        models.get_by_role("button", name="Clear all").click()
        models.locator("input").click()
        models.locator("input").type("popularity")
        pg.get_by_role("option", name="popularity", exact=True).click()
        pg.keyboard.press("Escape")
        pg.get_by_role("button", name="Start evaluation").click()
        pg.get_by_text("Saved 1 run(s)").first.wait_for()
        idle(pg)
        pg.get_by_role("tab", name="Results").click()
        idle(pg)
        after = pg.get_by_test_id("stMultiSelect").filter(has_text="Runs").locator("[data-tag]").count()
        assert after == before + 1
        shot(pg, "7b-evaluate-new-run-in-results")
    finally:
        pg.close()
OWN_TEXTS = ["slow ambient piano for a rainy evening", "fast drum and bass with heavy sub bass",
             "indian percussion with tabla and sitar", "acoustic folk guitar and a soft voice"]


def test_own_catalog_without_interactions_is_usable_and_removable(studio_page, studio, tmp_path):
    """A zip without interactions.csv imported in the browser opens as a content-only catalog: a text query
    ranks, Evaluate says what is missing and offers the upload, and the catalog can be removed again."""
    from tests.catalog.test_manifest import make_catalog_folder, manifest_rows, zip_folder

    rows = manifest_rows(len(OWN_TEXTS))
    for row, text in zip(rows, OWN_TEXTS):
        row["text"], row["title"] = text, f"Own {row['id']}"
    folder = make_catalog_folder(tmp_path / "own", n=len(OWN_TEXTS), interactions=False, rows=rows)
    archive = zip_folder(folder, tmp_path / "own.zip")
    pg = studio_page
    pg.goto(studio)
    idle(pg)
    nav(pg, "Catalog")
    pg.get_by_role("tab", name="Import").click()
    pg.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(archive))
    pg.get_by_text("own.zip").first.wait_for()
    pg.get_by_label("Catalog name (optional; default from the file or folder name)").fill("own-plain")
    pg.get_by_role("button", name="Import", exact=True).click()
    idle(pg)
    pg.get_by_role("button", name="Switch to own-plain").click()
    idle(pg)
    pg.get_by_text("Active catalog").first.wait_for()
    assert pg.get_by_test_id("stException").count() == 0, "opening a catalog without interactions raised"
    assert pg.get_by_text("has no interactions; import").count() == 0  # the old dead end

    nav(pg, "Recommend")
    pg.get_by_label("Describe what you want to hear").fill(OWN_TEXTS[2])
    pg.get_by_role("button", name="Recommend", exact=True).click()
    pg.get_by_text("ms in all").wait_for()
    idle(pg)
    why_buttons(pg).nth(len(OWN_TEXTS) - 1).wait_for()  # a card for every item
    shot(pg, "11-own-catalog-recommend")

    nav(pg, "Evaluate")
    pg.get_by_text("has no interactions yet").first.wait_for()
    assert pg.get_by_role("button", name="Add these interactions").count() == 1
    shot(pg, "12-own-catalog-evaluate")

    nav(pg, "Catalog")
    pg.get_by_role("tab", name="Import").click()
    pg.get_by_text("Remove the catalog own-plain").click()
    pg.get_by_text("Yes, remove catalog own-plain").click()
    idle(pg)
    pg.get_by_role("button", name="Remove catalog own-plain").click()
    idle(pg)
    pg.get_by_text("Removed catalog 'own-plain'").first.wait_for()
    assert pg.get_by_test_id("stException").count() == 0
