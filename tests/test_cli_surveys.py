"""`reformbot survey …` on a SQLite file with the example department, on a fake clock."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import func, select
from typer.testing import CliRunner

from bot.cli.main import app
from bot.cli.surveys import survey_app
from bot.clock import FakeClock
from bot.db import create_engine, session_maker
from bot.i18n import t
from bot.models import Campaign, CampaignRecipient, Outbox, Questionnaire
from tests.cli_console import plain_consoles

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def hanoi(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run `survey` commands against a fresh SQLite file with the example department imported."""
    monkeypatch.setattr("bot.cli.surveys.CLOCK", FakeClock(hanoi("2026-11-30 09:00")))
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", url)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    plain_consoles(monkeypatch)  # fields, not Rich's width property (its undo pins a width)
    runner = CliRunner()
    assert runner.invoke(app, ["import", "units", str(EXAMPLES / "units.csv")]).exit_code == 0
    assert runner.invoke(app, ["import", "staff", str(EXAMPLES / "staff.csv")]).exit_code == 0

    def invoke(*args: str):
        return runner.invoke(survey_app, list(args))

    invoke.url = url
    return invoke


def count(url: str, model, *where) -> int:
    async def main() -> int:
        engine = create_engine(url)
        async with session_maker(engine)() as s:
            n = (await s.exec(select(func.count()).select_from(model).where(*where))).one()
        await engine.dispose()
        return n

    return asyncio.run(main())


def test_import_the_example_dry_then_for_real_then_again(cli):
    dry = cli("import", str(EXAMPLES / "survey_par_index.toml"), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Chạy thử: phiếu «Khảo sát nhận thức về cải cách hành chính năm 2026»" in dry.output
    assert count(cli.url, Questionnaire) == 0
    done = cli("import", str(EXAMPLES / "survey_par_index.toml"))
    assert done.exit_code == 0, done.output
    assert "gồm 13 câu hỏi" in done.output
    again = cli("import", str(EXAMPLES / "survey_par_index.toml"))
    assert again.exit_code == 1
    assert "Đã có phiếu câu hỏi mã “PAR2026”" in " ".join(again.output.split())


def test_a_broken_questionnaire_lists_its_problems_and_keeps_nothing(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('code = "X"\ntitle = "X"\n[[question]]\nid = "A"\ntext = "?"\ntype = "hỏi"\n')
    result = cli("import", str(bad))
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "Loại câu hỏi “hỏi” không hợp lệ" in out
    assert "Phiếu có 1 lỗi." in out
    assert count(cli.url, Questionnaire) == 0
    assert cli("import", str(tmp_path / "none.toml")).exit_code == 2


def test_launch_to_two_units_close_and_export(cli, tmp_path):
    assert cli("import", str(EXAMPLES / "survey_par_index.toml")).exit_code == 0
    launched = cli(
        "launch",
        "--title", "Khảo sát PAR INDEX 2026",
        "--questionnaire", "PAR2026",
        "--audience", "units:SGD.VP,SGD.TCCB",
        "--closes", "14/12/2026",
    )  # fmt: skip
    assert launched.exit_code == 0, launched.output
    assert "Đã tạo đợt số 1 «Khảo sát PAR INDEX 2026»" in launched.output
    assert count(cli.url, CampaignRecipient) > 0
    assert count(cli.url, Outbox, Outbox.kind == "survey_invite") == 0  # nobody linked a chat
    hidden = cli("results", "1")
    assert hidden.exit_code == 1
    assert "chỉ được xem sau khi đợt khảo sát kết thúc" in " ".join(hidden.output.split())
    assert cli("close", "1").exit_code == 0
    shown = cli("results", "1")
    assert t("survey.results_too_few", "vi", title="Khảo sát PAR INDEX 2026", minimum=5) in (
        " ".join(shown.output.split())
    )
    path = tmp_path / "kq.xlsx"
    assert cli("results", "1", "--xlsx", str(path)).exit_code == 0
    book = load_workbook(io.BytesIO(path.read_bytes()))
    assert book.sheetnames == ["Kết quả", "Ý kiến"]
    assert count(cli.url, Campaign, Campaign.salt.is_(None)) == 1


def test_launch_refusals_name_what_is_wrong(cli):
    bad = cli("launch", "--title", "X", "--audience", "mọi người", "--closes", "5")
    assert bad.exit_code == 2
    assert "Đối tượng «mọi người» không hợp lệ" in " ".join(bad.output.split())
    unknown = cli("launch", "--title", "X", "--audience", "all", "--closes", "5",
                  "--questionnaire", "NONE")  # fmt: skip
    assert unknown.exit_code == 1
    assert "Không tìm thấy phiếu câu hỏi mã «NONE»" in " ".join(unknown.output.split())
