"""Zalo as real people and real updates use it: non-text messages, decomposed Vietnamese,
long lists, the wording of a typed channel, and the directive preview's two lists."""

from __future__ import annotations

import asyncio
import logging
import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot import i18n
from bot.channels.render import TYPED_SUFFIX, html_to_plain, plain_text, render
from bot.i18n import t
from bot.messages import Button, OutboundMessage, Text
from bot.models import Channel, Contact, Rating, Role, UnitKind
from bot.services.ratings.service_points import payload_for_counter
from tests import factories as f
from tests import test_zalo_inbound as base
from tests.test_zalo_inbound import CITIZEN, STAFF, numbered
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


zalo, counter, notice = base.zalo, base.counter, base.notice  # the fixtures, shared

KINDS = [
    ("message.image.received", {"photo": "https://zalo.example/a.jpg"}),
    ("message.image.received", {"photo": "https://zalo.example/b.jpg", "caption": " \n "}),
    ("message.sticker.received", {"sticker": "stk-1"}),
    ("message.sticker.received", {"sticker": "stk-2", "caption": "5"}),  # only images have one
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


async def test_an_images_caption_is_read_as_what_the_person_wrote(zalo, counter):
    """A photo sent with "5" under it while the rating asks for a level answers 5; a caption
    on the comment step is the comment (the image itself is not kept)."""
    await zalo.send(CITIZEN, payload_for_counter("Q1"))
    await zalo.send(CITIZEN, "bỏ qua")  # now asked the overall level
    photo = {"photo": "https://zalo.example/a.jpg", "caption": "5"}
    step = await answer(zalo, other_kind(CITIZEN, "message.image.received", **photo))
    assert t("zalo.text_only", "vi") not in step
    assert step  # the next question
    for typed in ("5", "4", "bỏ qua", "1", "bỏ qua", "bỏ qua"):  # the elements, the officer
        await zalo.send(CITIZEN, typed)
    comment = {"photo": "https://zalo.example/b.jpg", "caption": "Cán bộ hướng dẫn tận tình"}
    await answer(zalo, other_kind(CITIZEN, "message.image.received", **comment))
    await zalo.send(CITIZEN, "ẩn danh")
    async with zalo.maker() as s:
        [rating] = (await s.exec(select(Rating))).all()
    assert (rating.overall, rating.access, rating.procedure) == (5, 5, 4)
    assert rating.comment == "Cán bộ hướng dẫn tận tình"


async def test_an_update_without_a_sender_is_logged_by_its_ids_only(zalo, caplog):
    upd = other_kind(CITIZEN, "message.text.received", text="xin chào")
    del upd["message"]["from"]
    with caplog.at_level(logging.WARNING, logger="bot.channels.zalo"):
        assert await answer(zalo, upd) == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "bot.channels.zalo"]
    for named in ("message.text.received", upd["message"]["message_id"], "sender"):
        assert named in line
    for personal in (CITIZEN, "xin chào", "Người dùng"):
        assert personal not in line


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


async def test_every_sentence_of_the_me_profile_on_zalo_says_type(zalo, maker, clock):
    """The /me hint about channels comes from another catalog entry: on Zalo it says type too."""
    async with maker() as s:
        unit = await f.unit(s, "PGD9", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE)
        person = await f.person(s, "ST9", unit, Role.STAFF, name="Bình")
        for channel, uid in ((Channel.ZALO, STAFF), (Channel.TELEGRAM, "5550001")):
            s.add(
                Contact(
                    channel=channel,
                    external_id=uid,
                    person_id=person.id,
                    locale="vi",
                    created_at=clock.now(),
                )
            )
        await s.commit()
    [profile] = await zalo.send(STAFF, "/me")
    assert html_to_plain(t("me.channel_hint_typed", "vi")).strip() in profile
    assert not PRESS["vi"].search(profile), profile


