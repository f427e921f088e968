"""Unit tests of the HTML parse mode and entity offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sandbox.entities import command_entities, trim, utf16_len
from bot.sandbox.errors import ApiError
from bot.sandbox.html import parse_html


def test_offsets_count_utf16_units() -> None:
    """An emoji before a bold word shifts the offset by two UTF-16 units."""
    text, entities = parse_html("😀 <b>Hà Nội</b>")
    assert text == "😀 Hà Nội"
    assert entities == [{"type": "bold", "offset": 3, "length": 6}]


def test_numeric_and_unknown_entities() -> None:
    """Numeric entities decode; unknown named ones stay as text."""
    assert parse_html("&#7879;&#x1EC7; &nbsp;")[0] == "ệệ &nbsp;"


def test_link_without_valid_url_is_plain_text() -> None:
    """A link whose href is not a URL gives no entity, like Telegram."""
    assert parse_html('<a href="không phải url">x</a>') == ("x", [])
    assert parse_html("<a>dichvucong.gov.vn</a>")[1][0]["url"] == "http://dichvucong.gov.vn"


def test_nested_tags_and_expandable_quote() -> None:
    """Nesting yields outer-first entities; blockquote expandable is recognised."""
    text, entities = parse_html("<blockquote expandable><b>a <i>b</i></b></blockquote>")
    assert text == "a b"
    assert [e["type"] for e in entities] == ["expandable_blockquote", "bold", "italic"]


def test_tags_are_case_insensitive_but_end_tags_must_match() -> None:
    """<B> opens bold; </B> does not close it (Telegram compares end tags as written)."""
    with pytest.raises(ApiError, match="Unmatched end tag"):
        parse_html("<B>x</B>")
    assert parse_html("<B>x</b>")[1][0]["type"] == "bold"


def test_trim_moves_entities() -> None:
    """Leading spaces are stripped and entities shifted."""
    assert trim("  ab ", [{"type": "bold", "offset": 2, "length": 3}]) == (
        "ab",
        [{"type": "bold", "offset": 0, "length": 2}],
    )


def test_command_entities() -> None:
    """Commands at the start or after spaces become bot_command entities."""
    assert command_entities("/start@reformbot_sandbox_bot x /help a/b") == [
        {"type": "bot_command", "offset": 0, "length": 28},
        {"type": "bot_command", "offset": 31, "length": 5},
    ]
    assert utf16_len("🇻🇳") == 4


def test_entity_edge_cases_stay_as_telegram_reads_them() -> None:
    """Empty or over-long numbers, upper-case names and a bare ampersand stay as text."""
    assert parse_html("&#; &#x; &#12345678901; &AMP; & &amp &#65")[0] == (
        "&#; &#x; &#12345678901; &AMP; & & A"
    )
    assert parse_html("&#X41; &#xD800; &#0;")[0] == "&#X41; &#xD800; &#0;"


@given(
    before=st.text(alphabet=st.characters(blacklist_characters="<&")),
    inside=st.text(alphabet=st.characters(blacklist_characters="<&"), min_size=1),
)
def test_plain_runs_keep_their_text_and_utf16_offsets(before: str, inside: str) -> None:
    """Text without tags or entities comes back as it is; a bold run after it starts at its
    UTF-16 length."""
    assert parse_html(before) == (before, [])
    text, entities = parse_html(f"{before}<b>{inside}</b>")
    assert text == before + inside
    assert entities == [{"type": "bold", "offset": utf16_len(before), "length": utf16_len(inside)}]
