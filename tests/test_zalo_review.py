"""Zalo as real people and real updates use it: non-text messages, decomposed Vietnamese,
long lists, the wording of a typed channel, and the directive preview's two lists."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from typing import Any

import pytest
from sqlmodel import select

from bot.channels.render import plain_text
from bot.i18n import t
from bot.messages import Button, OutboundMessage
from bot.models import Rating
from bot.services.ratings.service_points import payload_for_counter
from tests.test_zalo_inbound import CITIZEN, counter, numbered, zalo  # noqa: F401
from tests.zalo_fake import update


def other_kind(uid: str, event_name: str, **fields: Any) -> dict[str, Any]:
    """Return a Zalo update that is not a text message (as the Bot API documents them)."""
    return {
        "event_name": event_name,
        "message": {
            "message_id": f"m-{event_name}-{len(fields)}",
            "date": 1_764_464_400_000,
            "chat": {"id": uid, "chat_type": "PRIVATE"},
            "from": {"id": uid, "display_name": "Người dùng"},
            **fields,
        },
    }


KINDS = [
    ("message.image.received", {"photo": "https://zalo.example/a.jpg", "caption": "5"}),
    ("message.sticker.received", {"sticker": "stk-1"}),
    ("message.unsupported.received", {}),
]


async def answer(zalo, upd: dict[str, Any], uid: str = CITIZEN) -> list[str]:
    zalo.api.clear()
    await zalo.inbound.handle(upd)
    return zalo.api.texts(uid)


async def test_an_image_or_sticker_is_told_the_bot_reads_text_and_the_step_waits(zalo, counter):
    await zalo.send(CITIZEN, payload_for_counter("Q1"))
    step = await zalo.send(CITIZEN, "bỏ qua")  # now asked the overall level
    for name, fields in KINDS:
        assert await answer(zalo, other_kind(CITIZEN, name, **fields)) == [
            t("zalo.text_only", "vi")
        ]
    # the step is still open: the typed answer is taken as before
    assert numbered(step[-1])["5"]
    for typed in ("5", "5", "4", "bỏ qua", "1", "bỏ qua", "bỏ qua", "bỏ qua", "ẩn danh"):
        await zalo.send(CITIZEN, typed)
    async with zalo.maker() as s:
        [rating] = (await s.exec(select(Rating))).all()
    assert rating.overall == 5


async def test_a_sticker_in_a_group_is_ignored(zalo):
    upd = other_kind(CITIZEN, "message.sticker.received", sticker="stk")
    upd["message"]["chat"]["chat_type"] = "GROUP"
    assert await answer(zalo, upd) == []


async def test_decomposed_vietnamese_is_stored_composed(zalo, counter):
    await zalo.send(CITIZEN, payload_for_counter("Q1"))
    for typed in ("bỏ qua", "2", "5", "4", "bo qua", "1", "bỏ qua"):
        await zalo.send(CITIZEN, unicodedata.normalize("NFD", typed))
    await zalo.send(CITIZEN, unicodedata.normalize("NFD", "Trần Văn Bộ"))
    await zalo.send(CITIZEN, unicodedata.normalize("NFD", "Thủ tục nhanh, chu đáo"))
    await zalo.send(CITIZEN, unicodedata.normalize("NFD", "ẩn danh"))
    async with zalo.maker() as s:
        [rating] = (await s.exec(select(Rating))).all()
    assert (rating.overall, rating.access, rating.procedure, rating.result) == (2, 5, 4, 1)
    assert rating.officer == "Trần Văn Bộ"
    assert rating.comment == "Thủ tục nhanh, chu đáo"


async def test_ten_and_more_choices_are_typed_by_their_two_digit_number(zalo, maker):
    langs = [Button("lang.vi", "lang:vi"), Button("lang.en", "lang:en")]
    buttons = tuple((Button("flow.back", f"nope:{i}"),) for i in range(9)) + tuple(
        (b,) for b in langs
    )
    await zalo.channel.send(CITIZEN, OutboundMessage("lang.choose", buttons=buttons), "vi")
    [text] = zalo.api.texts(CITIZEN)
    assert numbered(text)["11"] == t("lang.en", "vi")
    assert await zalo.send(CITIZEN, "11") == [t("lang.changed", "en")]
    assert await zalo.send(CITIZEN, "10") != [t("lang.changed", "en")]


def test_prompts_on_a_typed_channel_say_type_not_press():
    for loc, press in (("vi", "bấm"), ("en", "press")):
        for key in ("rating.ask_overall", "rating.ask_officer", "directive.flow.confirm"):
            text = plain_text(OutboundMessage(key, {"number": 1, "element": "x"}), loc)
            assert press not in text.lower(), (key, text)
            assert t(key, loc) != text  # Telegram keeps its own wording


def test_the_directive_preview_has_no_numbers_of_its_own():
    from datetime import date, datetime, timezone

    from bot.services.directives import directives

    draft = directives.Draft(
        number="15/CT-UBND",
        issued_on=date(2026, 11, 30),
        title="Tiêu đề",
        summary="Trích yếu",
        target=directives.Target(all=True),
        ack_deadline=datetime(2026, 12, 2, tzinfo=timezone.utc),
    )
    preview = plain_text(directives.preview(draft, units="UBND xã"), "vi")
    assert not re.search(r"^\d+\. ", preview, flags=re.M), preview
    assert t("directive.ack_button", "vi") in preview
    assert t("typed.preview_intro", "vi") in preview


async def test_wrong_invite_codes_lock_the_account_for_a_day_on_either_channel(
    zalo, maker, clock
):
    from datetime import timedelta

    from bot.models import Role
    from bot.services.org import invites
    from bot.services.org.access import system_actor
    from tests import factories as f

    async with maker() as s:
        unit = await f.unit(s, "PX", "UBND phường X")
        await f.person(s, "NV1", unit, Role.STAFF, name="Lan")
        await s.commit()
        batch = await invites.create_invites(
            s, actor=system_actor("test"), now=clock.now(), valid_days=14, person_code="NV1"
        )
        await s.commit()
    wrong = [f"inv_{'A' * 21}{chr(ord('a') + i)}" for i in range(invites.MAX_WRONG_CODES)]
    for code in wrong:
        assert await zalo.send(CITIZEN, code) == [t("invite.invalid", "vi")]
    locked = t("invite.too_many", "vi", limit=invites.MAX_WRONG_CODES)
    # now even the right code is refused, and a typed /start with a code too
    assert await zalo.send(CITIZEN, batch.issued[0].code) == [locked]
    assert await zalo.send(CITIZEN, f"/start {wrong[0]}") == [locked]
    clock.advance(timedelta(days=1, minutes=1))
    assert await zalo.send(CITIZEN, batch.issued[0].code) == [
        t("start.linked", "vi", name="Lan", unit="UBND phường X")
    ]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, {"ok": False, "error_code": 429, "description": "Too Many Requests"}, "flood"),
        (200, {"ok": False, "error_code": "429", "description": "quota"}, "flood"),
        (502, "<html><body>502 Bad Gateway</body></html>", "retry"),
        (200, {"ok": False, "error_code": 4711, "description": "unknown"}, "failed"),
        (200, {"ok": False}, "failed"),
        (200, {"ok": True}, "sent"),
    ],
)
async def test_odd_answers_of_the_bot_api_map_to_an_outcome(zalo, status, body, kind):
    zalo.api.script("sendMessage", status, body)
    outcome = await zalo.channel.send(CITIZEN, OutboundMessage("lang.changed"), "vi")
    assert outcome.kind == kind
    if kind == "flood":
        assert outcome.delay >= 1.0


async def test_a_silent_server_is_a_retry_not_a_hang():
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from bot.channels.zalo import ZaloApi, outcome_of

    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/{tail:.*}", hang)
    server = TestServer(app)
    await server.start_server()
    api = ZaloApi("1:x", str(server.make_url("")))
    try:
        outcome = outcome_of(await api.call("sendMessage", {"text": "x"}, seconds=0.05))
    finally:
        never.set()
        await api.close()
        await server.close()
    assert outcome.kind == "retry"


async def test_a_long_line_without_breaks_goes_in_parts_of_at_most_2000(zalo):
    url = "https://dichvucong.gov.vn/" + "a" * 4500
    await zalo.channel.send(CITIZEN, OutboundMessage("flow.numbered", {"number": 1, "label": url}), "vi")
    parts = zalo.api.texts(CITIZEN)
    assert len(parts) == 3 and all(1 <= len(p) <= 2000 for p in parts)
    assert "".join(parts).endswith("a" * 100)
