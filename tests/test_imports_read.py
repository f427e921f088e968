"""Reading import files (CSV, XLSX) and parsing their cells."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import openpyxl
import pytest

from bot.i18n import catalog, placeholders
from bot.models import Role, UnitKind
from bot.services.org.imports import STAFF, UNITS, ImportFileError, Table, read_table
from bot.services.org.imports.units import find_cycles
from bot.services.org.imports.values import (
    FieldError,
    parse_email,
    parse_flag,
    parse_kind,
    parse_locale,
    parse_phone,
    parse_roles,
)

UNITS_CSV = (
    "Mã đơn vị,Tên đơn vị,Loại đơn vị,Mã đơn vị cấp trên\n"
    "SGD,Sở Giáo dục và Đào tạo tỉnh An Phú,Sở,\n"
    "SGD.VP,Văn phòng Sở,Phòng thuộc Sở,SGD\n"
)


def nfd(text: str) -> str:
    """Return text in decomposed form."""
    return unicodedata.normalize("NFD", text)


def write(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write a text file and return its path."""
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    """Write rows to the first sheet of a new workbook (plus a second sheet to ignore)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.create_sheet("Khác").append(["Mã đơn vị", "bỏ qua"])
    book.save(path)
    return path


def values(table: Table) -> list[dict[str, str]]:
    """Return each row's values."""
    return [dict(row.values) for row in table.rows]


# --- CSV ----------------------------------------------------------------------------------


def test_csv_with_bom_and_commas(tmp_path):
    table = read_table(write(tmp_path / "u.csv", "\ufeff" + UNITS_CSV), spec=UNITS)
    assert table.headers["code"] == "Mã đơn vị"
    assert [row.number for row in table.rows] == [2, 3]
    assert values(table)[1] == {
        "code": "SGD.VP",
        "name": "Văn phòng Sở",
        "kind": "Phòng thuộc Sở",
        "parent_code": "SGD",
    }


def test_csv_with_semicolons_nfd_text_and_crlf(tmp_path):
    text = nfd(UNITS_CSV.replace(",", ";")).replace("\n", "\r\n")
    table = read_table(write(tmp_path / "u.CSV", text), spec=UNITS)
    row = values(table)[0]
    assert row["name"] == "Sở Giáo dục và Đào tạo tỉnh An Phú"
    assert unicodedata.is_normalized("NFC", row["name"])
    assert row["kind"] == "Sở"


def test_csv_headers_matched_loosely_and_extra_columns_ignored(tmp_path):
    text = (
        "  MÃ ĐƠN VỊ ;Ghi chú; tên   đơn vị ;LOẠI ĐƠN VỊ\n"
        '" sgd.vp ";ghi chú bất kỳ;" Văn phòng Sở ";office\n'
    )
    table = read_table(write(tmp_path / "u.csv", text), spec=UNITS)
    assert set(table.headers) == {"code", "name", "kind"}
    assert values(table) == [{"code": "sgd.vp", "name": "Văn phòng Sở", "kind": "office"}]


def test_csv_english_aliases(tmp_path):
    text = "code,full_name,unit_code,phone\nCB1,Lê Văn An,SGD,0912345678\n"
    table = read_table(write(tmp_path / "s.csv", text), spec=STAFF)
    assert values(table) == [
        {"code": "CB1", "full_name": "Lê Văn An", "unit_code": "SGD", "phone": "0912345678"}
    ]


def test_csv_empty_rows_skipped_but_counted(tmp_path):
    text = "\n" + UNITS_CSV.replace("\nSGD.VP", "\n,,,\n\nSGD.VP")
    table = read_table(write(tmp_path / "u.csv", text), spec=UNITS)
    assert [row.number for row in table.rows] == [3, 6]


def test_csv_quoted_cell_over_two_lines_is_one_row(tmp_path):
    text = UNITS_CSV + 'X,"Tên\ndài",office,\nY,Y,office,\n'
    table = read_table(write(tmp_path / "u.csv", text), spec=UNITS)
    assert [row.number for row in table.rows] == [2, 3, 4, 5]


