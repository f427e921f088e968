"""Deadline tasks in chat: assigning, listing, reporting done from the button, reopening."""

from __future__ import annotations

import pytest
from sqlmodel import select

import handlers.router  # noqa: F401
from bot.i18n import t
from bot.messages import codec
from bot.models import Outbox, Role, TaskAssignment, TaskStatus, UnitKind
from tests import factories as f

ADMIN, HEAD, STAFF, OTHER = 9101, 9102, 9103, 9104


@pytest.fixture
async def org(bot_harness):
    async with bot_harness.maker() as s:
        root = await f.unit(s, "SGD", "Sở", kind=UnitKind.DEPARTMENT)
        d1 = await f.unit(s, "XA1", "UBND xã Tân An", kind=UnitKind.COMMUNE, parent=root)
        d2 = await f.unit(s, "XA2", "UBND phường Phú Lợi", kind=UnitKind.COMMUNE, parent=root)
        await f.contact(s, str(ADMIN), await f.person(s, "AD", root, Role.ADMIN))
        await f.contact(s, str(HEAD), await f.person(s, "HD", d1, Role.UNIT_HEAD, name="Hạnh"))
        await f.contact(s, str(STAFF), await f.person(s, "ST", d1, name="An"))
        await f.contact(s, str(OTHER), await f.person(s, "OT", d2, name="Ngọc"))
        await s.commit()
    return bot_harness


async def assign(org) -> None:
    """Assign a task to the commune committees through the flow."""
    await org.send(ADMIN, "/task")
    await org.send(ADMIN, "Báo cáo CCHC quý IV")
    await org.choose(ADMIN, "skip")
    await org.choose(ADMIN, "communes")
    confirm = await org.choose(ADMIN, "5")
    assert "cho 2 đơn vị (UBND xã Tân An, UBND phường Phú Lợi)" in confirm[0]
    assert "XA1" not in confirm[0]
    created = await org.choose(ADMIN, "assign")
    assert created[0].startswith("Đã giao nhiệm vụ #1 cho 2 đơn vị")
    assert created[1] == t("task.flow.unreached", "vi", count=1, names="UBND phường Phú Lợi")


async def test_assign_list_and_report_done_from_the_button(org):
    await assign(org)
    async with org.maker() as s:
        notices = (await s.exec(select(Outbox).where(Outbox.kind == "task"))).all()
    assert [n.chat_id for n in notices] == [str(HEAD)]  # XA2 has no head: reported above
    listing = await org.send(STAFF, "/tasks")
    assert "Báo cáo CCHC quý IV" in listing[0]
    head_notice = next(n for n in notices if n.chat_id == str(HEAD))
    button = codec.loads(head_notice.payload).buttons[0][0].action
    ask = await org.press(STAFF, button)
    assert ask[0] == t("task.ask_note", "vi", title="Báo cáo CCHC quý IV")
    done = await org.send(STAFF, "Đã gửi báo cáo số 12/BC")
    assert done[0].startswith("Đã ghi nhận UBND xã Tân An hoàn thành nhiệm vụ")
    assert await org.press(OTHER, button) == [t("task.error.not_your_unit", "vi")]
    async with org.maker() as s:
        row = await s.get(TaskAssignment, int(button.split(":")[1]))
    assert (row.status, row.done_note, row.late) == (
        TaskStatus.DONE,
        "Đã gửi báo cáo số 12/BC",
        False,
    )
    assert await org.send(STAFF, "/tasks") == [t("task.none", "vi", unit="UBND xã Tân An")]


async def test_done_command_and_reopen(org):
    await assign(org)
    async with org.maker() as s:
        row = (await s.exec(select(TaskAssignment).where(TaskAssignment.unit_id == 2))).one()
    assert (await org.send(STAFF, f"/done {row.id} xong"))[0].startswith("Đã ghi nhận")
    assert await org.send(STAFF, f"/reopen {row.id} thiếu") == [t("errors.forbidden", "vi")]
    assert await org.send(HEAD, f"/reopen {row.id}") == [
        t("errors.usage", "vi", usage=t("task.reopen_usage", "vi"))
    ]
    reopened = await org.send(HEAD, f"/reopen {row.id} Thiếu số liệu tháng 12")
    assert reopened == [t("task.reopened_ok", "vi", id=row.id, unit="UBND xã Tân An")]
    assert await org.send(STAFF, "/done abc") == [
        t("errors.usage", "vi", usage=t("task.done_usage", "vi"))
    ]


