"""From a counter's QR deep link to the stored rating and the head's alert, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from bot.i18n import t
from bot.models import Rating, Role, ServiceCounter, UnitKind
from bot.services.ratings.service_points import payload_for_counter
from tests import factories as f

pytestmark = pytest.mark.e2e
CITIZEN, HEAD = 830001, 830002
WAIT = 30.0
FAST = {"REFORMBOT_DELIVERY__POLL_SECONDS": "0.2"}


def button(message: dict, value: str) -> str:
    """Return the callback data of the message's flow button answering `value`."""
    rows = message["reply_markup"]["inline_keyboard"]
    return next(
        b["callback_data"] for row in rows for b in row if b["callback_data"].endswith(f":{value}")
    )


async def test_qr_to_rating_to_alert(bot_runner, sandbox, db):
    now = datetime.now(UTC)
    async with db() as s:
        desk = await f.unit(s, "SGD.MOTCUA", "Bộ phận Một cửa", kind=UnitKind.ONE_STOP)
        await f.contact(s, str(HEAD), await f.person(s, "HD", desk, Role.UNIT_HEAD))
        s.add(
            ServiceCounter(
                code="SGD.MOTCUA.Q1", name="Quầy 1", unit_id=desk.id, created_at=now, updated_at=now
            )
        )
        await s.commit()
    sandbox.create_user("Dân", user_id=CITIZEN)
    sandbox.create_user("Hạnh", user_id=HEAD)
    await bot_runner.start("polling", FAST)

    async def reply(n: int) -> dict:
        return (await sandbox.wait_for_messages(CITIZEN, n, seconds=WAIT))[-1]

    sandbox.send_text(CITIZEN, f"/start {payload_for_counter('SGD.MOTCUA.Q1')}")
    greet = await reply(1)
    assert "Bộ phận Một cửa" in greet["text"]
    sandbox.press_button(CITIZEN, greet["message_id"], button(greet, "skip"))
    overall = await reply(2)
    sandbox.press_button(CITIZEN, overall["message_id"], button(overall, "lv1"))
    answers = ["4", "3", "bỏ qua", "2", "1", "bỏ qua", "Chờ quá lâu, không được hướng dẫn"]
    for n, text in enumerate(answers, start=3):
        await reply(n)
        sandbox.send_text(CITIZEN, text)
    identity = await reply(10)
    sandbox.press_button(CITIZEN, identity["message_id"], button(identity, "anonymous"))
    thanks, follow_up = (await sandbox.wait_for_messages(CITIZEN, 12, seconds=WAIT))[-2:]
    assert thanks["text"] == t("rating.thanks", "vi")
    assert follow_up["text"].startswith("Thủ trưởng Bộ phận Một cửa sẽ xem xét, xử lý ý kiến")
    alert = (await sandbox.wait_for_messages(HEAD, 1, seconds=WAIT))[-1]
    assert "Đánh giá chưa hài lòng" in alert["text"]
    assert "Rất không hài lòng" in alert["text"]
    assert "Chờ quá lâu" in alert["text"]
    async with db() as s:
        rating = (await s.exec(select(Rating))).one()
    assert (rating.overall, rating.access, rating.procedure, rating.officer_score) == (
        1,
        4,
        3,
        None,
    )
    assert rating.comment == "Chờ quá lâu, không được hướng dẫn"
    assert rating.contact_id is None
    assert rating.officer is None
