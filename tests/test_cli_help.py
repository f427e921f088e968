"""The command line's help, usage lines and errors come from the catalogs, in the configured
language (Vietnamese by default), for every command and subcommand."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from bot.cli.language import TYPER_OPTIONS
from bot.cli.main import app
from bot.config import LOCALE_ENV
from bot.i18n import LOCALES, catalog, t

# What typer prints in English unless told otherwise.
ENGLISH_FRAMEWORK = (
    "Usage:",
    "Options",
    "Arguments",
    "Commands",
    "Show this message",
    "[required]",
    "[default:",
    "Install completion",
    "[OPTIONS]",
    "COMMAND [ARGS]",
)
DEVELOPER_ONLY = {"sandbox"}  # passes its arguments to the sandbox's own parser


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Yield every command and subcommand with the words that reach it."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


def visible_params(command: Any) -> list[Any]:
    """Return the parameters shown in a command's help."""
    return [p for p in command.params if not getattr(p, "hidden", False)]


def flat(text: str) -> str:
    """Drop the panels' borders and join wrapped lines."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def help_keys(command: Any) -> list[str]:
    """Return the catalog keys of a command's help and of its parameters' help."""
    keys = [command.help]
    for param in visible_params(command):
        keys.append(f"cli_fw.{param.name}" if param.name in TYPER_OPTIONS else param.help)
    return keys


COMMANDS = [(path, cmd) for path, cmd in walk(get_command(app)) if cmd.name not in DEVELOPER_ONLY]


def test_every_help_text_in_the_code_is_a_catalog_key():
    for path, command in COMMANDS:
        assert command.help, path
        for key in help_keys(command):
            for locale in LOCALES:
                assert key in catalog(locale), (path, key)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_help_page_is_in_the_configured_language(monkeypatch, locale):
    monkeypatch.setenv(LOCALE_ENV, locale)
    other = "en" if locale == "vi" else "vi"
    runner = CliRunner()
    for path, command in COMMANDS:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "300"})
        assert result.exit_code == 0, (path, result.output)
        out = flat(result.output)
        assert t("cli_fw.usage", locale) in out, path
        assert flat(t("cli_fw.help_option", locale)) in out, path
        for key in help_keys(command):
            assert flat(t(key, locale)) in out, (path, key)
            if t(key, other) != t(key, locale):
                assert flat(t(key, other)) not in out, (path, key)
        if locale == "vi":
            for english in ENGLISH_FRAMEWORK:
                assert english not in out, (path, english)


def test_the_language_comes_from_the_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv(LOCALE_ENV, raising=False)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    vi = flat(runner.invoke(app, ["invite", "--help"], env={"COLUMNS": "300"}).output)
    assert flat(t("cli_help.invite", "vi")) in vi
    config = tmp_path / "en.toml"
    config.write_text('[i18n]\ndefault_locale = "en"\n', encoding="utf-8")
    args = ["invite", "--config", str(config), "--help"]
    en = flat(runner.invoke(app, args, env={"COLUMNS": "300"}).output)
    assert flat(t("cli_help.invite", "en")) in en
    assert "Usage:" in en
    (tmp_path / "config.toml").write_text(config.read_text("utf-8"), encoding="utf-8")
    en = flat(runner.invoke(app, ["db", "--help"], env={"COLUMNS": "300"}).output)
    assert flat(t("cli_help.db", "en")) in en


@pytest.mark.parametrize(
    ("args", "key", "params"),
    [
        (["inviet"], "cli_fw.no_such_command", {"name": "'inviet'"}),
        (["invite", "--days", "x"], "cli_fw.bad_value", {"name": "'--days'"}),
        (["invite", "--nope"], "cli_fw.no_such_option", {"name": "--nope"}),
        (["apology", "print"], "cli_fw.missing_argument", {"name": "'apology_id'"}),
        (["directive", "status", "1", "2"], "cli_fw.extra_args", {"args": "2"}),
    ],
)
@pytest.mark.parametrize("locale", LOCALES)
def test_usage_errors_are_in_the_configured_language(monkeypatch, locale, args, key, params):
    monkeypatch.setenv(LOCALE_ENV, locale)
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2
    out = flat(result.output)
    if key == "cli_fw.bad_value":
        params = {**params, "detail": t("cli_fw.not_integer", locale)}
    assert flat(t(key, locale, **params)) in out
    assert t("cli_fw.error", locale) in out
    if locale == "vi":
        for english in ("Usage:", "Error", "No such", "Missing", "Invalid value", "Got unexpected"):
            assert english not in out


@pytest.mark.parametrize("locale", LOCALES)
def test_the_sandbox_help_is_in_the_configured_language(monkeypatch, locale):
    monkeypatch.setenv(LOCALE_ENV, locale)
    result = CliRunner().invoke(app, ["sandbox", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    out = flat(result.output)
    assert out.startswith(t("sandbox_cli.usage", locale) + " ")
    assert " sandbox [-h]" in out
    for key in catalog(locale):
        if key.startswith("sandbox_cli."):
            assert flat(t(key, locale)) in out, key
    if locale == "vi":
        assert "usage:" not in out.lower()
        assert "show this help" not in out.lower()