async def test_staff_cannot_assign(org):
    assert await org.send(STAFF, "/task") == [t("errors.forbidden", "vi")]


async def test_typed_steps_a_number_of_days_is_that_many_days(org, clock):
    from bot.channels.render import DEFAULT_TZ, format_value
    from bot.services.calendar import WorkCalendar

    await org.send(ADMIN, "/task")
    await org.send(ADMIN, "Báo cáo CCHC quý IV")
    await org.send(ADMIN, "Bỏ qua")
    nobody = await org.send(ADMIN, "1")  # «1. Các phòng thuộc Sở»: none in this department
    kind = t("directive.flow.target_offices", "vi")
    assert nobody[0] == t("task.error.no_units", "vi", kind=kind)
    await org.send(ADMIN, "3")  # «3. UBND các xã, phường»
    confirm = await org.send(ADMIN, "10")  # «10. 10 ngày làm việc»
    due = WorkCalendar().close_of_business(clock.now(), 10)
    assert format_value(due, "vi", DEFAULT_TZ) in confirm[0]
    assert "cho 2 đơn vị (UBND xã Tân An, UBND phường Phú Lợi)" in confirm[0]
    assert (await org.send(ADMIN, "1"))[0].startswith("Đã giao nhiệm vụ #1 cho 2 đơn vị")


async def test_a_due_date_in_tet_is_held_until_moved_or_changed(org):
    await org.send(ADMIN, "/task")
    await org.send(ADMIN, "Báo cáo đầu năm")
    await org.choose(ADMIN, "skip")
    await org.choose(ADMIN, "communes")
    held = await org.send(ADMIN, "08/02/2027")  # the third day of Tết
    reason = t(
        "calendar.not_working_holiday",
        "vi",
        day="08/02/2027",
        next_day="11/02/2027",
        holiday="Mùng ba Tết Nguyên Đán",
    )
    assert held[0] == t("calendar.flow.ask_move", "vi", reason=reason, next_day="11/02/2027")
    async with org.maker() as s:
        assert (await s.exec(select(TaskAssignment))).first() is None
    saturday = await org.send(ADMIN, "13/02/2027 10:00")  # typing another date answers again
    assert saturday[0].startswith("Ngày 13/02/2027 là thứ Bảy hoặc Chủ nhật")
    confirm = await org.choose(ADMIN, "move")
    assert "hạn 10:00 15/02/2027" in confirm[0]
    created = await org.choose(ADMIN, "assign")
    assert created[0].startswith("Đã giao nhiệm vụ")
    async with org.maker() as s:
        rows = (await s.exec(select(TaskAssignment))).all()
    assert {r.due_at.strftime("%Y-%m-%d %H:%M") for r in rows} == {"2027-02-15 03:00"}


async def test_one_number_per_task_for_the_admin_the_head_and_the_digest(org):
    await assign(org)  # task #1, to PGD1 and PGD2
    await org.send(ADMIN, "/task")
    await org.send(ADMIN, "Rà soát thủ tục")
    await org.choose(ADMIN, "skip")
    await org.choose(ADMIN, "communes")
    await org.choose(ADMIN, "5")
    created = await org.choose(ADMIN, "assign")
    assert created[0].startswith("Đã giao nhiệm vụ #2 cho 2 đơn vị")
    listing = await org.send(HEAD, "/tasks")
    assert "#2 Rà soát thủ tục" in listing[0]
    assert "#3" not in listing[0]
    assert "#4" not in listing[0]
    done = await org.send(HEAD, "/done 2 xong")
    assert done[0].startswith("Đã ghi nhận UBND xã Tân An hoàn thành nhiệm vụ «Rà soát thủ tục»")
    which = await org.send(ADMIN, "/reopen 2 thiếu số liệu")
    assert which == [t("task.error.which_unit", "vi", id=2, codes="XA1, XA2")]
    reopened = await org.send(ADMIN, "/reopen 2 xa1 thiếu số liệu")
    assert reopened == [t("task.reopened_ok", "vi", id=2, unit="UBND xã Tân An")]
    async with org.maker() as s:
        rows = (await s.exec(select(TaskAssignment).where(TaskAssignment.task_id == 2))).all()
    assert {r.status for r in rows} == {TaskStatus.OPEN}
    assert all(r.id != 2 for r in rows)  # the number people use is not the assignment's
