"""/report in chat, its chart, and the monthly report: on the seeded November 2026 scoreboard.

The figures are those of tests/test_reports_scoreboard.py (units A–E, at least 2 ratings to rank).
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest
from matplotlib import font_manager, ft2font
from matplotlib.text import Text as MplText
from openpyxl import load_workbook
from sqlmodel import select

import handlers.router  # noqa: F401
from bot.channels.render import plain, render
from bot.config import Settings
from bot.i18n import t
from bot.messages import codec
from bot.models import Attachment, Channel, Contact, JobLease, Outbox, Role
from bot.services.org.access import Actor, system_actor
from bot.services.reports import chart, leadership
from bot.services.reports.xlsx import data_rows
from tests import factories as f
from tests.conftest import BotHarness
from tests.test_reports_scoreboard import HANOI, NOVEMBER, NOW, local, seeded  # noqa: F401

SETTINGS = Settings(reports={"min_ratings": 2, "trend_periods": 4})
ADMIN, HEAD, STAFF, CITIZEN = 8101, 8102, 8103, 8104
PERIOD = "01/11/2026-30/11/2026"


@pytest.fixture
async def org(maker, clock, seeded) -> AsyncIterator[BotHarness]:  # noqa: F811
    """The seeded units, an admin, a head of A, staff of A and a citizen, on Telegram."""
    from telegram.request import HTTPXRequest

    from bot.app import build_application
    from tests.fakes import TOKEN, FakeBotAPI

    async with maker() as s:
        a = seeded["A"]
        await f.contact(s, str(ADMIN), await f.person(s, "ad", None, Role.ADMIN))
        await f.contact(s, str(HEAD), await f.person(s, "ha", a, Role.UNIT_HEAD))
        await f.contact(s, str(STAFF), await f.person(s, "sa", a))
        await f.contact(s, str(CITIZEN))
        await s.commit()
    clock.set(NOW)
    api = FakeBotAPI()
    settings = SETTINGS.model_copy(
        update={"telegram": Settings(telegram={"token": TOKEN}).telegram}
    )
    request = HTTPXRequest(httpx_kwargs={"transport": api.transport()})
    app = build_application(settings, maker=maker, clock=clock, request=request, rate_limit=False)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    yield BotHarness(app, api, maker)
    await app.shutdown()


async def queued(maker, chat: int) -> list[tuple[str, str, Attachment | None]]:
    """Return the report rows queued to a chat: (key, media, attachment)."""
    async with maker() as s:
        rows = (
            await s.exec(
                select(Outbox)
                .where(Outbox.kind == "report", Outbox.chat_id == str(chat))
                .order_by(Outbox.id)
            )
        ).all()
        out = []
        for row in rows:
            message = codec.loads(row.payload)
            file = await s.get(Attachment, message.attachment_id) if message.attachment_id else None
            out.append((message.key, message.media, file))
        return out


async def test_leadership_gets_every_unit_a_chart_and_the_xlsx(org):
    (text,) = await org.send(ADMIN, f"/report {PERIOD}")
    assert "Kết quả thực hiện cải cách hành chính – Tất cả các đơn vị" in text
    assert "Từ ngày 01/11/2026 đến ngày 30/11/2026; so với kỳ trước từ ngày 02/10/2026" in text
    assert "(3/5 đơn vị được xếp hạng)" in text
    assert "1. Đơn vị B: 100,00 điểm\n1. Đơn vị C: 100,00 điểm\n" in text
    assert "3. Đơn vị A: 45,83 điểm (tăng 33,33 điểm so với kỳ trước)" in text
    assert "Chưa đủ lượt đánh giá để xếp hạng (dưới 2 lượt): Đơn vị D, Đơn vị E." in text
    assert "• Xác nhận văn bản chỉ đạo: 4/6 (66,7%)" in text
    assert "• Hài lòng: 7/9 lượt đánh giá (77,8%)" in text
    assert t("report.files_follow", "vi") in text
    (photo, document) = await queued(org.maker, ADMIN)
    assert photo[:2] == ("report.chart_caption", "photo")
    assert photo[2].file_name == "bieu-do-thi-dua-all-20261101-20261130.png"
    assert photo[2].data.startswith(b"\x89PNG\r\n\x1a\n")
    assert document[:2] == ("report.xlsx_caption", "document")
    sheet = load_workbook(BytesIO(document[2].data))["Thi đua"]
    assert [r[1:4] for r in data_rows(sheet)[:3]] == [
        ("Đơn vị B", 100.0, 1),
        ("Đơn vị C", 100.0, 1),
        ("Đơn vị A", 45.83, 3),
    ]


async def test_a_head_gets_their_unit_only(org):
    (text,) = await org.send(HEAD, f"/report {PERIOD}")
    assert "– Đơn vị A</b>" in text
    assert "Xếp hạng thi đua: thứ 3, 45,83 điểm (tăng 33,33 điểm so với kỳ trước)." in text
    assert "• Xác nhận văn bản chỉ đạo: 2/4 (50,0%)" in text
    assert "Đơn vị B" not in text
    (_, document) = await queued(org.maker, HEAD)
    rows = data_rows(load_workbook(BytesIO(document[2].data))["Thi đua"])
    assert [r[1:4] for r in rows] == [("Đơn vị A", 45.83, 3)]
    assert document[2].file_name == "thi-dua-A-20261101-20261130.xlsx"


async def test_who_may_not_ask_is_refused_in_their_language(org):
    assert await org.send(HEAD, f"/report B {PERIOD}") == [
        t("errors.forbidden_unit", "vi", unit="Đơn vị B")
    ]
    assert await org.send(STAFF, "/report") == [t("errors.forbidden", "vi")]
    assert await org.send(CITIZEN, "/report") == [t("errors.forbidden", "vi")]
    usage = [t("errors.usage", "vi", usage=t("report.usage", "vi"))]
    assert await org.send(ADMIN, "/report 45d") == usage
    assert await org.send(ADMIN, "/report A B") == usage
    assert await queued(org.maker, HEAD) == []
    assert await queued(org.maker, STAFF) == []


async def test_a_leader_may_name_one_unit(org):
    (text,) = await org.send(ADMIN, f"/report e {PERIOD}")
    assert "– Đơn vị E</b>" in text
    assert "Chưa xếp hạng thi đua: mới có 1 lượt đánh giá, cần ít nhất 2 lượt" in text


async def test_on_zalo_the_summary_says_where_to_get_the_files(maker, seeded):  # noqa: F811
    async with maker() as s:
        contact = Contact(channel=Channel.ZALO, external_id="z1", locale="vi", created_at=f.T0)
        s.add(contact)
        await s.flush()
        report = await leadership.report_for(
            s, actor=system_actor("t"), window=NOVEMBER, now=NOW, settings=SETTINGS
        )
        message = await leadership.deliver(
            s, contact=contact, report=report, now=NOW, settings=SETTINGS
        )
        await s.flush()
        rows = (await s.exec(select(Outbox))).all()
    assert rows == []
    text = render(message, "vi", escape=plain)
    assert t("report.files_elsewhere", "vi") in text
    assert "3. Đơn vị A: 45,83 điểm" in text


async def test_the_trend_goes_back_period_by_period(maker, seeded):  # noqa: F811
    head = Actor(name="h", roles=frozenset({Role.UNIT_HEAD}), unit=seeded["A"])
    async with maker() as s:
        report = await leadership.report_for(
            s, actor=head, window=NOVEMBER, now=NOW, settings=SETTINGS
        )
    # Each period is the same length as the one after it, just before it.
    labels = [p.label for p in report.trend]
    assert labels == ["03/08–01/09", "02/09–01/10", "02/10–31/10", "11/2026"]
    assert [p.score for p in report.trend][-2:] == [
        report.board.rows[0].previous.score,
        report.board.rows[0].standing.score,
    ]


# The chart ------------------------------------------------------------------------------------


def _glyphs_missing(text: MplText) -> list[str]:
    """Return the characters of a label that the font it is drawn with has no glyph for."""
    path = font_manager.findfont(text.get_fontproperties(), fallback_to_default=False)
    face = ft2font.FT2Font(path)
    return [c for c in text.get_text() if not c.isspace() and face.get_char_index(ord(c)) == 0]


async def test_vietnamese_labels_are_drawn_with_a_font_that_has_their_marks(maker, seeded):  # noqa: F811
    async with maker() as s:
        report = await leadership.report_for(
            s, actor=system_actor("t"), window=NOVEMBER, now=NOW, settings=SETTINGS
        )
    fig = chart.figure(report.board, report.trend, scope="Tất cả các đơn vị", locale="vi")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = chart.png(fig)
    assert not [w for w in caught if "missing" in str(w.message).lower()]
    assert data.startswith(b"\x89PNG")
    texts = [x for x in fig.findobj(MplText) if x.get_text()]
    shown = "".join(x.get_text() for x in texts)
    for word in ("Xếp hạng các đơn vị", "Diễn biến điểm thi đua", "Đơn vị", "Điểm (thang 100)"):
        assert word in shown
    assert any(unicodedata.combining(c) == 0 and c in "ếạễđ" for c in shown)
    for label in texts:
        assert "DejaVu" in font_manager.findfont(label.get_fontproperties())
        assert _glyphs_missing(label) == [], label.get_text()


def test_the_glyph_check_catches_a_font_without_the_marks():
    """The check itself: a font lacking Vietnamese letters (cmr10, shipped) is reported."""
    label = MplText(text="Xếp hạng")
    label.set_fontfamily("cmr10")
    assert "ế" in _glyphs_missing(label)


# The monthly report -----------------------------------------------------------------------------


async def test_the_monthly_report_goes_once_per_fire_to_heads_and_leadership(org, maker):
    first = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 08:00 in Hanoi on the 1st
    async with maker() as s:
        early = await leadership.monthly_sweep(
            s, now=first - timedelta(minutes=1), settings=SETTINGS
        )
        await s.commit()
    assert early == 0  # the rule has not fired yet
    async with maker() as s:
        sent = await leadership.monthly_sweep(
            s, now=first + timedelta(minutes=1), settings=SETTINGS
        )
        await s.commit()
    async with maker() as s:
        again = await leadership.monthly_sweep(
            s, now=first + timedelta(minutes=2), settings=SETTINGS
        )
        await s.commit()
        marker = await s.get(JobLease, leadership.MARKER)
    assert (sent, again) == (2, 0)  # the head of A and the admin; once
    assert marker is not None
    head = await queued(maker, HEAD)
    assert [k for k, _, _ in head] == [
        "report.summary_unit",
        "report.chart_caption",
        "report.xlsx_caption",
    ]
    admin = await queued(maker, ADMIN)
    assert admin[0][0] == "report.summary_all"
    async with maker() as s:
        rows = (await s.exec(select(Outbox).where(Outbox.kind == "report"))).all()
    assert {r.priority for r in rows} == {leadership.BULK}  # behind what people ask for
    assert {r.due_at for r in rows} == {first + timedelta(minutes=1)}  # a Tuesday, 08:01
    async with maker() as s:
        row = (
            await s.exec(select(Outbox).where(Outbox.chat_id == str(ADMIN)).order_by(Outbox.id))
        ).first()
    text = render(codec.loads(row.payload), "vi", escape=plain)
    assert "<b>Báo cáo tháng 11/2026: kết quả thực hiện cải cách hành chính – Tất cả" in text
    assert "3. Đơn vị A: 45,83 điểm" in text
    assert await queued(maker, STAFF) == []


async def test_the_job_runner_sweeps_the_monthly_report(maker, seeded):  # noqa: F811
    from types import SimpleNamespace

    from bot.clock import FakeClock
    from jobs import sweeps

    names: list[str] = []
    runner = SimpleNamespace(add_sweep=lambda name, fn, every: names.append(name))
    sweeps.register(runner, SimpleNamespace(settings=SETTINGS))
    assert "reports.monthly" in names
    clock = FakeClock(datetime(2026, 12, 1, 1, 5, tzinfo=UTC))
    runtime = SimpleNamespace(maker=maker, clock=clock, settings=SETTINGS)
    assert await sweeps.send_monthly_reports(runtime) == 0  # nobody to send to, but claimed
    async with maker() as s:
        lease = await s.get(JobLease, leadership.MARKER)
    assert lease is not None


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ('[reports]\nmonthly_cron = "every month"\n', "reports.monthly_cron", "config.error.cron"),
        (
            "[reports]\ntrend_periods = 1\n",
            "reports.trend_periods",
            "config.error.greater_than_equal",
        ),
        ('[reports]\nsigner_title = ""\n', "reports.signer_title", "config.error.string_too_short"),
    ],
)
def test_check_config_names_a_bad_report_key(tmp_path, body, key, reason):
    from bot.config import ConfigError, load_settings

    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [(p.key, p.reason) for p in info.value.problems] == [(key, reason)]


async def test_a_head_on_zalo_gets_the_summary_and_where_to_find_the_files(
    maker,
    clock,
    seeded,  # noqa: F811
):
    from tests.test_zalo_inbound import ZaloBot
    from tests.zalo_fake import FakeZaloApi

    uid = "8801000000000000042"
    async with maker() as s:
        head = await f.person(s, "hz", seeded["A"], Role.UNIT_HEAD)
        s.add(Contact(channel=Channel.ZALO, external_id=uid, person_id=head.id, created_at=f.T0))
        await s.commit()
    api = FakeZaloApi()
    await api.start()
    bot = ZaloBot(api, maker, clock)
    try:
        texts = await bot.send(uid, f"/report {PERIOD}")
    finally:
        await bot.channel.close()
        await api.close()
    text = "\n".join(texts)
    assert "Kết quả thực hiện cải cách hành chính – Đơn vị A" in text
    assert "<b>" not in text
    assert t("report.files_elsewhere", "vi") in text
    assert await queued(maker, int(uid)) == []


def test_a_long_scoreboard_is_cut_short_in_the_summary():
    from decimal import Decimal

    from bot.models import Unit
    from bot.services.reports.scoreboard import Figures, Scoreboard, Standing, UnitRow

    def row(n: int, rank: int | None) -> UnitRow:
        unit = Unit(id=n, code=f"U{n:02d}", name=f"Trường {n:02d}", kind="school")
        standing = Standing(Decimal("90.00") if rank else None, rank is not None, rank)
        return UnitRow(unit, Figures(), standing, Figures(), Standing(None, False, None))

    rows = tuple(row(n, n if n <= 12 else None) for n in range(1, 33))
    board = Scoreboard(
        window=NOVEMBER,
        previous_window=NOVEMBER.previous(),
        rows=rows,
        totals=Figures(),
        previous_totals=Figures(),
        weights={"ack": 1.0},
        min_ratings=10,
    )
    report = leadership.Report(board, (), None)
    text = render(leadership.summary(report, files=True), "vi", escape=plain)
    assert "(12/32 đơn vị được xếp hạng)" in text
    assert "10. Trường 10: 90,00 điểm\n… và 2 đơn vị khác (xem đầy đủ trong tệp XLSX)." in text
    assert "11. Trường 11" not in text
    assert "Trường 27 và 5 đơn vị khác." in text
    assert "Trường 28" not in text
    assert "• Xác nhận văn bản chỉ đạo: 0/0 (chưa có số liệu)" in text
