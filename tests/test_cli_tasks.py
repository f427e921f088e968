"""`reformbot task …` on a SQLite file with the example department, on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import func, select
from typer.testing import CliRunner

from bot.cli.main import app
from bot.cli.tasks import task_app
from bot.clock import FakeClock
from bot.db import create_engine, session_maker
from bot.models import Task, TaskAssignee, TaskAssignment, TaskSeries
from tests.cli_console import plain_consoles

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def hanoi(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """Set the command line's clock to a Monday morning."""
    fake = FakeClock(hanoi("2026-11-30 09:00"))
    monkeypatch.setattr("bot.cli.tasks.CLOCK", fake)
    return fake


@pytest.fixture
def cli(tmp_path, monkeypatch, clock):
    """Run `task` commands against a fresh SQLite file with the example department imported."""
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", url)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    plain_consoles(monkeypatch)  # fields, not Rich's width property (its undo pins a width)
    runner = CliRunner()
    assert runner.invoke(app, ["import", "units", str(EXAMPLES / "units.csv")]).exit_code == 0
    assert runner.invoke(app, ["import", "staff", str(EXAMPLES / "staff.csv")]).exit_code == 0

    def invoke(*args: str):
        return runner.invoke(task_app, list(args))

    invoke.url = url
    return invoke


def count(url: str, model) -> int:
    async def main() -> int:
        engine = create_engine(url)
        async with session_maker(engine)() as s:
            n = (await s.exec(select(func.count()).select_from(model))).one()
        await engine.dispose()
        return n

    return asyncio.run(main())


def test_import_the_example_file_dry_then_for_real_then_again(cli):
    file = str(EXAMPLES / "tasks.csv")
    dry = cli("import", file, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Chạy thử: tệp hợp lệ. Khi nhập sẽ giao 5 nhiệm vụ cho 25 lượt đơn vị." in dry.output
    assert count(cli.url, Task) == 0
    done = cli("import", file)
    assert done.exit_code == 0, done.output
    assert "Đã giao 5 nhiệm vụ cho 25 lượt đơn vị." in done.output
    assert "#1 Báo cáo công tác cải cách hành chính quý IV năm 2026 – hạn 17:00 14/12/2026" in (
        done.output
    )
    assert "chưa nhận được thông báo" in done.output  # nobody has linked a chat account yet
    assert (count(cli.url, Task), count(cli.url, TaskAssignment)) == (5, 25)
    assert count(cli.url, TaskAssignee) == 16
    again = cli("import", file)
    assert again.exit_code == 1
    assert "Tệp có 25 lỗi tại 25 dòng" in again.output
    assert count(cli.url, Task) == 5


def test_a_broken_file_lists_rows_and_writes_nothing(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "Mã đơn vị;Nhiệm vụ;Hạn;Người thực hiện\n"
        "UBND.HMY;Báo cáo CCHC;15/12/2026;CB001\n"
        "PGD.NOPE;Báo cáo CCHC;15/12/2026;\n"
        "UBND.HMY;;hôm qua;\n",
        encoding="utf-8",
    )
    result = cli("import", str(bad))
    assert result.exit_code == 1
    lines = [" ".join(line.split("│")[1:3]).split() for line in result.output.splitlines()]
    assert [line[:1] for line in lines if line and line[0].isdigit()] == [
        ["2"],
        ["3"],
        ["4"],
        ["4"],
    ]
    assert "Cán bộ mã “CB001” không thuộc đơn vị UBND.HMY." in result.output
    assert "Không tìm thấy đơn vị có mã “PGD.NOPE”" in result.output
    assert "Tệp có 4 lỗi tại 3 dòng" in result.output
    assert count(cli.url, Task) == 0


def test_an_unreadable_file_exits_2(cli, tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("Mã đơn vị,Nhiệm vụ,Hạn\n".encode("cp1258", errors="replace") + b"\xff\n")
    assert cli("import", str(latin)).exit_code == 2
    assert cli("import", str(tmp_path / "missing.csv")).exit_code == 2


def test_add_with_a_date_or_working_days(cli):
    added = cli(
        "add",
        "--unit",
        "UBND.HNINH",
        "--unit",
        "sgd.motcua",
        "--title",
        "Cập nhật, công khai thủ tục hành chính tại bộ phận một cửa",
        "--due",
        "15/12/2026 16:30",
        "--assignee",
        "CB043",
        "--assignee",
        "CB010",
    )
    assert added.exit_code == 0, added.output
    assert "Đã giao nhiệm vụ số 1" in added.output
    assert "cho 2 đơn vị, hạn 16:30 15/12/2026" in added.output
    assert count(cli.url, TaskAssignee) == 2
    days = cli("add", "--unit", "UBND.HMY", "--title", "Rà soát", "--days", "5")
    assert days.exit_code == 0, days.output
    assert "hạn 17:00 07/12/2026" in days.output


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        ((), 2, "--due hoặc --days"),
        (("--due", "15/12/2026", "--days", "3"), 2, "--due hoặc --days"),
        (("--due", "15/13/2026"), 2, "Hạn “15/13/2026” không hợp lệ"),
        (("--due", "01/11/2026"), 2, "đã qua"),
        (("--days", "5", "--assignee", "CB001"), 1, "không thuộc đơn vị UBND.HMY"),
        (("--days", "5", "--directive", "99"), 1, "Không tìm thấy công văn “99”"),
    ],
)
def test_add_refusals(cli, args, code, text):
    result = cli("add", "--unit", "UBND.HMY", "--title", "Rà soát", *args)
    assert result.exit_code == code
    assert text in result.output
    assert count(cli.url, Task) == 0


