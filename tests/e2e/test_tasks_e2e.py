"""A unit gets its task reminder from the real bot process and reports done from it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.clock import SystemClock
from bot.config import TaskSettings
from bot.i18n import t
from bot.models import Role, TaskAssignment, TaskStatus, UnitKind
from bot.services.calendar import WorkCalendar
from bot.services.org.access import system_actor
from bot.services.tasks import tasks
from tests import factories as f

pytestmark = pytest.mark.e2e
HEAD = 820001
WAIT = 30.0


def always_deliverable() -> dict[str, str]:
    """Make today a working day with no quiet hours, whatever day the test runs on."""
    today = WorkCalendar().local(SystemClock().now()).date().isoformat()
    return {
        "REFORMBOT_CALENDAR__MAKE_UP_WORKING_DAYS": json.dumps([today]),
        "REFORMBOT_SCHEDULER__QUIET_HOURS_START": "00:00",
        "REFORMBOT_SCHEDULER__QUIET_HOURS_END": "00:00",
        "REFORMBOT_TASKS__SWEEP_SECONDS": "5",
        "REFORMBOT_DELIVERY__POLL_SECONDS": "0.2",
    }


async def test_reminder_then_done_from_the_button(bot_runner, sandbox, db):
    now = SystemClock().now()
    async with db() as s:
        root = await f.unit(s, "SGD", "Sở", kind=UnitKind.DEPARTMENT)
        dist = await f.unit(
            s, "PGD1", "Phòng GD&ĐT Đông Sơn", kind=UnitKind.DISTRICT_OFFICE, parent=root
        )
        await f.contact(s, str(HEAD), await f.person(s, "HD", dist, Role.UNIT_HEAD, name="Hạnh"))
        due = WorkCalendar().require_working_day(now + timedelta(days=1), move=True)
        new = tasks.NewTask(title="Báo cáo CCHC tháng 12", units=("PGD1",), due_at=due)
        _, [row] = await tasks.create(
            s,
            actor=system_actor("e2e"),
            new=new,
            now=now,
            cal=WorkCalendar(),
            settings=TaskSettings(),
        )
        row.next_step_at = now - timedelta(minutes=1)  # a ladder step is due now
        s.add(row)
        await s.commit()
        assignment_id = row.id
    sandbox.create_user("Hạnh", user_id=HEAD)
    await bot_runner.start("polling", always_deliverable())
    messages = await sandbox.wait_for_messages(HEAD, 2, seconds=WAIT)  # the notice, a reminder
    keys = [m["text"] for m in messages]
    assert keys[0].startswith("📌 Nhiệm vụ mới")
    assert "Báo cáo CCHC tháng 12" in keys[1]
    button = messages[1]["reply_markup"]["inline_keyboard"][0][0]
    assert button["callback_data"] == f"task:{assignment_id}"
    sandbox.press_button(HEAD, messages[1]["message_id"], button["callback_data"])
    asked = await sandbox.wait_for_messages(HEAD, 3, seconds=WAIT)
    assert asked[-1]["text"] == t("task.ask_note", "vi", title="Báo cáo CCHC tháng 12")
    sandbox.send_text(HEAD, "Đã gửi báo cáo số 45/BC-PGD")
    done = await sandbox.wait_for_messages(HEAD, 4, seconds=WAIT)
    assert done[-1]["text"].startswith("Đã ghi nhận Phòng GD&ĐT Đông Sơn hoàn thành nhiệm vụ")
    async with db() as s:
        row = (await s.exec(select(TaskAssignment))).one()
    assert (row.status, row.done_note, row.late) == (
        TaskStatus.DONE,
        "Đã gửi báo cáo số 45/BC-PGD",
        False,
    )