def test_missing_required_columns_named(tmp_path):
    path = write(tmp_path / "u.csv", "Mã đơn vị,Mã đơn vị cấp trên\nA,\n")
    with pytest.raises(ImportFileError) as caught:
        read_table(path, spec=UNITS)
    assert caught.value.key == "import.error.missing_column"
    assert "Tên đơn vị" in caught.value.params["column"]
    assert "Loại đơn vị" in caught.value.params["column"]


def test_duplicate_column(tmp_path):
    path = write(tmp_path / "u.csv", "Mã đơn vị,code,Tên đơn vị,Loại đơn vị\n")
    with pytest.raises(ImportFileError) as caught:
        read_table(path, spec=UNITS)
    assert (caught.value.key, caught.value.params["column"]) == (
        "import.error.duplicate_column",
        "code",
    )


@pytest.mark.parametrize(
    ("name", "content", "key"),
    [
        ("u.xls", b"whatever", "import.error.bad_extension"),
        ("u.txt", b"whatever", "import.error.bad_extension"),
        ("u.csv", "Tên đơn\n".encode("cp1258"), "import.error.bad_encoding"),
        ("u.csv", b"", "import.error.empty_file"),
        ("u.csv", b"\n ,  \n\n", "import.error.empty_file"),
        ("u.xlsx", b"not a zip file", "import.error.unreadable"),
    ],
)
def test_unusable_files(tmp_path, name, content, key):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImportFileError) as caught:
        read_table(path, spec=UNITS)
    assert caught.value.key == key


def test_file_not_found(tmp_path):
    with pytest.raises(ImportFileError) as caught:
        read_table(tmp_path / "none.csv", spec=UNITS)
    assert caught.value.key == "import.error.not_found"


# --- XLSX ---------------------------------------------------------------------------------


def test_xlsx_numbers_text_and_empty_rows(tmp_path):
    header: list[object] = ["Mã cán bộ", "Họ và tên", "Mã đơn vị", "Điện thoại", "Đang công tác"]
    header.append("Ghi chú")
    rows: list[list[object]] = [
        header,
        [1001, nfd("Trần Thị Bình"), "SGD", 912345678, True, 2.5],
        [None, None, None, None, None, None],
        ["CB2", "  Lê Văn Cường ", "SGD", "0912345678", 0, None],
        [1003.0, "Phạm Minh Đức", "SGD", 84912345678.0, "x", None],
    ]
    table = read_table(write_xlsx(tmp_path / "s.xlsx", rows), spec=STAFF)
    assert [row.number for row in table.rows] == [2, 4, 5]
    first, second, third = values(table)
    assert first == {
        "code": "1001",
        "full_name": "Trần Thị Bình",
        "unit_code": "SGD",
        "phone": "912345678",
        "active": "1",
    }
    assert unicodedata.is_normalized("NFC", first["full_name"])
    assert (second["phone"], second["full_name"], second["active"]) == (
        "0912345678",
        "Lê Văn Cường",
        "0",
    )
    assert (third["code"], third["phone"]) == ("1003", "84912345678")
    assert parse_phone(first["phone"]) == parse_phone(third["phone"]) == "0912345678"


def test_xlsx_first_sheet_only_and_nfd_headers(tmp_path):
    rows: list[list[object]] = [
        [nfd("Mã đơn vị"), nfd("Tên đơn vị"), nfd("Loại đơn vị")],
        ["SGD", nfd("Sở Giáo dục"), nfd("Sở")],
    ]
    table = read_table(write_xlsx(tmp_path / "u.xlsx", rows), spec=UNITS)
    assert values(table) == [{"code": "SGD", "name": "Sở Giáo dục", "kind": "Sở"}]


def test_xlsx_header_after_blank_rows_keeps_sheet_numbers(tmp_path):
    rows: list[list[object]] = [
        [None],
        ["code", "name", "kind"],
        ["A", "A", "office"],
    ]
    table = read_table(write_xlsx(tmp_path / "u.xlsx", rows), spec=UNITS)
    assert [row.number for row in table.rows] == [3]


