"""Sanitizing customer HTML. Used by plugins in parse() and again by the core before storing."""

from __future__ import annotations

import re

import nh3

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del", "div",
    "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "ol", "p",
    "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "u", "ul",
}
_ATTRIBUTES = {
    "*": {"title", "dir", "lang", "align"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "font": {"color"},
}
# cid: references inline attachments; data: and http(s) images are allowed but never scripts.
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}


def sanitize_html(html: str) -> str:
    """Strip scripts, event handlers, javascript: URLs, styles and unknown tags; keep the text."""
    if not html:
        return ""
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head"},
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


_BLOCK = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h[1-6]|/blockquote)\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"[ \t]+")
_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Plain text of an HTML body, for HTML-only messages."""
    import html as htmllib

    text = _BLOCK.sub("\n", sanitize_html(html))
    text = htmllib.unescape(_TAG.sub("", text))
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return _LINES.sub("\n\n", text).strip()
