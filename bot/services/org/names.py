"""Vietnamese personal names: the order every list of people is shown in."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, TypeVar

import icu  # type: ignore[import-untyped]

T = TypeVar("T")
NameKey = tuple[bytes, bytes, bytes]


@cache
def _collator() -> Any:
    """Return ICU's Vietnamese collator (Đ after D, Ă Â after A, tones after letters)."""
    return icu.Collator.createInstance(icu.Locale("vi_VN"))


def name_sort_key(full_name: str) -> NameKey:
    """Return the key that sorts a name by given name, then family name, then middle names."""
    parts = unicodedata.normalize("NFC", full_name).split()
    if not parts:
        return (b"", b"", b"")
    given, family, middle = parts[-1], parts[0] if len(parts) > 1 else "", " ".join(parts[1:-1])
    key = _collator().getSortKey
    return (key(given), key(family), key(middle))


def by_name(items: Iterable[T], name: Callable[[T], str]) -> list[T]:
    """Return items sorted by the Vietnamese order of the name each carries."""
    return sorted(items, key=lambda item: name_sort_key(name(item)))