# --- cells ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("Sở", UnitKind.DEPARTMENT),
        ("department", UnitKind.DEPARTMENT),
        ("PHÒNG THUỘC SỞ", UnitKind.OFFICE),
        ("Phòng chuyên môn", UnitKind.OFFICE),
        ("Đơn vị trực thuộc", UnitKind.AFFILIATED),
        ("Phòng GD&ĐT", UnitKind.DISTRICT_OFFICE),
        ("phong gd & dt", UnitKind.DISTRICT_OFFICE),
        ("Phòng Giáo dục và Đào tạo", UnitKind.DISTRICT_OFFICE),
        ("District_Office", UnitKind.DISTRICT_OFFICE),
        ("Trường học", UnitKind.SCHOOL),
        ("truong", UnitKind.SCHOOL),
        ("Bộ phận một cửa", UnitKind.ONE_STOP),
        (nfd("Một cửa"), UnitKind.ONE_STOP),
        ("one_stop", UnitKind.ONE_STOP),
    ],
)
def test_kinds(raw, kind):
    assert parse_kind(raw) == kind


def test_unknown_kind():
    with pytest.raises(FieldError) as caught:
        parse_kind("Bệnh viện")
    assert (caught.value.key, caught.value.params) == (
        "import.error.unknown_kind",
        {"value": "Bệnh viện"},
    )


@pytest.mark.parametrize(
    ("raw", "roles"),
    [
        ("", {Role.STAFF}),
        ("admin", {Role.ADMIN}),
        ("Quản trị, Cán bộ", {Role.ADMIN, Role.STAFF}),
        ("Lãnh đạo;Thủ trưởng", {Role.LEADER, Role.UNIT_HEAD}),
        ("Trưởng đơn vị; ; nhân viên", {Role.UNIT_HEAD, Role.STAFF}),
        ("VIÊN CHỨC", {Role.STAFF}),
        ("unit_head, unit_head", {Role.UNIT_HEAD}),
    ],
)
def test_roles(raw, roles):
    assert parse_roles(raw) == roles


@pytest.mark.parametrize(
    "raw", ["12345", "0123456789", "091234567890", "0912 345 67a", "+1 202 555"]
)
def test_bad_phones(raw):
    with pytest.raises(FieldError):
        parse_phone(raw)


@pytest.mark.parametrize(
    ("raw", "ok"),
    [("a@b.vn", True), ("A.B@SGDDT.AnPhu.gov.vn", True), ("a@b", False), ("a b@c.vn", False)],
)
def test_emails(raw, ok):
    if ok:
        assert parse_email(raw) == raw.lower()
    else:
        with pytest.raises(FieldError):
            parse_email(raw)


@pytest.mark.parametrize(
    ("raw", "flag"),
    [
        ("Có", True),
        ("có", True),
        ("x", True),
        ("1", True),
        ("yes", True),
        ("Không", False),
        ("khong", False),
        ("0", False),
        ("no", False),
    ],
)
def test_flags(raw, flag):
    assert parse_flag(raw) is flag


@pytest.mark.parametrize(("raw", "locale"), [("vi", "vi"), ("EN", "en"), ("Tiếng Việt", "vi")])
def test_locales(raw, locale):
    assert parse_locale(raw) == locale


def test_find_cycles():
    graph: dict[str, str | None] = {"A": "B", "B": "A", "C": "A", "D": None, "E": "E"}
    assert find_cycles(graph) == {"A": "A → B → A", "B": "B → A → B", "E": "E → E"}


def test_catalogs_have_the_same_import_keys_and_placeholders():
    vi = {k: v for k, v in catalog("vi").items() if k.startswith("import.")}
    en = {k: v for k, v in catalog("en").items() if k.startswith("import.")}
    assert vi.keys() == en.keys()
    for key, text in vi.items():
        assert placeholders(text) == placeholders(en[key]), key


def test_every_problem_key_is_in_the_catalog():
    source = (Path(__file__).parent.parent / "bot" / "services" / "org" / "imports").glob("*.py")
    used = {m for f in source for m in re.findall(r'"(import\.error\.[a-z_]+)"', f.read_text())}
    assert used
    assert used <= catalog("vi").keys()
