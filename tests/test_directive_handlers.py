"""Directives in chat: the admin's guided flow, the acknowledge button, /status."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

import handlers.router  # noqa: F401
from bot.i18n import t
from bot.messages import codec
from bot.models import Directive, DirectiveRecipient, Flow, Outbox, Role, UnitKind
from tests import factories as f
from tests import tg

TZ = ZoneInfo("Asia/Ho_Chi_Minh")

ADMIN, HEAD, STAFF = 7001, 7002, 7003


@pytest.fixture
async def org(bot_harness):
    """A department with a commune committee: an admin, its head and a member of staff."""
    async with bot_harness.maker() as s:
        root = await f.unit(s, "SGD", "Sở GD&ĐT", kind=UnitKind.DEPARTMENT)
        dist = await f.unit(s, "PGD1", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE, parent=root)
        await f.contact(s, str(ADMIN), await f.person(s, "AD", root, Role.ADMIN, name="Quản"))
        await f.contact(s, str(HEAD), await f.person(s, "HD", dist, Role.UNIT_HEAD, name="Hạnh"))
        await f.contact(s, str(STAFF), await f.person(s, "ST", dist, name="An"))
        await f.person(s, "NL", dist, name="Chưa Liên Kết")
        await s.commit()
    return bot_harness


async def walk(org, steps):
    """Answer the flow's steps as the admin; return the texts of the last answer."""
    texts = []
    for kind, value in steps:
        if kind == "text":
            texts = await org.send(ADMIN, value)
        else:
            texts = await org.choose(ADMIN, value)
    return texts


async def test_admin_issues_a_directive_in_chat(org):
    first = await org.send(ADMIN, "/directive")
    assert first[0].startswith("<b>Phát hành công văn</b>")
    texts = await walk(
        org,
        [
            ("text", "125/SGDĐT-VP"),
            ("press", "today"),
            ("text", "Triển khai khảo sát SIPAS"),
            ("text", "Đề nghị các đơn vị phổ biến <khảo sát> tới cán bộ."),
            ("press", "skip"),
            ("press", "pick"),
            ("text", "PGD1"),
            ("press", "everyone"),
            ("press", "2"),
        ],
    )
    preview, confirm = texts
    assert "Công văn số 125/SGDĐT-VP" in preview
    assert "&lt;khảo sát&gt;" in preview
    assert "UBND xã Đông Sơn" in preview
    assert t("directive.flow.confirm", "vi", reachable=2, units=1, unreachable=1) == confirm
    done = await org.choose(ADMIN, "send")
    assert done[0] == t("directive.issued", "vi", number="125/SGDĐT-VP", queued=2, unreachable=1)
    assert "Chưa Liên Kết" in done[1]
    async with org.maker() as s:
        rows = (await s.exec(select(Outbox).order_by(Outbox.chat_id))).all()
        assert [r.chat_id for r in rows] == [str(HEAD), str(STAFF)]
        assert (await s.exec(select(Flow))).first() is None
        directive = (await s.exec(select(Directive))).one()
    assert directive.title == "Triển khai khảo sát SIPAS"


async def test_flow_back_cancel_and_bad_input(org):
    await org.send(ADMIN, "/directive")
    await org.send(ADMIN, "125/SGDĐT-VP")
    bad = await org.send(ADMIN, "31/02/2026")
    assert bad[0] == t("directive.flow.bad_date", "vi", value="31/02/2026")
    assert bad[1] == t("directive.flow.ask_date", "vi")
    back = await org.choose(ADMIN, "__back")
    assert back == [t("directive.flow.ask_number", "vi")]
    await org.send(ADMIN, "126/SGDĐT-VP")
    await org.send(ADMIN, "05/12/2026")
    assert await org.send(ADMIN, "/help")  # a command does not lose the flow
    resumed = await org.send(ADMIN, "Tiêu đề")
    assert resumed == [t("directive.flow.ask_summary", "vi")]
    assert await org.send(ADMIN, "huỷ") == [t("flow.cancelled", "vi")]
    assert await org.press(ADMIN, "flow:0a1b2c.date:today") == [t("flow.expired", "vi")]
    async with org.maker() as s:
        assert (await s.exec(select(Flow))).first() is None
        assert (await s.exec(select(Directive))).first() is None


async def test_staff_cannot_start_the_flow(org):
    assert await org.send(STAFF, "/directive") == [t("errors.forbidden", "vi")]


