"""A process keeps the flows it wrote and skips reading them back; a flow changed or closed by
another process meanwhile is caught, and the answer is taken from the database's row."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import event
from sqlmodel import select, update

from bot.i18n import t
from bot.models import Flow, Rating
from bot.services.ratings.service_points import payload_for_counter
from tests.test_ratings import CITIZEN, point

__all__ = ["point"]


async def _open(point) -> None:
    """Scan the counter's code and skip the dossier: the flow waits at the overall level."""
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    await point.choose(CITIZEN, "skip")


async def _elsewhere(point, **values) -> None:
    """Change the citizen's flow row as another process would."""
    async with point.maker() as s:
        await s.exec(update(Flow).values(**values))
        await s.commit()


async def _moved_on_elsewhere(point, clock) -> None:
    """Another process took the overall level (5): the row waits at the first element now."""
    async with point.maker() as s:
        flow = (await s.exec(select(Flow))).one()
    data = {**json.loads(flow.data), "overall": 5, "_history": ["dossier", "overall"]}
    later = clock.now() + timedelta(seconds=1)
    await _elsewhere(point, step="e_access", data=json.dumps(data), updated_at=later)


async def test_the_next_step_does_not_read_the_flow_back(point):
    await _open(point)
    statements: list[str] = []
    engine = point.maker.kw["bind"].sync_engine

    def note(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        assert (await point.choose(CITIZEN, "lv4"))[0].startswith("Tiêu chí 1/5")
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert not [s for s in statements if s.lstrip().upper().startswith("SELECT") and "flow" in s]
    assert [s for s in statements if s.lstrip().upper().startswith("UPDATE FLOW")]


async def test_an_answer_after_another_process_moved_the_flow_goes_to_the_row_s_step(
    point,
    clock,
):
    await _open(point)
    await _moved_on_elsewhere(point, clock)
    clock.advance(timedelta(seconds=2))
    assert (await point.send(CITIZEN, "4"))[0].startswith("Tiêu chí 2/5")  # took the access one
    async with point.maker() as s:
        flow = (await s.exec(select(Flow))).one()
    data = json.loads(flow.data)
    assert (flow.step, data["overall"], data["scores"]) == ("e_procedure", 5, {"access": 4})


async def test_a_button_of_a_step_another_process_answered_does_not_act(
    point,
    clock,
):
    await _open(point)
    button = point.shown(CITIZEN, "lv2")  # the overall level's, as this process showed it
    await _moved_on_elsewhere(point, clock)
    clock.advance(timedelta(seconds=2))
    replies = await point.press(CITIZEN, button)
    assert replies[0] == t("flow.step_done", "vi")
    assert replies[1].startswith("Tiêu chí 1/5")
    async with point.maker() as s:
        flow = (await s.exec(select(Flow))).one()
    assert json.loads(flow.data)["overall"] == 5


async def test_a_flow_closed_by_another_process_is_not_answered_from_memory(point):
    await _open(point)
    async with point.maker() as s:
        await s.delete((await s.exec(select(Flow))).one())
        await s.commit()
    assert await point.send(CITIZEN, "4") == [t("text.hint_citizen", "vi")]
    async with point.maker() as s:
        assert (await s.exec(select(Rating))).first() is None


async def test_typed_nonsense_on_a_flow_moved_elsewhere_is_answered_at_the_row_s_step(
    point,
    clock,
):
    await _open(point)
    await _moved_on_elsewhere(point, clock)
    replies = await point.send(CITIZEN, "9")  # no such level: the step is asked again
    assert replies[0] == t("rating.error.level", "vi")
    assert replies[1].startswith("Tiêu chí 1/5")