def test_add_to_an_unknown_unit(cli):
    result = cli("add", "--unit", "PGD.NOPE", "--title", "x", "--days", "3")
    assert result.exit_code == 1
    assert "PGD.NOPE" in result.output


def test_list_marks_overdue_tasks(cli, clock):
    assert cli("add", "--unit", "UBND.HMY", "--title", "Báo cáo tuần", "--days", "1").exit_code == 0
    assert cli("add", "--unit", "UBND.HMY", "--title", "Báo cáo quý", "--days", "20").exit_code == 0
    assert cli("add", "--unit", "UBND.ANPHU", "--title", "Khác", "--days", "20").exit_code == 0
    clock.set(hanoi("2026-12-04 09:00"))
    listing = cli("list", "--unit", "UBND.HMY")
    assert listing.exit_code == 0, listing.output
    rows = [line for line in listing.output.splitlines() if "UBND." in line]
    assert len(rows) == 2
    assert "Báo cáo tuần" in rows[0]
    assert "quá hạn 3 ngày làm việc" in rows[0]
    assert "đang thực hiện" in rows[1]
    assert "2 nhiệm vụ chưa hoàn thành, 1 nhiệm vụ quá hạn." in listing.output
    assert "3 nhiệm vụ chưa hoàn thành" in cli("list").output
    assert cli("list", "--unit", "NOPE").exit_code == 1


def test_list_with_nothing_open(cli):
    result = cli("list")
    assert result.exit_code == 0
    assert "Không có nhiệm vụ nào chưa hoàn thành." in result.output


def test_series_add_list_stop(cli):
    added = cli(
        "series",
        "add",
        "--unit",
        "UBND.HMY",
        "--unit",
        "UBND.ANPHU",
        "--title",
        "Rà soát thủ tục hành chính của đơn vị",
        "--cron",
        "0 17 25 3,6,9,12 *",
    )
    assert added.exit_code == 0, added.output
    assert "Đã tạo nhiệm vụ định kỳ số 1" in added.output
    assert "Hạn gần nhất: 17:00 25/12/2026" in added.output
    listing = cli("series", "list")
    assert "#1 Rà soát thủ tục hành chính của đơn vị – lịch “0 17 25 3,6,9,12 *”" in listing.output
    assert "UBND.ANPHU, UBND.HMY; hạn tiếp theo 17:00 25/12/2026" in listing.output
    stopped = cli("series", "stop", "1")
    assert stopped.exit_code == 0
    assert "Đã dừng nhiệm vụ định kỳ số 1" in stopped.output
    assert "đã dừng" in cli("series", "list").output
    assert cli("series", "stop", "1").exit_code == 1
    assert cli("series", "stop", "9").exit_code == 1


def test_series_bad_rule(cli):
    result = cli("series", "add", "--unit", "UBND.HMY", "--title", "x", "--cron", "0 17 32 * *")
    assert result.exit_code == 1
    assert "Lịch “0 17 32 * *” không hợp lệ" in result.output
    assert count(cli.url, TaskSeries) == 0
    empty = cli("series", "list")
    assert "Chưa có nhiệm vụ định kỳ nào." in empty.output


def test_add_on_a_holiday_is_refused_naming_the_next_working_day_or_moved(cli):
    refused = cli("add", "--unit", "UBND.HMY", "--title", "Rà soát", "--due", "08/02/2027")
    assert refused.exit_code == 2
    assert "Ngày 08/02/2027 là ngày nghỉ lễ, Tết (Mùng ba Tết Nguyên Đán)" in refused.output
    assert "Ngày làm việc kế tiếp là 11/02/2027" in refused.output
    assert "--next-working-day" in refused.output
    assert count(cli.url, Task) == 0
    moved = cli(
        "add", "--unit", "UBND.HMY", "--title", "Rà soát", "--due", "08/02/2027",
        "--next-working-day",
    )  # fmt: skip
    assert moved.exit_code == 0, moved.output
    assert "sang ngày làm việc kế tiếp 11/02/2027" in moved.output
    assert "hạn 17:00 11/02/2027" in moved.output


def test_import_refuses_a_row_due_on_a_saturday_unless_moved(cli, tmp_path):
    file = tmp_path / "tasks.csv"
    file.write_text(
        "Mã đơn vị,Tên nhiệm vụ,Hạn hoàn thành\nUBND.HMY,Rà soát,12/12/2026\n", encoding="utf-8"
    )
    refused = cli("import", str(file))
    assert refused.exit_code == 1
    assert "thứ Bảy hoặc Chủ nhật" in refused.output
    assert count(cli.url, Task) == 0
    moved = cli("import", str(file), "--next-working-day")
    assert moved.exit_code == 0, moved.output
    assert "hạn 17:00 14/12/2026" in moved.output