async def issue_one(org) -> int:
    """Issue a directive to PGD1 through the flow; return its id."""
    await org.send(ADMIN, "/directive")
    await walk(
        org,
        [
            ("text", "7/SGDĐT"),
            ("press", "today"),
            ("text", "Tiêu đề"),
            ("text", "Tóm tắt"),
            ("press", "skip"),
            ("press", "communes"),
            ("press", "everyone"),
            ("press", "3"),
            ("press", "send"),
        ],
    )
    async with org.maker() as s:
        return (await s.exec(select(Directive))).one().id


async def test_acknowledge_button_edits_the_notice(org):
    await issue_one(org)
    async with org.maker() as s:
        rows = (await s.exec(select(Outbox).where(Outbox.chat_id == str(STAFF)))).all()
    action = codec.loads(rows[0].payload).buttons[0][0].action
    edited = await org.press(STAFF, action, message_id=77)
    assert "✅ Đã xác nhận nhận công văn lúc" in edited[0]
    assert org.api.sent("editMessageText")[0]["message_id"] == 77
    again = await org.press(STAFF, action, message_id=77)
    assert again[0].startswith("Đồng chí đã xác nhận công văn này lúc")
    assert await org.press(HEAD, action) == [t("directive.error.not_yours", "vi")]
    async with org.maker() as s:
        acked = [r for r in (await s.exec(select(DirectiveRecipient))).all() if r.acked_at]
    assert len(acked) == 1


async def test_status_for_head_and_admin(org):
    directive_id = await issue_one(org)
    listing = (await org.send(HEAD, "/status"))[0]
    assert f"#{directive_id} – 7/SGDĐT «Tiêu đề»: 0/3 đã xác nhận" in listing
    detail = (await org.send(ADMIN, f"/status {directive_id}"))[0]
    assert "UBND xã Đông Sơn: 0/3" in detail
    assert "Chưa Liên Kết" in detail
    assert await org.send(STAFF, "/status") == [t("errors.forbidden", "vi")]
    assert await org.send(ADMIN, "/status abc") == [
        t("errors.usage", "vi", usage=t("directive.status_usage", "vi"))
    ]
    queued = await org.send(HEAD, f"/status {directive_id} xlsx")
    assert queued == [t("directive.xlsx_queued", "vi")]
    async with org.maker() as s:
        report = (await s.exec(select(Outbox).where(Outbox.kind == "report"))).one()
    assert report.chat_id == str(HEAD)
    assert codec.loads(report.payload).attachment_id is not None


async def test_acknowledging_a_notice_sent_as_a_document_edits_its_caption(org):
    await issue_one(org)
    async with org.maker() as s:
        row = (await s.exec(select(Outbox).where(Outbox.chat_id == str(STAFF)))).first()
    action = codec.loads(row.payload).buttons[0][0].action
    update = tg.callback_update(STAFF, action, message_id=88)
    message = update["callback_query"]["message"]
    del message["text"]
    message["caption"] = "Công văn"
    message["document"] = {"file_id": "F1", "file_unique_id": "U1", "file_name": "cv.pdf"}
    org.api.clear()
    await org.feed(update)
    edits = org.api.sent("editMessageCaption")
    assert len(edits) == 1
    assert edits[0]["message_id"] == 88
    assert "✅ Đã xác nhận nhận công văn lúc" in edits[0]["caption"]
    assert org.api.sent("editMessageText") == []


async def test_a_deadline_on_a_saturday_is_moved_or_changed_at_the_admins_choice(org):
    await org.send(ADMIN, "/directive")
    steps = [
        ("text", "126/SGDĐT-VP"),
        ("press", "today"),
        ("text", "Tiêu đề"),
        ("text", "Nội dung"),
        ("press", "skip"),
        ("press", "pick"),
        ("text", "PGD1"),
        ("press", "everyone"),
    ]
    await walk(org, steps)
    held = await org.send(ADMIN, "05/12/2026 11:00")  # a Saturday
    assert held[0].startswith("Ngày 05/12/2026 là thứ Bảy hoặc Chủ nhật")
    other = await org.choose(ADMIN, "other")
    assert other[0] == t("directive.flow.ask_deadline", "vi")
    await org.send(ADMIN, "05/12/2026 11:00")
    await org.choose(ADMIN, "move")
    await org.choose(ADMIN, "send")
    async with org.maker() as s:
        directive = (await s.exec(select(Directive))).one()
    assert directive.ack_deadline.astimezone(TZ).strftime("%d/%m/%Y %H:%M") == "07/12/2026 11:00"