@pytest.mark.parametrize("loc", ["vi", "en"])
def test_a_sentence_inserted_in_a_message_takes_its_typed_wording_on_zalo(loc):
    message = OutboundMessage("errors.internal")
    inner = Text("directive.flow.use_buttons")
    profile = OutboundMessage(
        "broadcast.message", {"text": Text("flow.numbered", {"number": 1, "label": inner})}
    )
    assert t("directive.flow.use_buttons_typed", loc) in plain_text(profile, loc)
    assert t("directive.flow.use_buttons", loc) not in plain_text(profile, loc)
    assert t("directive.flow.use_buttons", loc) in render(profile, loc)  # Telegram keeps its words
    assert plain_text(message, loc) == t("errors.internal", loc)


PRESS = {"vi": re.compile(r"\b(bấm|nút)\b", re.I), "en": re.compile(r"\b(press|button|tap)", re.I)}
NOT_IN_CHATS = ("demo.", "web.", "survey.cli.")  # the terminal and the web dashboard, not chats


@pytest.mark.parametrize("loc", ["vi", "en"])
def test_every_sentence_that_says_press_has_a_typed_wording(loc):
    """So that a Zalo chat never reads "press" (or a button) where it has none to press."""
    keys = catalog_keys(loc)
    missing = [
        key
        for key, text in keys.items()
        if PRESS[loc].search(text)
        and not key.endswith(TYPED_SUFFIX)
        and key + TYPED_SUFFIX not in keys
        and not key.startswith(NOT_IN_CHATS)
    ]
    assert missing == []
    pressing = [k for k, v in keys.items() if k.endswith(TYPED_SUFFIX) and PRESS[loc].search(v)]
    assert pressing == []


def catalog_keys(loc: str) -> dict[str, str]:
    """Return every catalog entry of a locale, by its dotted key."""
    out: dict[str, str] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{name}.")
            elif isinstance(value, str):
                out[prefix + name] = value

    for path in sorted((Path(i18n.__file__).parent / loc).glob("*.toml")):
        walk(tomllib.loads(path.read_text(encoding="utf-8")), "")
    return out


def test_the_directive_preview_has_no_numbers_of_its_own():
    from datetime import UTC, date, datetime

    from bot.services.directives import directives

    draft = directives.Draft(
        number="15/CT-UBND",
        issued_on=date(2026, 11, 30),
        title="Tiêu đề",
        summary="Trích yếu",
        target=directives.Target(all=True),
        ack_deadline=datetime(2026, 12, 2, tzinfo=UTC),
    )
    preview = plain_text(directives.preview(draft, units="UBND xã"), "vi")
    assert not re.search(r"^\d+\. ", preview, flags=re.M), preview
    assert t("directive.ack_button", "vi") in preview
    assert t("typed.preview_intro", "vi") in preview


async def test_wrong_invite_codes_lock_the_account_for_a_day_on_either_channel(zalo, maker, clock):
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
    await zalo.channel.send(
        CITIZEN, OutboundMessage("flow.numbered", {"number": 1, "label": url}), "vi"
    )
    parts = zalo.api.texts(CITIZEN)
    assert len(parts) == 3
    assert all(1 <= len(p) <= 2000 for p in parts)
    assert "".join(parts).endswith("a" * 100)


