"""Make untrusted text safe to place in a card: inert in GitHub-Flavored Markdown and in HTML.

Card ``detail`` is Markdown that the EHR renders. Drug names, displays, values and even policy text
reach it from outside this service, so a medication named ``[x](javascript:alert(1))`` or
``<script>`` must show as those characters and never become a link, an image, a tag, a heading, a
table or a list. Two functions:

- ``plain(text)``: one clean line for plain-text fields (card ``summary``, action ``description``):
  control and bidirectional-override characters removed, every run of whitespace (newlines included)
  collapsed to one space, optionally shortened with an ellipsis.
- ``escape(text)``: ``plain`` plus Markdown escaping, for text placed inside ``detail``. ``<``, ``>``
  and ``&`` become HTML character references (inert both as Markdown and as HTML). The punctuation
  that starts an inline construct of CommonMark or GFM is backslash-escaped, which CommonMark renders
  as the character itself: emphasis and strikethrough (``* _ ~``), code (`````), links and images
  (``[ ] ( ) !``), math (``$``), table cells (``|``), autolink triggers (``:`` of a scheme, ``@`` of an
  e-mail address, the dot of ``www.``), and a block marker (``# - + =``) at the very start.

Because newlines are collapsed, escaped text can never start a new block, whatever it contains.
Limitation: a renderer that autolinks bare ``http(s)://`` URLs after parsing (as cmark-gfm may) can
still show such a URL as a link to itself; no other scheme is ever linked.
"""

from __future__ import annotations

import re

_HTML_REFERENCES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Inline-construct punctuation of CommonMark/GFM; CommonMark allows a backslash before any ASCII punctuation.
_MARKDOWN_PUNCTUATION = frozenset("\\`*_{}[]()!|~:@$")
_BLOCK_MARKERS = frozenset("#-+=")  # meaningful only at the start of a line
# Explicit directional formatting characters: they can make displayed text differ from its content.
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c")
# Removed outright: control characters (Unicode category Cc) that are not whitespace, and bidi controls.
# All of them, and all whitespace but the space, are non-printable (``str.isprintable``), so text that is
# printable skips this step.
_REMOVED = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in (*range(0x20), *range(0x7F, 0xA0)) if not chr(c).isspace())
    + "".join(sorted(_BIDI_CONTROLS)) + "]"
)
# Escaped: HTML-significant characters and inline Markdown punctuation. The dot of "www." (autolinks) is
# escaped separately (a look-behind in this pattern would slow the scan of every string).
_ESCAPED = re.compile("[" + re.escape("".join(sorted({*_HTML_REFERENCES, *_MARKDOWN_PUNCTUATION}))) + "]")
_WWW_DOT = re.compile(r"(?<=[Ww][Ww][Ww])\.")
ELLIPSIS = "\u2026"


def plain(text: object, limit: int | None = None) -> str:
    """One line of displayable text: no control characters, single spaces, at most ``limit`` characters
    (an ellipsis marks a cut). ``None`` gives ``""``."""
    if text is None:
        return ""
    text = str(text)
    if not text.isprintable():
        text = _REMOVED.sub("", text)
    cleaned = " ".join(text.split())  # str.split() splits on exactly the characters regex \s matches
    if limit is not None and len(cleaned) > limit:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        cleaned = cleaned[: limit - 1].rstrip() + ELLIPSIS
    return cleaned


def escape(text: object, limit: int | None = None) -> str:
    """``plain(text, limit)`` escaped so that Markdown and HTML render every character literally.
    ``limit`` counts the characters shown, not the escapes added."""
    text = plain(text, limit)
    if not text:
        return text
    escaped = text
    if _ESCAPED.search(text):  # most text from the record has nothing to escape
        escaped = _ESCAPED.sub(_escaped_character, escaped)
    if "www." in text.lower():
        escaped = _WWW_DOT.sub(r"\\.", escaped)
    return "\\" + escaped if text[:1] in _BLOCK_MARKERS else escaped


def _escaped_character(match: re.Match) -> str:
    character = match.group()
    return _HTML_REFERENCES.get(character, "\\" + character)
