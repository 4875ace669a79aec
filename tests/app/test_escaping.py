"""Data strings drawn by the studio: HTML snippets and markdown get text, never markup."""
from __future__ import annotations

import html

from ui.components import html_text, md_escape


def test_html_text_leaves_no_tag_link_image_or_blank_line() -> None:
    hostile = 'x\n\n![t](http://e/t.png) <img src=x onerror=alert(1)> [a](javascript:1) **b**'
    out = html_text(hostile)
    assert "<" not in out and ">" not in out and "\n" not in out
    assert not any(c in out for c in "![]()*:")  # markdown would read none of it, even after the HTML block
    assert html.unescape(out) == " ".join(hostile.split())  # the browser shows exactly the text
    quoted = """<img src='http://e/i.png'> say "hi" & #1"""
    assert html.unescape(html_text(quoted)) == quoted and "'" not in html_text(quoted)  # shown once, not "&#x27;"


def test_md_escape_disarms_links_images_html_and_icons() -> None:
    text = "![t](http://e/t.png) <b>x</b> :red[alarm] $x$ a_b www.e.org &amp;"
    out = md_escape(text)
    for raw in ("![", "](", "<b>", "http://", ":red[", "$x$", "a_b", "www."):
        assert raw not in out
    assert html.unescape(out.replace("\\", "").replace("\u2060", "")) == text


def test_the_sidebar_draws_field_names_and_encoder_ids_as_text() -> None:
    """Field names and encoder ids come from imports (a precomputed file's name): no link, image or emphasis."""
    from streamlit.testing.v1 import AppTest

    def sidebar_of_a_hostile_catalog() -> None:
        from types import SimpleNamespace

        import pandas as pd

        from ui import components

        hostile = "[x](javascript:alert(1)) ![i](http://e/i.png) **b** <img src=x>"
        embeddings = SimpleNamespace(modalities=["text"], encoder_ids={hostile: f"precomputed:{hostile}.npy"},
                                     modality_of={hostile: "text"})
        catalog = SimpleNamespace(name="own", items=[1, 2], interactions=pd.DataFrame({"user_id": ["u"]}))
        components.sidebar(SimpleNamespace(catalog=catalog, embeddings=embeddings, model_config={},
                                           model_id="m1"), ["own"])

    at = AppTest.from_function(sidebar_of_a_hostile_catalog)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    drawn = next(m.value for m in at.sidebar.markdown if "prism-dot" in m.value)
    assert not any(raw in drawn for raw in ("](", "![", "**", "<img"))
    assert "[x](javascript:alert(1))" in html.unescape(drawn)  # shown as the text it is
