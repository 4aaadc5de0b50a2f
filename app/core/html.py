"""HTML in and out of mail: sanitised for display, turned into text, made from text."""

from __future__ import annotations

import html as html_entities
import re

import nh3
from inscriptis import get_text  # type: ignore[import-untyped]  # ships no type information

_NH3_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
# Removed with everything inside; other disallowed tags are removed but keep their text.
_NH3_DROP_WITH_CONTENT = {"script", "style", "title"}
_NH3_ATTRIBUTES = {**nh3.ALLOWED_ATTRIBUTES, "*": {"style"}}
# Only these survive in style attributes: none can hold a url() or an expression.
_NH3_STYLE_PROPERTIES = {
    "color",
    "background-color",
    "font-weight",
    "font-style",
    "font-size",
    "text-align",
    "text-decoration",
}


def sanitise_html(html: str) -> str:
    # nh3's allow-list drops script, style, iframe, svg, event handlers and every URL scheme
    # not named here (javascript:, data:, vbscript: ...); "cid:" keeps inline images working.
    return nh3.clean(
        html,
        clean_content_tags=_NH3_DROP_WITH_CONTENT,
        attributes=_NH3_ATTRIBUTES,
        url_schemes=_NH3_URL_SCHEMES,
        filter_style_properties=_NH3_STYLE_PROPERTIES,
    )


# inscriptis lays out tables and blocks well but needs seconds per megabyte of HTML; a larger
# body is stripped of its tags instead (block ends turned into line breaks), in milliseconds.
_INSCRIPTIS_MAX_CHARS = 512 * 1024
_BLOCK_END = re.compile(r"<(?:br|/p|/div|/tr|/li|/h[1-6]|/table|/blockquote)\b[^>]*>", re.I)


def html_to_text(html: str) -> str:
    if len(html) > _INSCRIPTIS_MAX_CHARS:
        return _stripped_html(html)
    try:
        return str(get_text(html))
    except Exception:
        # lxml refuses some inputs (e.g. nothing but a comment).
        return _stripped_html(html)


def _stripped_html(html: str) -> str:
    return html_entities.unescape(nh3.clean(_BLOCK_END.sub("\n", html), tags=set()))


_BLANK_LINES = re.compile(r"\n\s*\n")


def text_to_html(text: str) -> str:
    """Plain text as simple, escaped HTML: paragraphs at blank lines, breaks at newlines."""
    paragraphs = _BLANK_LINES.split(text.replace("\r\n", "\n").strip())
    return "\n".join(
        "<p>" + html_entities.escape(paragraph).replace("\n", "<br>\n") + "</p>"
        for paragraph in paragraphs
        if paragraph
    )
