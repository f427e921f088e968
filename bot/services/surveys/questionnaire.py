"""Questionnaires: read from a TOML or XLSX file, checked field by field, kept as JSON.

A question is single choice, multiple choice, a 1–5 or 1–10 scale with its end labels, yes/no or
short text; it may be optional, and may be asked only when an earlier answer is one of some
values ("ask B only if A is …"). Every problem is reported with its question and field, and any
problem stops the import before anything is written.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Questionnaire, Role
from bot.services.errors import InvalidInput
from bot.services.org import audit
from bot.services.org.access import Actor, require
from bot.services.org.imports.report import RowProblem
from bot.services.org.imports.table import (
    ColumnSpec,
    ImportFileError,
    TableSpec,
    read_table,
)
from bot.services.org.imports.values import FieldError, clean, fold, parse_code, parse_flag

KINDS = ("single", "multiple", "scale", "yes_no", "text")
KIND_LABELS = {
    "single": "single",
    "mot lua chon": "single",
    "chon mot": "single",
    "multiple": "multiple",
    "nhieu lua chon": "multiple",
    "chon nhieu": "multiple",
    "scale": "scale",
    "thang diem": "scale",
    "thang do": "scale",
    "yes no": "yes_no",
    "co khong": "yes_no",
    "text": "text",
    "van ban": "text",
    "tra loi ngan": "text",
}
SCALES = (5, 10)
YES, NO = "yes", "no"
YES_WORDS = frozenset({"yes", "co", "true", "1", "dong y"})
NO_WORDS = frozenset({"no", "khong", "false", "0", "khong dong y"})
MAX_QUESTIONS = 30
MAX_OPTIONS = 9
TEXT_MAX = 500
OPTION_MAX = 100
QUESTION_MAX = 500
TITLE_MAX = 500
INTRO_MAX = 2000
ID_MAX = 16
FIELDS = ("id", "area", "text", "type", "options", "optional", "scale", "low", "high", "when")
HEADER = 0  # the "row" of a problem with the file's own fields (code, title, intro)

QUESTIONS = TableSpec(
    "questions",
    (
        ColumnSpec("id", "Mã câu hỏi", "id", required=True, others=("Mã",)),
        ColumnSpec("area", "Lĩnh vực", "area"),
        ColumnSpec("text", "Câu hỏi", "text", required=True, others=("Nội dung",)),
        ColumnSpec("type", "Loại", "type", required=True, others=("Loại câu hỏi",)),
        ColumnSpec("options", "Các lựa chọn", "options", others=("Lựa chọn",)),
        ColumnSpec("optional", "Không bắt buộc", "optional"),
        ColumnSpec("scale", "Thang điểm", "scale"),
        ColumnSpec("low", "Nhãn thấp nhất", "low"),
        ColumnSpec("high", "Nhãn cao nhất", "high"),
        ColumnSpec("when_id", "Chỉ hỏi khi câu", "when_question"),
        ColumnSpec("when_is", "Trả lời là", "when_is"),
    ),
)


@dataclass(frozen=True)
class Condition:
    """Ask a question only when an earlier one's answer is one of `values` (stored values)."""

    question: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    """One checked question; choices are stored as their number ("1", "2", …)."""

    id: str
    text: str
    kind: str
    area: str = ""
    options: tuple[str, ...] = ()
    optional: bool = False
    scale: int = 0
    low: str = ""
    high: str = ""
    when: Condition | None = None

    def values(self) -> tuple[str, ...]:
        """Return every value an answer may hold (empty for text)."""
        if self.kind in ("single", "multiple"):
            return tuple(str(i) for i in range(1, len(self.options) + 1))
        if self.kind == "scale":
            return tuple(str(i) for i in range(1, self.scale + 1))
        return (YES, NO) if self.kind == "yes_no" else ()


@dataclass(frozen=True)
class Definition:
    """A whole checked questionnaire."""

    code: str
    title: str
    intro: str
    questions: tuple[Question, ...]

    def to_json(self) -> str:
        """Return the definition as stored."""
        return json.dumps(asdict(self), ensure_ascii=False)

    def question(self, qid: str) -> Question:
        """Return a question by id."""
        return next(q for q in self.questions if q.id == qid)

    def asked(self, answers: Mapping[str, Any]) -> list[Question]:
        """Return the questions asked given the answers so far (conditions applied)."""
        return [q for q in self.questions if shown(q, answers)]


