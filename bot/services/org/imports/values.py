"""Parsers for the cells of an import file: each returns a clean value or raises FieldError."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from bot.models import Role, UnitKind

CODE_RE = re.compile(r"^[A-Z0-9_.\-]{1,32}$")
PHONE_RE = re.compile(r"^0(?:[35789]\d{8}|2\d{9})$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
PHONE_NOISE_RE = re.compile(r"[\s.\-()/]")
MAX_EMAIL = 255

KIND_LABELS: dict[str, UnitKind] = {
    "so": UnitKind.DEPARTMENT,
    "so gd & dt": UnitKind.DEPARTMENT,
    "so giao duc va dao tao": UnitKind.DEPARTMENT,
    "phong thuoc so": UnitKind.OFFICE,
    "phong chuyen mon": UnitKind.OFFICE,
    "don vi truc thuoc": UnitKind.AFFILIATED,
    "ubnd xa": UnitKind.COMMUNE,
    "ubnd phuong": UnitKind.COMMUNE,
    "ubnd dac khu": UnitKind.COMMUNE,
    "uy ban nhan dan xa": UnitKind.COMMUNE,
    "uy ban nhan dan phuong": UnitKind.COMMUNE,
    "xa": UnitKind.COMMUNE,
    "phuong": UnitKind.COMMUNE,
    "cap xa": UnitKind.COMMUNE,
    "ubnd cap xa": UnitKind.COMMUNE,
    "ubnd xa phuong": UnitKind.COMMUNE,
    "ubnd xa phuong dac khu": UnitKind.COMMUNE,
    # Legacy: district education offices, gone since 1 July 2025, still read for old files.
    "phong gd & dt": UnitKind.DISTRICT_OFFICE,
    "phong giao duc va dao tao": UnitKind.DISTRICT_OFFICE,
    "phong giao duc": UnitKind.DISTRICT_OFFICE,
    "truong hoc": UnitKind.SCHOOL,
    "truong": UnitKind.SCHOOL,
    "bo phan mot cua": UnitKind.ONE_STOP,
    "mot cua": UnitKind.ONE_STOP,
}

ROLE_LABELS: dict[str, Role] = {
    "quan tri": Role.ADMIN,
    "quan tri vien": Role.ADMIN,
    "lanh dao": Role.LEADER,
    "lanh dao so": Role.LEADER,
    "thu truong": Role.UNIT_HEAD,
    "truong don vi": Role.UNIT_HEAD,
    "thu truong don vi": Role.UNIT_HEAD,
    "can bo": Role.STAFF,
    "nhan vien": Role.STAFF,
    "vien chuc": Role.STAFF,
    "cong chuc": Role.STAFF,
}

LOCALE_LABELS: dict[str, str] = {
    "vi": "vi",
    "vi vn": "vi",
    "tieng viet": "vi",
    "vietnamese": "vi",
    "en": "en",
    "en us": "en",
    "en gb": "en",
    "tieng anh": "en",
    "english": "en",
}

FLAG_LABELS: dict[str, bool] = {
    "co": True,
    "c": True,
    "yes": True,
    "y": True,
    "1": True,
    "x": True,
    "true": True,
    "dang cong tac": True,
    "khong": False,
    "k": False,
    "no": False,
    "n": False,
    "0": False,
    "false": False,
}


class FieldError(Exception):
    """A cell's value is not acceptable; `key` and `params` describe why."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


def clean(value: str) -> str:
    """Return a cell value in NFC with outer spaces (and invisible marks) removed."""
    return unicodedata.normalize("NFC", value).strip().strip("\u200b\ufeff").strip()


@lru_cache(maxsize=4096)
def fold(value: str) -> str:
    """Fold a label for loose matching: no diacritics, no case, simple spacing."""
    text = unicodedata.normalize("NFD", value.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("đ", "d").replace("&", " & ")
    text = re.sub(r"[^0-9a-z&]+", " ", text)
    return " ".join(text.split())


KINDS = {**{fold(kind.value): kind for kind in UnitKind}, **KIND_LABELS}
ROLES = {**{fold(role.value): role for role in Role}, **ROLE_LABELS}


def squeeze(value: str) -> str:
    """Collapse runs of inner spaces to one."""
    return " ".join(value.split())


def parse_code(value: str) -> str:
    """Return an upper-case code of A–Z, 0–9, _ . - and at most 32 characters."""
    code = value.upper()
    if not CODE_RE.fullmatch(code):
        raise FieldError("import.error.bad_code", value=value)
    return code


def text_parser(limit: int) -> Callable[[str], str]:
    """Return a parser that accepts free text of at most `limit` characters."""

    def parse(value: str) -> str:
        """Return the text with inner spaces collapsed, refusing over-long values."""
        text = squeeze(value)
        if len(text) > limit:
            raise FieldError("import.error.too_long", max=limit, length=len(text))
        return text

    return parse


def parse_kind(value: str) -> UnitKind:
    """Return the unit kind named by a value or a Vietnamese label."""
    kind = KINDS.get(fold(value))
    if kind is None:
        raise FieldError("import.error.unknown_kind", value=value)
    return kind


def parse_role(value: str) -> Role:
    """Return the role named by a value or a Vietnamese label."""
    role = ROLES.get(fold(value))
    if role is None:
        raise FieldError("import.error.unknown_role", value=value)
    return role


def parse_roles(value: str) -> frozenset[Role]:
    """Return the roles listed in a value separated by commas or semicolons."""
    parts = [part.strip() for part in re.split(r"[,;]", value)]
    roles = frozenset(parse_role(part) for part in parts if part)
    return roles or frozenset({Role.STAFF})


def parse_phone(value: str) -> str:
    """Return a Vietnamese phone number as a leading 0 and 9 or 10 more digits."""
    digits = PHONE_NOISE_RE.sub("", value)
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    elif digits.isdigit() and not digits.startswith("0") and len(digits) in (9, 10):
        digits = "0" + digits
    if not PHONE_RE.fullmatch(digits):
        raise FieldError("import.error.bad_phone", value=value)
    return digits


def parse_email(value: str) -> str:
    """Return a lower-case e-mail address that looks valid."""
    email = value.lower()
    if len(email) > MAX_EMAIL or not EMAIL_RE.fullmatch(email):
        raise FieldError("import.error.bad_email", value=value)
    return email


def parse_locale(value: str) -> str:
    """Return 'vi' or 'en'."""
    folded = fold(value)
    if folded not in LOCALE_LABELS:
        raise FieldError("import.error.bad_locale", value=value)
    return LOCALE_LABELS[folded]


def parse_flag(value: str) -> bool:
    """Return a yes/no value written as Có/Không, yes/no, 1/0 or x."""
    folded = fold(value)
    if folded not in FLAG_LABELS:
        raise FieldError("import.error.bad_flag", value=value)
    return FLAG_LABELS[folded]
