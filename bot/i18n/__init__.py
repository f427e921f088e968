"""Key-based message catalogs: Vietnamese first, English second."""

from __future__ import annotations

import string
import tomllib
from functools import cache
from importlib import resources
from typing import Any

LOCALES = ("vi", "en")
DEFAULT_LOCALE = "vi"


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Turn nested TOML tables into dotted keys."""
    out: dict[str, str] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = str(value)
    return out


@cache
def catalog(locale: str) -> dict[str, str]:
    """Return the flat catalog of one locale, merged from every TOML file in its folder."""
    merged: dict[str, str] = {}
    folder = resources.files(__package__).joinpath(locale)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        part = _flatten(tomllib.loads(entry.read_text(encoding="utf-8")))
        clash = merged.keys() & part.keys()
        if clash:
            raise ValueError(f"{locale}/{entry.name} repeats keys: {sorted(clash)}")
        merged.update(part)
    return merged


def normalize_locale(locale: str | None) -> str:
    """Map any locale tag to one we have ('en-US' -> 'en'), else the default."""
    if not locale:
        return DEFAULT_LOCALE
    short = locale.split("-")[0].split("_")[0].lower()
    return short if short in LOCALES else DEFAULT_LOCALE


def placeholders(template: str) -> set[str]:
    """Return the named placeholders of a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class _Missing(dict[str, Any]):
    """Leave an unknown placeholder visible instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def t(key: str, locale: str | None = None, /, **params: Any) -> str:
    """Render a message in a locale, falling back to Vietnamese, then to the key itself."""
    loc = normalize_locale(locale)
    template = catalog(loc).get(key) or catalog(DEFAULT_LOCALE).get(key)
    if template is None:
        return key
    return template.format_map(_Missing(params))


def has_key(key: str) -> bool:
    """Tell whether the default catalog has a key."""
    return key in catalog(DEFAULT_LOCALE)
