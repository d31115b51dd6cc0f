"""Text from the record must render inert in card Markdown (and in HTML), and stay readable."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds_service.response.markdown_text import ELLIPSIS, escape, plain

INLINE_SIGNIFICANT = set("\\`*_{}[]()!|~:@$")
BLOCK_MARKERS = set("#-+=")
HTML_REFERENCES = {"&amp;": "&", "&lt;": "<", "&gt;": ">"}
BIDI_CONTROLS = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c")


def render_literal(escaped: str) -> str:
    """What a CommonMark renderer shows for text that contains only backslash escapes and the three
    character references: the inverse of ``escape`` (written independently of it)."""
    return re.sub(
        r"\\(.)|&(amp|lt|gt);",
        lambda m: m.group(1) if m.group(1) is not None else HTML_REFERENCES["&" + m.group(2) + ";"],
        escaped,
    )


def unescaped_significant(escaped: str) -> list[str]:
    """Characters that could start Markdown or HTML syntax and appear without a backslash: inline
    punctuation anywhere, a block marker at the start, the dot of "www.", and raw <, > or &."""
    found, i = [], 0
    while i < len(escaped):
        ch = escaped[i]
        if ch == "\\":
            i += 2
            continue
        if ch in INLINE_SIGNIFICANT or ch in "<>" or (i == 0 and ch in BLOCK_MARKERS):
            found.append(ch)
        elif ch == "&" and not re.match(r"&(amp|lt|gt);", escaped[i:]):
            found.append(ch)
        elif ch == "." and escaped[max(i - 3, 0):i].lower() == "www":
            found.append("www.")
        i += 1
    return found


@pytest.mark.parametrize(
    "hostile, shown",
    [
        ("[link](javascript:alert(1))", "[link](javascript:alert(1))"),
        ("![img](http://evil.example/x.png)", "![img](http://evil.example/x.png)"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ('<img src=x onerror="alert(1)">', '<img src=x onerror="alert(1)">'),
        ("**bold** _em_ `code` ~~strike~~", "**bold** _em_ `code` ~~strike~~"),
        ("www.evil.example and WWW.evil.example", "www.evil.example and WWW.evil.example"),
        ("javascript:alert(1) mailto:x@evil.example", "javascript:alert(1) mailto:x@evil.example"),
        ("$x^2$ math", "$x^2$ math"),
        ("# heading\n- item\n| a | b |\n---", "# heading - item | a | b | ---"),
        ("&lt;b&gt; already an entity", "&lt;b&gt; already an entity"),
        ("back\\slash \\[", "back\\slash \\["),
    ],
)
def test_hostile_text_renders_as_its_own_characters(hostile, shown):
    escaped = escape(hostile)
    assert render_literal(escaped) == shown
    assert unescaped_significant(escaped) == []
    assert "<" not in escaped and ">" not in escaped
    assert "\n" not in escaped


def test_ordinary_clinical_text_stays_readable():
    assert escape("Idecabtagene vicleucel 450 x10^6 cells") == "Idecabtagene vicleucel 450 x10^6 cells"
    assert escape("0.4 g/dL, the member's C90.02 (relapse)") == "0.4 g/dL, the member's C90.02 \\(relapse\\)"
    assert escape("- not a list item") == "\\- not a list item"
    assert escape("# not a heading") == "\\# not a heading"
    assert render_literal(escape("Serum free light chain ratio 0.12")) == "Serum free light chain ratio 0.12"


def test_plain_collapses_lines_and_drops_control_and_bidi_characters():
    assert plain("  Abecma\r\n\t(idecabtagene\u2028vicleucel)  ") == "Abecma (idecabtagene vicleucel)"
    assert plain("a\x00b\x1bc\u202ed\u2066e") == "abcde"
    assert plain(None) == ""
    assert plain(42) == "42"


def test_limit_counts_shown_characters_and_marks_the_cut():
    assert plain("abcdefghij", limit=5) == "abcd" + ELLIPSIS
    assert plain("abcde", limit=5) == "abcde"
    escaped = escape("[[[[[[[[[[", limit=4)
    assert render_literal(escaped) == "[[[" + ELLIPSIS
    with pytest.raises(ValueError):
        plain("abc", limit=0)


@given(st.text())
def test_any_text_is_inert_and_round_trips_to_its_plain_form(text):
    escaped = escape(text)
    assert unescaped_significant(escaped) == []
    assert render_literal(escaped) == plain(text)
    assert "\n" not in escaped and "\r" not in escaped


# Whitespace, control and bidi characters (and their neighbours) drawn often, since plain() takes a
# shortcut for text without any of them.
_AWKWARD = st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u200a\u200b\u2028\u2029\u202f\u3000"
                                "\x00\x07\x1b\x7f\x9f\u200e\u202e\u2066\u061c\ufeff wWw.*<&"))


@given(st.text(alphabet=st.one_of(st.characters(), _AWKWARD)))
def test_plain_drops_controls_and_collapses_every_kind_of_whitespace(text):
    """plain() against its definition, written out character by character."""
    kept = "".join(c for c in text if c.isspace() or not (unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS))
    words, word = [], ""
    for c in kept + " ":
        if c.isspace():
            words, word = (words + [word] if word else words), ""
        else:
            word += c
    assert plain(text) == " ".join(words)
