"""Questionnaires: the example, every type, conditions, problems named by question and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook

from bot.i18n import t
from bot.services.org.imports.table import ImportFileError
from bot.services.surveys import questionnaire as q

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "survey_par_index.toml"


def toml(tmp_path, body: str, head: str = 'code = "T1"\ntitle = "Thử"\n') -> Path:
    """Write a questionnaire file and return its path."""
    path = tmp_path / "q.toml"
    path.write_text(head + body, encoding="utf-8")
    return path


def test_the_example_covers_the_six_areas_of_the_reform_index_and_every_type():
    checked = q.read_toml(EXAMPLE)
    assert checked.ok, checked.problems
    form = checked.definition
    assert form.code == "PAR2026"
    assert {x.area for x in form.questions} == {
        "Chất lượng văn bản quy phạm pháp luật",
        "Tổ chức bộ máy hành chính",
        "Chế độ công vụ",
        "Cải cách tài chính công",
        "Hiện đại hóa nền hành chính",
        "Cải cách thủ tục hành chính, một cửa",
    }
    assert {x.kind for x in form.questions} == set(q.KINDS)
    assert {x.scale for x in form.questions if x.kind == "scale"} == {5, 10}
    assert form.question("VB3").when == q.Condition("VB2", ("yes",))
    assert q.loads(form.to_json()) == form


def test_a_condition_asks_a_question_only_after_the_answer_it_names(tmp_path):
    form = q.read_toml(EXAMPLE).definition
    ids = [x.id for x in form.asked({"VB2": "no"})]
    assert "VB3" not in ids
    assert "VB3" in [x.id for x in form.asked({"VB2": "yes"})]


def test_conditions_name_options_by_text_or_number_and_multiple_answers_match_any(tmp_path):
    path = toml(
        tmp_path,
        """
[[question]]
id = "A"
text = "Chọn"
type = "multiple"
options = ["Một", "Hai", "Ba"]
[[question]]
id = "B"
text = "Vì sao?"
type = "text"
when = { question = "a", is = ["hai", "3"] }
""",
    )
    form = q.read_toml(path).definition
    assert form.question("B").when == q.Condition("A", ("2", "3"))
    assert [x.id for x in form.asked({"A": ["1", "3"]})] == ["A", "B"]
    assert [x.id for x in form.asked({"A": ["1"]})] == ["A"]


def test_every_problem_is_named_by_question_and_field_and_nothing_is_kept(tmp_path):
    path = toml(
        tmp_path,
        """
[[question]]
id = "A"
text = "Một"
type = "single"
options = ["Có"]
[[question]]
id = "A"
text = "Hai"
type = "thang điểm"
scale = 7
low = "Thấp"
[[question]]
id = "C"
text = "Ba"
type = "hỏi gì"
colour = "đỏ"
[[question]]
id = "D"
text = "Bốn"
type = "yes_no"
when = { question = "Z", is = ["Có"] }
[[question]]
id = "E"
text = "Năm"
type = "yes_no"
when = { question = "A", is = ["Không có"] }
""",
    )
    checked = q.read_toml(path)
    assert not checked.ok
    assert checked.definition is None
    found = [(p.row, p.column, p.key) for p in checked.problems]
    assert found == [
        (1, "options", "survey_import.error.options_count"),
        (2, "id", "import.error.duplicate_code"),
        (2, "scale", "survey_import.error.bad_scale"),
        (2, "high", "import.error.required"),
        (3, "colour", "survey_import.error.unknown_field"),
        (3, "type", "survey_import.error.bad_type"),
        (4, "when", "survey_import.error.when_unknown"),
        (5, "when", "survey_import.error.when_unknown"),  # A was refused, so it is not known
    ]
    shown = t(checked.problems[1].key, "vi", **checked.problems[1].params)
    assert shown == "Mã “A” bị trùng với mã ở dòng 1."


def test_a_condition_on_a_later_question_or_on_free_text_is_refused(tmp_path):
    path = toml(
        tmp_path,
        """
[[question]]
id = "A"
text = "Góp ý"
type = "text"
[[question]]
id = "B"
text = "Tiếp"
type = "yes_no"
when = { question = "A", is = ["x"] }
[[question]]
id = "C"
text = "Sau"
type = "yes_no"
when = { question = "D", is = ["Có"] }
[[question]]
id = "D"
text = "Cuối"
type = "yes_no"
when = { question = "C", is = ["Có", "Chắc"] }
""",
    )
    keys = [(p.row, p.key) for p in q.read_toml(path).problems]
    assert keys == [
        (2, "survey_import.error.when_text"),
        (3, "survey_import.error.when_unknown"),
        (4, "survey_import.error.when_unknown"),
    ]


def test_the_file_s_own_fields_and_its_size_are_checked(tmp_path):
    body = "".join(
        f'[[question]]\nid = "Q{i}"\ntext = "Câu {i}"\ntype = "text"\n' for i in range(31)
    )
    checked = q.read_toml(toml(tmp_path, body, head='code = "mã có dấu"\n'))
    keys = [(p.row, p.column, p.key) for p in checked.problems]
    assert keys[:3] == [
        (0, "code", "import.error.bad_code"),
        (0, "title", "import.error.required"),
        (0, "question", "survey_import.error.too_many"),
    ]
    assert q.read_toml(toml(tmp_path, "")).problems[0].key == "survey_import.error.no_questions"


def test_a_broken_or_missing_file_is_refused_with_its_name(tmp_path):
    with pytest.raises(ImportFileError) as err:
        q.read_toml(toml(tmp_path, "[[question]\n"))
    assert err.value.key == "survey_import.error.bad_toml"
    with pytest.raises(ImportFileError) as err:
        q.read_file(tmp_path / "none.toml")
    assert err.value.key == "import.error.not_found"
    with pytest.raises(ImportFileError) as err:
        q.read_file(tmp_path / "q.pdf")
    assert err.value.key == "survey_import.error.bad_extension"


def test_a_spreadsheet_holds_one_question_a_row_and_problems_name_its_headers(tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(
        [
            "Mã câu hỏi",
            "Câu hỏi",
            "Loại",
            "Các lựa chọn",
            "Thang điểm",
            "Nhãn thấp nhất",
            "Nhãn cao nhất",
            "Không bắt buộc",
            "Chỉ hỏi khi câu",
            "Trả lời là",
        ]
    )
    sheet.append(["H1", "Đã dùng chữ ký số?", "Có/Không", None, None, None, None, None, None, None])
    sheet.append(["H2", "Mức độ", "Thang điểm", None, 10, "Kém", "Tốt", "Có", "H1", "Có"])
    sheet.append(["H3", "Kênh", "Chọn nhiều", "Zalo; Telegram", None, None, None, None, None, None])
    path = tmp_path / "q.xlsx"
    book.save(path)
    checked = q.read_file(path, code="HD", title="Hiện đại hóa")
    assert checked.ok, checked.problems
    form = checked.definition
    assert [(x.id, x.kind) for x in form.questions] == [
        ("H1", "yes_no"),
        ("H2", "scale"),
        ("H3", "multiple"),
    ]
    assert form.question("H2").optional
    assert form.question("H2").when == q.Condition("H1", ("yes",))
    sheet.append(["H4", "Sai", "Thang điểm", None, 3, "a", "b", None, None, None])
    book.save(path)
    problem = q.read_file(path, code="HD", title="x").problems[0]
    assert (problem.row, problem.column, problem.key) == (
        5,
        "Thang điểm",
        "survey_import.error.bad_scale",
    )
