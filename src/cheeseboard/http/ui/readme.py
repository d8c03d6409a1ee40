"""Release descriptions rendered as PyPI renders them: readme-renderer, chosen by content type.

readme-renderer already cleans its output with nh3. One more nh3 pass over the result, with the same
allowlist, adds what a page on our own origin needs on top: ``rel="nofollow noopener noreferrer"``
on every link, ``user-content-`` prefixed ids (so a README cannot clobber ids the page's own markup
or scripts rely on), and checkboxes as the only inputs. Rendering a large README costs tens of
milliseconds, so results are kept in a small LRU; every function here may run in any thread.
"""

from __future__ import annotations

import asyncio
import email.message
import hashlib
import logging
import threading
from collections import OrderedDict

import nh3
import readme_renderer.clean
import readme_renderer.markdown
import readme_renderer.rst
import readme_renderer.txt
from markupsafe import Markup, escape

log = logging.getLogger(__name__)

MAX_DESCRIPTION_CHARS = 1024 * 1024
"""Longer descriptions are shown as plain text, cut at this many characters: a page stays cheap."""

CACHE_MAX_ENTRIES = 512
CACHE_MAX_CHARS = 32 * 1024 * 1024
"""The render cache holds at most this many entries and this much rendered HTML in total."""

ID_PREFIX = "user-content-"  # what readme-renderer gives generated ids (as GitHub does)
LINK_REL = "nofollow noopener noreferrer"

_TRUNCATED_NOTE = (
    '<p class="description-truncated"><em>This description is longer than 1 MiB: it is shown '
    "as plain text and cut off here.</em></p>"
)

_MARKDOWN_VARIANTS = {"gfm": "GFM", "commonmark": "CommonMark"}

_ATTRIBUTES: dict[str, set[str]] = {
    tag: set(names) for tag, names in readme_renderer.clean.ALLOWED_ATTRIBUTES.items()
}
# Task-list checkboxes are the only inputs a README needs; a text or password box is a phish.
_ATTRIBUTES["input"] = {"checked", "disabled"}


def _prefix_ids(element: str, attribute: str, value: str) -> str | None:
    """Give every id, and every in-page link to one, the ``user-content-`` prefix once."""
    if attribute == "id" and not value.startswith(ID_PREFIX):
        return ID_PREFIX + value
    if (
        element == "a"
        and attribute == "href"
        and value.startswith("#")
        and len(value) > 1
        and not value.startswith("#" + ID_PREFIX)
    ):
        return "#" + ID_PREFIX + value[1:]
    return value


_FINAL = nh3.Cleaner(
    tags=set(readme_renderer.clean.ALLOWED_TAGS),
    attributes=_ATTRIBUTES,
    attribute_filter=_prefix_ids,
    link_rel=LINK_REL,
    url_schemes={"http", "https", "mailto"},
    tag_attribute_values={"input": {"type": {"checkbox"}}},
    set_tag_attribute_values={"input": {"disabled": ""}},
)


class _RenderCache:
    """A thread-safe LRU bounded by entry count and by the total size of the HTML it holds."""

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._entries: OrderedDict[str, Markup] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Markup | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: str, value: Markup) -> None:
        if len(value) > self._max_chars:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._chars -= len(old)
            self._entries[key] = value
            self._chars += len(value)
            while len(self._entries) > self._max_entries or self._chars > self._max_chars:
                _, evicted = self._entries.popitem(last=False)
                self._chars -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


_cache = _RenderCache(CACHE_MAX_ENTRIES, CACHE_MAX_CHARS)

# docutils wraps its setup in ``warnings.catch_warnings()``, which swaps the process-wide filter
# list and is not thread-safe: two RST renders at once can leave the filters wrong or raise a
# DeprecationWarning where "error" filters are set (tests). Rendering holds the GIL anyway, so
# one RST render at a time costs no throughput.
_DOCUTILS_LOCK = threading.Lock()


def _utf8(text: str) -> bytes:
    # Metadata can carry lone surrogates; they must neither crash hashing nor the renderers.
    return text.encode("utf-8", "replace")


def _key(text: str, content_type: str | None) -> str:
    digest = hashlib.sha256(_utf8(text)).hexdigest()
    return f"{digest}\0{content_type or ''}"


def _parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """Type and parameters of a Description-Content-Type; "" when none is given (RST then)."""
    if value is None or not value.strip():
        return "", {}
    message = email.message.Message()
    message["content-type"] = value
    params = message.get_params() or []
    parameters = {str(k).lower(): str(v) for k, v in params[1:]}
    return message.get_content_type(), parameters  # an unparsable type reads as text/plain


def _plain(text: str) -> str:
    rendered = readme_renderer.txt.render(text)
    return rendered if rendered is not None else str(escape(text)).replace("\n", "<br>")


def _render_html(text: str, content_type: str | None) -> tuple[str, bool]:
    """The HTML PyPI would show: renderer by content type, plain text when that one fails.

    The flag is False when a renderer crashed: that answer is not worth caching.
    """
    if len(text) > MAX_DESCRIPTION_CHARS:
        return "<pre>" + _plain(text[:MAX_DESCRIPTION_CHARS]) + "</pre>" + _TRUNCATED_NOTE, True
    kind, parameters = _parse_content_type(content_type)
    rendered: str | None
    try:
        if kind in ("", "text/x-rst"):
            with _DOCUTILS_LOCK:
                rendered = readme_renderer.rst.render(text)
        elif kind == "text/markdown":
            variant = parameters.get("variant", "GFM")
            variant = _MARKDOWN_VARIANTS.get(variant.lower(), variant)
            rendered = readme_renderer.markdown.render(text, variant=variant)
        else:
            # text/plain, and any type PyPI does not know: preformatted, as PyPI shows it.
            return "<pre>" + _plain(text) + "</pre>", True
    except Exception:
        # docutils has corners that raise more than SystemMessage; a page must still render.
        log.warning("rendering a %s description failed; showing plain text", kind, exc_info=True)
        return _plain(text), False
    if rendered is None:
        return _plain(text), True  # e.g. RST with ``.. raw::`` or errors: what PyPI does
    return rendered, True


def _render(key: str, text: str, content_type: str | None) -> Markup:
    cached = _cache.get(key)
    if cached is not None:
        return cached
    clean_text = _utf8(text).decode("utf-8")
    html, cacheable = _render_html(clean_text, content_type)
    result = Markup(_FINAL.clean(html))  # noqa: S704 - cleaned just now
    if cacheable:
        _cache.put(key, result)
    return result


def render_description(text: str | None, content_type: str | None) -> Markup:
    """A release's long description as safe HTML for the project page (cached).

    ``content_type`` is the Description-Content-Type: ``text/markdown`` (``variant=GFM``, the
    default, or ``CommonMark``), ``text/x-rst`` (also when None or empty), ``text/plain``;
    any other type is shown as plain text. A cache miss can take a while on a large README:
    from async code, prefer :func:`render_description_async`.
    """
    if not text:
        return Markup("")
    return _render(_key(text, content_type), text, content_type)


async def render_description_async(text: str | None, content_type: str | None) -> Markup:
    """:func:`render_description` without blocking the event loop when it has to render."""
    if not text:
        return Markup("")
    key = _key(text, content_type)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    return await asyncio.to_thread(_render, key, text, content_type)


def clear_cache() -> None:
    """Forget every rendered description (tests; or after upgrading readme-renderer)."""
    _cache.clear()
