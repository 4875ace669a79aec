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