def shown(question: Question, answers: Mapping[str, Any]) -> bool:
    """Tell whether a question is asked, given the answers so far."""
    if question.when is None:
        return True
    given = answers.get(question.when.question)
    picked = set(given) if isinstance(given, list) else {given}
    return bool(picked & set(question.when.values))


@lru_cache(maxsize=64)
def loads(text: str) -> Definition:
    """Return a stored definition (cached: definitions never change once imported)."""
    raw = json.loads(text)
    questions = tuple(
        Question(
            **{
                **q,
                "options": tuple(q["options"]),
                "when": Condition(q["when"]["question"], tuple(q["when"]["values"]))
                if q["when"]
                else None,
            }
        )
        for q in raw["questions"]
    )
    return Definition(raw["code"], raw["title"], raw["intro"], questions)


@dataclass
class Checked:
    """What checking a file found: the definition, or the problems that stop it."""

    definition: Definition | None = None
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Tell whether the file had no problems."""
        return not self.problems and self.definition is not None


class _Problems:
    """Problems by question number (0: the file's own fields) and field, in file order."""

    def __init__(self) -> None:
        self.items: list[RowProblem] = []

    def add(self, row: int, column: str, key: str, **params: Any) -> None:
        """Record a problem."""
        self.items.append(RowProblem(row, column, key, {"column": column, **params}))


def _text(value: Any, limit: int) -> str:
    """Return a clean one-line text, refusing what is not text or too long."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError("survey_import.error.not_text")
    text = " ".join(clean(str(value)).split())
    if len(text) > limit:
        raise FieldError("import.error.too_long", max=limit, length=len(text))
    return text


def _kind(value: Any) -> str:
    """Return the question type a value names (English or Vietnamese label)."""
    kind = KIND_LABELS.get(fold(str(value)))
    if kind is None:
        raise FieldError("survey_import.error.bad_type", value=str(value)[:40])
    return kind


def _options(value: Any) -> tuple[str, ...]:
    """Return 2–9 distinct options, given as a list or one cell split by ';' or new lines."""
    items = value if isinstance(value, list) else str(value).replace("\n", ";").split(";")
    options = tuple(_text(item, OPTION_MAX) for item in items if str(item).strip())
    if not 2 <= len(options) <= MAX_OPTIONS:
        raise FieldError("survey_import.error.options_count", max=MAX_OPTIONS, count=len(options))
    if len({fold(o) for o in options}) != len(options):
        raise FieldError("survey_import.error.options_repeat")
    return options


def _flag(value: Any) -> bool:
    """Return a yes/no field (TOML boolean, or Có/Không in a cell)."""
    return value if isinstance(value, bool) else parse_flag(str(value))


def _scale(value: Any) -> int:
    """Return 5 or 10."""
    text = str(value).strip()
    if text.endswith(".0"):  # a spreadsheet's number cell
        text = text[:-2]
    if text not in {str(s) for s in SCALES}:
        raise FieldError("survey_import.error.bad_scale", value=text[:20])
    return int(text)


def _condition_values(target: Question, raw: Any) -> tuple[str, ...]:
    """Map the values a condition names (option text or number, Có/Không, scale points)."""
    items = raw if isinstance(raw, list) else str(raw).replace("\n", ";").split(";")
    values: list[str] = []
    for item in (str(i).strip() for i in items if str(i).strip()):
        folded = fold(item)
        if target.kind == "yes_no" and folded in YES_WORDS | NO_WORDS:
            values.append(YES if folded in YES_WORDS else NO)
        elif target.kind in ("single", "multiple") and folded in {fold(o) for o in target.options}:
            values.append(str([fold(o) for o in target.options].index(folded) + 1))
        elif item.removesuffix(".0") in target.values():
            values.append(item.removesuffix(".0"))
        else:
            raise FieldError("survey_import.error.when_value", value=item[:40], question=target.id)
    if not values:
        raise FieldError("survey_import.error.when_empty")
    return tuple(dict.fromkeys(values))


class _Checker:
    """Checks raw questions (field name to raw value) one by one, in order."""

    def __init__(self, problems: _Problems) -> None:
        self.problems = problems
        self.seen: dict[str, Question] = {}
        self.first_row: dict[str, int] = {}

    def get(self, row: int, raw: Mapping[str, Any], name: str, parse: Any) -> Any:
        """Parse one field; record its problem and return None when bad."""
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return parse(value)
        except FieldError as exc:
            self.problems.add(row, name, exc.key, **exc.params)
            return None

    def required(self, row: int, raw: Mapping[str, Any], name: str, parse: Any) -> Any:
        """Parse a field that must be given."""
        value = self.get(row, raw, name, parse)
        if raw.get(name) in (None, "") and value is None:
            self.problems.add(row, name, "import.error.required")
        return value

    def question(self, row: int, raw: Mapping[str, Any]) -> Question | None:
        """Check one question; None when it has a problem."""
        before = len(self.problems.items)
        for name in sorted(set(raw) - set(FIELDS)):
            self.problems.add(row, name, "survey_import.error.unknown_field", field=name)
        qid = self.required(row, raw, "id", lambda v: parse_code(_text(v, ID_MAX)))
        if qid is not None and qid in self.first_row:
            self.problems.add(
                row, "id", "import.error.duplicate_code", code=qid, first_row=self.first_row[qid]
            )
        elif qid is not None:
            self.first_row[qid] = row
        text = self.required(row, raw, "text", lambda v: _text(v, QUESTION_MAX))
        kind = self.required(row, raw, "type", _kind)
        area = self.get(row, raw, "area", lambda v: _text(v, OPTION_MAX)) or ""
        optional = bool(self.get(row, raw, "optional", _flag))
        options: tuple[str, ...] = ()
        scale, low, high = 0, "", ""
        if kind in ("single", "multiple"):
            options = self.required(row, raw, "options", _options) or ()
        elif raw.get("options") not in (None, "", []):
            self.problems.add(row, "options", "survey_import.error.options_unused")
        if kind == "scale":
            scale = self.required(row, raw, "scale", _scale) or 0
            low = self.required(row, raw, "low", lambda v: _text(v, OPTION_MAX)) or ""
            high = self.required(row, raw, "high", lambda v: _text(v, OPTION_MAX)) or ""
        when = self._when(row, raw.get("when"))
        if len(self.problems.items) > before or None in (qid, text, kind):
            return None
        question = Question(qid, text, kind, area, options, optional, scale, low, high, when)
        self.seen[qid] = question
        return question

    def _when(self, row: int, raw: Any) -> Condition | None:
        """Check a condition: an earlier question of a choice, scale or yes/no type."""
        if raw is None or raw == {}:
            return None
        if not isinstance(raw, Mapping) or set(raw) != {"question", "is"}:
            self.problems.add(row, "when", "survey_import.error.when_shape")
            return None
        target = self.seen.get(str(raw["question"]).strip().upper())
        if target is None:
            self.problems.add(
                row, "when", "survey_import.error.when_unknown", question=raw["question"]
            )
            return None
        if target.kind == "text":
            self.problems.add(row, "when", "survey_import.error.when_text", question=target.id)
            return None
        try:
            return Condition(target.id, _condition_values(target, raw["is"]))
        except FieldError as exc:
            self.problems.add(row, "when", exc.key, **exc.params)
            return None


def check(raw: Mapping[str, Any], questions: Sequence[tuple[int, Mapping[str, Any]]]) -> Checked:
    """Check a questionnaire's own fields and its numbered raw questions."""
    problems = _Problems()
    checker = _Checker(problems)
    code = checker.required(HEADER, raw, "code", lambda v: parse_code(_text(v, 32)))
    title = checker.required(HEADER, raw, "title", lambda v: _text(v, TITLE_MAX))
    intro = checker.get(HEADER, raw, "intro", lambda v: _text(v, INTRO_MAX)) or ""
    if not questions:
        problems.add(HEADER, "question", "survey_import.error.no_questions")
    if len(questions) > MAX_QUESTIONS:
        problems.add(
            HEADER,
            "question",
            "survey_import.error.too_many",
            max=MAX_QUESTIONS,
            count=len(questions),
        )
    checked = [checker.question(row, q) for row, q in questions[: MAX_QUESTIONS + 1]]
    if problems.items or code is None or title is None:
        return Checked(problems=problems.items)
    kept = tuple(q for q in checked if q is not None)
    return Checked(definition=Definition(code, title, intro, kept))


def read_toml(path: Path | str) -> Checked:
    """Read and check a TOML questionnaire ([[question]] tables, numbered from 1)."""
    file = Path(path)
    try:
        return read_toml_text(file.read_text(encoding="utf-8"), name=file.name)
    except FileNotFoundError:
        raise ImportFileError("import.error.not_found", path=file.name) from None
    except UnicodeDecodeError:
        raise ImportFileError("import.error.bad_encoding", path=file.name) from None


def read_toml_text(text: str, *, name: str) -> Checked:
    """Check the text of a TOML questionnaire; `name` names the file in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ImportFileError("survey_import.error.bad_toml", path=name, reason=str(exc)) from None
    questions = raw.pop("question", [])
    if not isinstance(questions, list) or not all(isinstance(q, dict) for q in questions):
        raise ImportFileError("survey_import.error.bad_toml", path=name, reason="[[question]]")
    return check(raw, list(enumerate(questions, start=1)))


def read_upload(name: str, data: bytes) -> Checked:
    """Check a TOML questionnaire sent in chat."""
    if not name.lower().endswith(".toml"):
        raise ImportFileError("survey_import.error.chat_extension", path=name[:100])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportFileError("import.error.bad_encoding", path=name[:100]) from None
    return read_toml_text(text, name=name[:100])


def read_xlsx(path: Path | str, *, code: str, title: str, intro: str = "") -> Checked:
    """Read and check a questionnaire from a sheet (or CSV), one question per row.

    The sheet holds only questions: the questionnaire's code and title are given with it.
    """
    table = read_table(path, spec=QUESTIONS)
    rows = []
    for row in table.rows:
        values: dict[str, Any] = {k: v for k, v in row.values.items() if v and k in FIELDS}
        if row.get("when_id") or row.get("when_is"):
            values["when"] = {"question": row.get("when_id"), "is": row.get("when_is")}
        rows.append((row.number, values))
    checked = check({"code": code, "title": title, "intro": intro}, rows)
    labels = {name: table.label(name) for name in ("id", "area", "text", "type", "options")}
    labels.update(
        {name: table.label(name) for name in ("optional", "scale", "low", "high")},
        when=table.label("when_id"),
    )
    checked.problems = [
        RowProblem(
            p.row,
            labels.get(p.column, p.column),
            p.key,
            {**p.params, "column": labels.get(p.column, p.column)},
        )
        for p in checked.problems
    ]
    return checked


def read_file(path: Path | str, *, code: str | None = None, title: str | None = None) -> Checked:
    """Read a TOML or XLSX questionnaire (an XLSX needs its code and title given)."""
    file = Path(path)
    if file.suffix.lower() == ".toml":
        return read_toml(file)
    if file.suffix.lower() in (".xlsx", ".xlsm", ".csv"):
        return read_xlsx(file, code=code or "", title=title or "")
    raise ImportFileError("survey_import.error.bad_extension", path=file.name)


async def save(
    session: AsyncSession, definition: Definition, *, actor: Actor, now: datetime
) -> Questionnaire:
    """Store a checked questionnaire; a code already used is refused (campaigns refer to it)."""
    require(actor, Role.ADMIN)
    taken = (
        await session.exec(select(Questionnaire).where(Questionnaire.code == definition.code))
    ).first()
    if taken is not None:
        raise InvalidInput("survey_import.error.code_taken", code=definition.code)
    row = Questionnaire(
        code=definition.code,
        title=definition.title,
        definition=definition.to_json(),
        questions=len(definition.questions),
        created_by=actor.label,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    audit.record(
        session,
        actor=actor.label,
        action="survey.import",
        now=now,
        subject=definition.code,
        count=len(definition.questions),
    )
    return row


def definition_of(row: Questionnaire) -> Definition:
    """Return a stored questionnaire's definition."""
    return loads(row.definition)
