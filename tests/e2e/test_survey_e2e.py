"""A survey over HTTP: launched to two units, answered in chat, hidden until close, then shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from bot.models import CampaignRecipient, Role, SurveyResponse, UnitKind
from bot.services.org.access import system_actor
from bot.services.surveys import campaigns, questionnaire
from tests import factories as f

pytestmark = pytest.mark.e2e
ADMIN = 840000
U1 = [840101, 840102, 840103, 840104, 840105]
U2 = [840201]
WAIT = 30.0
FAST = {"REFORMBOT_DELIVERY__POLL_SECONDS": "0.2"}
FORM = {
    "code": "E2E",
    "title": "Khảo sát cải cách hành chính",
}
QUESTIONS = [
    (1, {"id": "A", "area": "Một cửa", "text": "Đã dùng dịch vụ công?", "type": "yes_no"}),
    (2, {"id": "B", "area": "Một cửa", "text": "Vì sao chưa?", "type": "text",
         "when": {"question": "A", "is": ["Không"]}}),
    (3, {"id": "C", "area": "Hiện đại hóa", "text": "Mức độ thuận tiện", "type": "scale",
         "scale": 5, "low": "Rất kém", "high": "Rất tốt"}),
]  # fmt: skip


def button(message: dict, tail: str) -> str:
    """Return the callback data of the message's button whose data ends with `tail`."""
    rows = message["reply_markup"]["inline_keyboard"]
    return next(
        b["callback_data"] for row in rows for b in row if b["callback_data"].endswith(tail)
    )


async def test_a_survey_from_launch_to_results(bot_runner, sandbox, db):
    now = datetime.now(UTC)
    async with db() as s:
        root = await f.unit(s, "SGD", "Sở GD&ĐT", kind=UnitKind.DEPARTMENT)
        one = await f.unit(s, "U1", "Phòng Tổ chức", parent=root)
        two = await f.unit(s, "U2", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE, parent=root)
        await f.contact(s, str(ADMIN), await f.person(s, "AD", root, Role.ADMIN))
        for i, uid in enumerate(U1):
            await f.contact(s, str(uid), await f.person(s, f"A{i}", one))
        for i, uid in enumerate(U2):
            await f.contact(s, str(uid), await f.person(s, f"B{i}", two))
        form = questionnaire.check(FORM, QUESTIONS).definition
        await questionnaire.save(s, form, actor=system_actor("e2e"), now=now)
        draft = campaigns.Draft(
            "Khảo sát cải cách hành chính",
            campaigns.Audience(units=("U1", "U2")),
            now,
            now + timedelta(days=7),
            "E2E",
        )
        campaign = await campaigns.launch(s, draft, actor=system_actor("e2e"), now=now)
        await s.commit()
    for uid in [ADMIN, *U1, *U2]:
        sandbox.create_user(f"Người {uid}", user_id=uid)
    await bot_runner.start("polling", FAST)

    for n, uid in enumerate([*U1, *U2]):
        invite = (await sandbox.wait_for_messages(uid, 1, seconds=WAIT))[-1]
        assert "ẩn danh" in invite["text"]
        sandbox.press_button(uid, invite["message_id"], button(invite, f"survey:{campaign.id}"))
        _intro, first = (await sandbox.wait_for_messages(uid, 3, seconds=WAIT))[-2:]
        assert first["text"].startswith("Câu 1/2 – Một cửa")
        if n % 2:
            sandbox.press_button(uid, first["message_id"], button(first, ":vno"))
            await sandbox.wait_for_messages(uid, 4, seconds=WAIT)
            sandbox.send_text(uid, "Chưa được hướng dẫn")
        else:
            sandbox.send_text(uid, "1")
        scale = (await sandbox.wait_for_messages(uid, 5 if n % 2 else 4, seconds=WAIT))[-1]
        assert "Mức độ thuận tiện" in scale["text"]
        sandbox.send_text(uid, str(3 + n % 3))
        thanks = (await sandbox.wait_for_messages(uid, 6 if n % 2 else 5, seconds=WAIT))[-1]
        assert thanks["text"].startswith("Trân trọng cảm ơn đồng chí")

    sandbox.send_text(ADMIN, f"/results {campaign.id}")
    hidden = (await sandbox.wait_for_messages(ADMIN, 1, seconds=WAIT))[-1]
    assert "chỉ được xem sau khi đợt khảo sát kết thúc" in hidden["text"]
    sandbox.send_text(ADMIN, f"/survey_close {campaign.id}")
    await sandbox.wait_for_messages(ADMIN, 2, seconds=WAIT)
    sandbox.send_text(ADMIN, f"/results {campaign.id}")
    got = (await sandbox.wait_for_messages(ADMIN, 4, seconds=WAIT))[2:]
    shown = next(m["text"] for m in got if "text" in m)
    photo = next(m for m in got if "photo" in m)  # the chart comes with the summary
    assert photo["caption"].startswith("📊 Biểu đồ kết quả: ")  # the chart follows the summary
    png = sandbox.sandbox.bot().files.get(photo["photo"][-1]["file_id"])
    assert png is not None
    assert png.data.startswith(b"\x89PNG")
    assert "Số phiếu hoàn thành: 6" in shown
    assert "Chưa được hướng dẫn" not in shown  # three free texts: fewer than the minimum
    assert "ít người trả lời câu này" in shown
    assert "UBND xã Đông Sơn: không hiển thị riêng" in shown
    async with db() as s:
        rows = (await s.exec(select(SurveyResponse))).all()
        done = (await s.exec(select(CampaignRecipient).where(CampaignRecipient.done))).all()
    assert len(rows) == 6
    assert len(done) == 6
    assert all(r.person_id is None and r.answered_at is None for r in rows)
