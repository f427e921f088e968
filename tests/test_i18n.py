"""Catalogs: same keys and placeholders in both languages; every key used in code exists."""

from __future__ import annotations

import re
from pathlib import Path

from bot.i18n import LOCALES, catalog, normalize_locale, placeholders, t

ROOT = Path(__file__).resolve().parents[1]
KEY_LITERAL = re.compile(r"""(\w*=)?["']([a-z_]+(?:\.[a-z0-9_]+)+)["']""")
NOT_KEY_ARGS = ("action=", "foreign_key=")
NOT_KEYS = re.compile(r"\.(toml|py|csv|xlsx|db|html|js|css|json)$")
CODE_DIRS = ("bot", "handlers", "jobs")


def test_locales_have_the_same_keys():
    vi, en = catalog("vi"), catalog("en")
    assert set(vi) - set(en) == set()
    assert set(en) - set(vi) == set()


def test_locales_have_the_same_placeholders():
    vi, en = catalog("vi"), catalog("en")
    for key in vi:
        assert placeholders(vi[key]) == placeholders(en[key]), key


def test_every_key_used_in_code_exists():
    known = set(catalog("vi"))
    namespaces = {k.split(".")[0] for k in known}
    missing = []
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for match in KEY_LITERAL.finditer(path.read_text(encoding="utf-8")):
                key = match.group(2)
                if NOT_KEYS.search(key) or match.group(1) in NOT_KEY_ARGS:
                    continue
                if (
                    key.split(".")[0] in namespaces
                    and key not in known
                    and not any(k.startswith(key + ".") for k in known)
                ):
                    missing.append(f"{path.relative_to(ROOT)}: {key}")
    assert missing == []


def test_command_help_exists_for_every_command():
    import handlers.router  # noqa: F401
    from handlers.routes import COMMANDS

    for command in COMMANDS.values():
        for locale in LOCALES:
            assert command.help_key in catalog(locale)


def test_vietnamese_is_written_with_diacritics_and_nfc():
    import unicodedata

    for key, text in catalog("vi").items():
        assert unicodedata.is_normalized("NFC", text), key
    assert "không có quyền" in t("errors.forbidden", "vi")


def test_rendering_and_fallbacks():
    assert t("errors.unknown_unit", "en", code="X1") == "No unit has the code X1."
    assert t("errors.unknown_unit", "vi", code="X1") == "Không tìm thấy đơn vị có mã X1."
    assert t("errors.unknown_unit", "fr", code="X1") == t("errors.unknown_unit", "vi", code="X1")
    assert t("no.such.key", "vi") == "no.such.key"
    assert "{code}" in t("errors.unknown_unit", "vi")
    assert normalize_locale("en-US") == "en"
    assert normalize_locale(None) == "vi"


NEW_STYLE_TONES = re.compile(r"(?<![qQ])[uU][ỳýỷỹỵỲÝỶỸỴ](?!\w)|[oO][àáảãạèéẻẽẹÀÁẢÃẠÈÉẺẼẸ](?!\w)")


def test_catalogs_and_documents_use_the_official_tone_mark_style():
    """Official documents write "hòa", "thủy", "khỏe": the tone on the first vowel."""
    offenders = []
    folders = [ROOT / "bot" / "i18n", ROOT / "bot" / "sandbox" / "static", ROOT / "examples"]
    files = [p for folder in folders for p in folder.rglob("*") if p.is_file()]
    for path in [*files, ROOT / "README.md", ROOT / "config.example.toml"]:
        if path.suffix not in {".toml", ".md", ".csv", ".html", ".js"}:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            offenders += [
                f"{path.relative_to(ROOT)}:{number}: {m}" for m in NEW_STYLE_TONES.findall(line)
            ]
    assert offenders == []