async def test_the_webhook_refuses_a_forged_huge_body_unread_and_caps_a_chunked_one(zalo, maker):
    """Without the secret a huge body gets 403 (not 413: the body is never read); with it, a
    chunked body past the cap gets 413; a malformed or wrapped body is told apart."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.zalo_app import SECRET_HEADER, Webhook
    from tests.test_zalo_inbound import SECRET

    hook = Webhook(zalo.settings, zalo.inbound, maker, zalo.clock)
    client = TestClient(TestServer(hook.web_app()))
    await client.start_server()
    huge = b"x" * (hook.max_body + 1)
    try:
        assert (await client.post("/zalo", data=huge)).status == 403

        async def chunks():
            for _ in range(hook.max_body // 65536 + 2):
                yield b"y" * 65536

        right = {SECRET_HEADER: SECRET}
        assert (await client.post("/zalo", data=chunks(), headers=right)).status == 413
        assert (await client.post("/zalo", data=b'{"message": ', headers=right)).status == 400
        sticker = other_kind(CITIZEN, "message.sticker.received", sticker="s")
        wrapped = {"ok": True, "result": sticker}
        assert (await client.post("/zalo", json=wrapped, headers=right)).status == 200
        await zalo.inbound.drain()
        assert zalo.api.texts(CITIZEN) == [t("zalo.text_only", "vi")]
    finally:
        await client.close()


async def test_ok_and_the_number_of_someone_else_s_directive_acknowledges_nothing(
    zalo, maker, clock, notice
):
    """A second member of staff, and a citizen, type 'OK 15' for a directive sent to An."""
    from bot.models import Channel, Contact, Role
    from tests import factories as f
    from tests.test_zalo_inbound import STAFF, acked

    other = "6100000000000000077"
    async with maker() as s:
        unit = await f.unit(s, "PGD2", "UBND xã Tây Sơn")
        person = await f.person(s, "ST2", unit, Role.STAFF, name="Bình")
        s.add(
            Contact(
                channel=Channel.ZALO,
                external_id=other,
                person_id=person.id,
                locale="vi",
                created_at=clock.now(),
            )
        )
        await s.commit()
    assert await zalo.send(other, "OK 15") == [t("typed.no_directive", "vi", number="15")]
    assert await zalo.send(CITIZEN, "OK 15") == [t("text.hint_citizen", "vi")]
    # in a group, even the addressee's "đã nhận" is not an acknowledgement
    zalo.api.clear()
    await zalo.inbound.handle(update(STAFF, "đã nhận", chat_type="GROUP"))
    assert zalo.api.texts(STAFF) == []
    assert await acked(maker) == {"14/CT-UBND": False, "15/CT-UBND": False}


async def test_a_citizen_typing_a_staff_command_is_refused_by_name(zalo):
    for command in ("/directive", "/stats", "/broadcast"):
        assert await zalo.send(CITIZEN, command) == [t("errors.forbidden", "vi")], command


async def test_english_words_answer_on_a_vietnamese_chat(zalo, counter):
    await zalo.send(CITIZEN, payload_for_counter("Q1"))
    await zalo.send(CITIZEN, "No dossier code")
    for typed in ("Satisfied", "5", "4", "skip", "1", "Skip", "skip", "SKIP"):
        replies = await zalo.send(CITIZEN, typed)
        assert replies, typed
        assert all("Vui lòng" not in r.split("\n")[0] for r in replies), typed
    thanks = await zalo.send(CITIZEN, "Anonymous")
    assert thanks[0] == t("rating.thanks", "vi")
    async with zalo.maker() as s:
        [rating] = (await s.exec(select(Rating))).all()
    assert (rating.overall, rating.access) == (4, 5)


def _numeric_ids(upd: dict[str, Any]) -> dict[str, Any]:
    upd["message"]["from"]["id"] = int(CITIZEN)
    upd["message"]["chat"]["id"] = int(CITIZEN)
    return upd


def _no_sender(upd: dict[str, Any]) -> dict[str, Any]:
    del upd["message"]["from"]
    return upd


HINT = ("text.hint_citizen", {})
TOO_LONG = ("errors.too_long", {"limit": "4.096"})  # as rendered: a decimal point


@pytest.mark.parametrize(
    ("upd", "expected"),
    [
        (lambda: _numeric_ids(update(CITIZEN, "xin chào")), [HINT]),
        (lambda: _no_sender(update(CITIZEN, "xin chào")), []),
        (lambda: update(CITIZEN, ""), [HINT]),
        (lambda: update(CITIZEN, " \n\t "), [HINT]),
        (lambda: update(CITIZEN, "😀👍🏽 e\u0301"), [HINT]),
        (lambda: update(CITIZEN, "ạ" * 2500), [HINT]),
        (lambda: update(CITIZEN, "ạ" * 5000), [TOO_LONG]),
        (lambda: {"event_name": "message.text.received"}, []),
        (lambda: {"message": "not an object"}, []),
    ],
    ids=["numeric-ids", "no-from", "empty", "blank", "emoji", "2500", "5000", "no-msg", "junk"],
)
async def test_odd_updates_get_a_clear_answer_or_none(zalo, upd, expected):
    sent = await answer(zalo, upd())
    assert sent == [t(key, "vi", **params) for key, params in expected]
