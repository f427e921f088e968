"""Vietnamese register: forms of address, step headers, numbers, times and the order of names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.channels.render import plain, render
from bot.i18n import catalog
from bot.i18n.formats import FormalTime, formal_time, format_number
from bot.messages import OutboundMessage
from bot.messages.codec import dumps, loads
from bot.services.org.names import by_name, name_sort_key

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
STEP = re.compile(r"(?i)\bbước\s*\d+\s*/\s*\d+")
STEP_HEADER = re.compile(r"(?:^|\n)Bước (\d+)/(\d+) – \S[^\n]*(?:\n|$)")


def test_no_vietnamese_message_addresses_the_reader_as_ban():
    offenders = [k for k, v in catalog("vi").items() if re.search(r"\b[Bb]ạn\b", v)]
    assert offenders == []


def test_messages_for_one_audience_use_its_form_of_address():
    vi = catalog("vi")
    for key in ("start.welcome_staff", "start.linked", "stop.done_staff", "text.hint_staff"):
        assert "đồng chí" in vi[key].lower(), key
    for key in ("start.welcome_citizen", "stop.done_citizen", "text.hint_citizen"):
        assert "Ông/Bà" in vi[key], key


@pytest.mark.parametrize("locale", ["vi", "en"])
def test_every_step_header_has_one_shape(locale):
    word = "Bước" if locale == "vi" else "Step"
    steps = {k: v for k, v in catalog(locale).items() if STEP.search(v.replace("Step", "Bước"))}
    assert len(steps) >= 20
    for key, text in steps.items():
        shaped = text if locale == "vi" else text.replace(word, "Bước")
        header = STEP_HEADER.search(shaped)
        assert header is not None, key
        assert int(header.group(1)) <= int(header.group(2)), key
        assert len(STEP.findall(shaped)) == 1, key


@pytest.mark.parametrize(
    ("value", "locale", "shown"),
    [
        (0.5, "vi", "0,5"),
        (0.04, "vi", "0"),
        (12.25, "vi", "12,3"),
        (Decimal("1234.5"), "vi", "1.234,5"),
        (1234567, "vi", "1.234.567"),
        (2.0, "vi", "2"),
        (-0.5, "vi", "-0,5"),
        (0.5, "en", "0.5"),
        (1234.5, "en", "1,234.5"),
    ],
)
def test_numbers_are_written_with_the_locale_s_decimal_mark(value, locale, shown):
    assert format_number(value, locale) == shown


def test_a_float_parameter_is_rendered_with_a_decimal_comma():
    text = render(OutboundMessage("directive.status_median", {"hours": 0.5}), "vi", escape=plain)
    assert "0,5 giờ" in text
    assert "0.5" not in text


def test_formal_notices_write_hours_then_the_date():
    moment = datetime(2026, 12, 1, 21, 55, tzinfo=UTC)
    assert formal_time(moment, TZ) == "04 giờ 55, ngày 02/12/2026"
    stored = loads(dumps(OutboundMessage("errors.usage", {"usage": FormalTime(moment)})))
    assert render(stored, "vi", escape=plain) == "Cách dùng: 04 giờ 55, ngày 02/12/2026"


def test_names_sort_by_given_name_then_family_and_middle_names_in_vietnamese_order():
    names = [
        "Đỗ Văn Đức",
        "Nguyễn Thị Ánh",
        "Trần Văn An",
        "Lê Thị Dung",
        "Phạm Minh Đức",
        "Nguyễn Văn Ân",
        "Bùi Thị Ăn",
        "Võ Thị Em",
        "Lê Thị Anh",
        "Đặng Văn Ơn",
        "Hồ Văn Ôn",
        "Mai Văn On",
    ]
    assert by_name(names, lambda n: n) == [
        "Trần Văn An",
        "Lê Thị Anh",
        "Nguyễn Thị Ánh",
        "Bùi Thị Ăn",
        "Nguyễn Văn Ân",
        "Lê Thị Dung",
        "Đỗ Văn Đức",
        "Phạm Minh Đức",
        "Võ Thị Em",
        "Mai Văn On",
        "Hồ Văn Ôn",
        "Đặng Văn Ơn",
    ]


def test_the_same_given_and_family_name_falls_back_to_the_middle_name():
    assert name_sort_key("Nguyễn Thị Lan") < name_sort_key("Nguyễn Văn Lan")
    assert name_sort_key("Lan") < name_sort_key("Nguyễn Lan")


def test_directive_status_shows_median_delays_with_a_decimal_comma_or_in_minutes():
    from datetime import date

    from bot.models import Directive, Unit, UnitKind
    from bot.services.directives.directives import Status, UnitStatus
    from handlers.directives import status_message

    unit = Unit(code="VP", name="Văn phòng Sở", kind=UnitKind.OFFICE)
    d = Directive(number="1/SGDĐT", title="T", summary="", issued_on=date(2026, 12, 1))
    result = Status(d, [UnitStatus(unit, 3, 2, 1800.0), UnitStatus(unit, 3, 2, 5400.0)])
    text = render(status_message(result), "vi", escape=plain)
    assert "trung vị 30 phút" in text
    assert "trung vị 1,5 giờ" in text
    assert "1.5" not in text


async def test_a_unit_s_people_are_listed_in_vietnamese_name_order(maker):
    from bot.services.org import org
    from bot.services.org.access import system_actor
    from tests import factories as f

    async with maker() as s:
        unit = await f.unit(s, "VP", "Văn phòng Sở")
        for i, name in enumerate(["Đỗ Văn Đức", "Trần Thị Dung", "Lê Văn Em", "Nguyễn Văn An"]):
            await f.person(s, f"CB{i}", unit, name=name)
        await s.commit()
        _, lines = await org.unit_people(s, actor=system_actor("test"), unit_code="VP")
    assert [line.person.full_name for line in lines] == [
        "Nguyễn Văn An",
        "Trần Thị Dung",
        "Đỗ Văn Đức",
        "Lê Văn Em",
    ]


def test_the_sipas_elements_carry_their_full_names():
    from bot.services.ratings.ratings import ELEMENTS

    assert [catalog("vi")[f"rating.element.{k}"] for k in ELEMENTS] == [
        "Tiếp cận dịch vụ",
        "Thủ tục hành chính",
        "Công chức trực tiếp giải quyết công việc",
        "Kết quả cung ứng dịch vụ hành chính công",
        "Tiếp nhận, xử lý ý kiến góp ý, phản ánh, kiến nghị",
    ]


def test_a_bad_anonymous_rating_is_told_the_head_s_time_but_not_promised_an_answer():
    from bot.models import Rating
    from bot.services.ratings.ratings import follow_up_notice

    due = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    bad = Rating(unit_id=1, channel="telegram", voter_hash="x", overall=1, created_at=due)
    notice = follow_up_notice(bad, unit="Bộ phận Một cửa", days=3, due=due)
    assert notice is not None
    text = render(notice, "vi", escape=plain)
    assert text.startswith("Thủ trưởng Bộ phận Một cửa sẽ xem xét, xử lý ý kiến của Ông/Bà trong 3")
    assert "17:00 04/12/2026" in text
    assert "ẩn danh" in text
    good = Rating(unit_id=1, channel="telegram", voter_hash="x", overall=3, created_at=due)
    assert follow_up_notice(good, unit="X", days=3, due=due) is None


def test_a_directive_notice_gives_its_deadline_as_formal_notices_do():
    from datetime import date

    from bot.models import Directive
    from bot.services.directives.directives import notice

    d = Directive(
        number="125/SGDĐT-VP",
        issued_on=date(2026, 12, 2),
        title="Khảo sát",
        summary="Tóm tắt",
        ack_deadline=datetime(2026, 12, 4, 10, 0, tzinfo=UTC),
    )
    stored = loads(dumps(notice(d, recipient_id=1, units="Văn phòng Sở")))
    text = render(stored, "vi", escape=plain)
    assert "xác nhận trước 17 giờ 00, ngày 04/12/2026." in text
