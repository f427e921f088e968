"""Rendering: escaping user text, dates in Hanoi time, splitting long texts, buttons."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.render import format_value, html_escape, render, split_text
from bot.channels.telegram import keyboard
from bot.config import SchedulerSettings
from bot.messages import Button, Items, OutboundMessage, Text, parse_command

TZ = SchedulerSettings().tz


def test_params_are_escaped_but_catalog_markup_is_kept():
    text = render(
        OutboundMessage(
            "people.header", {"unit": "<script>", "count": 2, "lines": Items("help.line", ())}
        ),
        "vi",
    )
    assert text.startswith("<b>&lt;script&gt;</b>")


def test_nested_messages_and_lists():
    msg = OutboundMessage(
        "help.header_staff",
        {
            "roles": Text("roles.admin"),
            "lines": Items("help.line", ({"command": "me", "description": Text("help.cmd.me")},)),
        },
    )
    assert render(msg, "en").endswith("/me – see your details, unit and roles")


def test_dates_are_shown_in_hanoi_time():
    assert format_value(datetime(2026, 1, 1, 17, 30, tzinfo=UTC), "vi", TZ) == "00:30 02/01/2026"
    assert format_value(date(2026, 2, 17), "vi", TZ) == "17/02/2026"
    assert format_value(1234567, "vi", TZ) == "1.234.567"
    assert format_value(1234567, "en", TZ) == "1,234,567"


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300), max_size=80
    )
)
def test_split_keeps_every_character_within_the_limit(lines):
    text = "\n".join(lines)
    chunks = split_text(text, 200)
    assert all(len(c) <= 200 for c in chunks)
    squash = "".join(text.split())
    assert "".join("".join(chunks).split()) == squash


def test_split_prefers_line_breaks():
    text = "\n".join(f"dòng {i:04d}" for i in range(1000))
    chunks = split_text(text, 4096)
    assert len(chunks) == 3
    assert all(c.startswith("dòng") for c in chunks)


def test_button_actions_are_namespaced_and_short():
    with pytest.raises(ValueError, match="64 bytes"):
        Button("x", "ack:" + "đ" * 40)
    with pytest.raises(ValueError, match="namespace"):
        Button("x", "nocolon")
    markup = keyboard(
        OutboundMessage("lang.choose", buttons=((Button("lang.vi", "lang:vi"),),)), "en"
    )
    assert markup is not None
    assert markup.inline_keyboard[0][0].text == "🇻🇳 Tiếng Việt"


def test_html_escape_of_user_text():
    assert html_escape("a < b & c > d") == "a &lt; b &amp; c &gt; d"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start inv_abc", ("start", ("inv_abc",))),
        ("/help@reformbot_test_bot", ("help", ())),
        ("/help@other_bot", (None, ())),
        ("/", (None, ())),
        ("/đăng", (None, ())),
        ("xin chào", (None, ())),
    ],
)
def test_parse_command(text, expected):
    assert parse_command(text, "reformbot_test_bot") == expected


def test_codec_round_trips_every_parameter_type():
    from bot.messages import codec

    message = OutboundMessage(
        "help.header_staff",
        {
            "roles": Text("roles.admin"),
            "when": datetime(2026, 1, 1, 1, 0, tzinfo=UTC),
            "day": date(2026, 2, 17),
            "n": 3,
            "name": "Nguyễn Thị Ánh",
            "lines": Items("help.line", ({"command": "me", "description": Text("help.cmd.me")},)),
        },
        buttons=((Button("lang.vi", "lang:vi"), Button("lang.en", "lang:en")),),
        attachment_id=7,
    )
    again = codec.loads(codec.dumps(message))
    assert again == message
    assert render(again, "vi") == render(message, "vi")
    with pytest.raises(TypeError):
        codec.dumps(OutboundMessage("x", {"bad": object()}))


def test_a_numbered_choice_shows_its_number_on_buttons_and_in_text():
    from bot.channels.render import options_text
    from bot.i18n import t
    from bot.messages import codec

    message = OutboundMessage(
        "rating.ask_overall",
        buttons=(
            (Button("rating.level_button.5", "flow:x.overall:lv5", number=5),),
            (Button("rating.skip", "flow:x.overall:skip", number=0),),
            (Button("flow.back", "flow:x.overall:__back"),),
        ),
    )
    markup = keyboard(message, "vi")
    assert markup is not None
    labels = [b.text for row in markup.inline_keyboard for b in row]
    assert labels == [
        f"5. {t('rating.level_button.5', 'vi')}",
        f"0. {t('rating.skip', 'vi')}",
        t("flow.back", "vi"),
    ]
    assert options_text(message, "vi").split("\n") == labels
    assert codec.loads(codec.dumps(message)) == message
