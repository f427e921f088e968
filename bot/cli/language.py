"""The command line in the configured language: help, usage lines and the framework's messages.

Help texts in the command declarations are catalog keys (``help="cli_help.invite"``); before
parsing, the root group reads the configured language and replaces every key by its text, and
sets typer's own strings (panel titles, "Usage:", "--help", errors) from the catalogs too.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

from typer import rich_utils
from typer._click.core import Command, Context
from typer._click.exceptions import (
    BadOptionUsage,
    BadParameter,
    MissingParameter,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
)
from typer._click.formatting import HelpFormatter
from typer.core import TyperGroup

from bot.config import configured_locale
from bot.i18n import DEFAULT_LOCALE, has_key, t

TYPER_OPTIONS = ("install_completion", "show_completion")

_keys: WeakKeyDictionary[Any, str] = WeakKeyDictionary()
_state = {"locale": DEFAULT_LOCALE}


def _text(obj: Any, attr: str, locale: str) -> None:
    """Replace a help attribute that holds a catalog key by its text in the language."""
    key = _keys.get(obj) if attr == "help" else None
    key = key or getattr(obj, attr, None)
    if isinstance(key, str) and has_key(key):
        if attr == "help":
            _keys[obj] = key
        setattr(obj, attr, t(key, locale))


class _Formatter(HelpFormatter):
    """Write the usage line with the translated prefix."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        """Write the usage line."""
        usage = prefix if prefix is not None else t("cli_fw.usage", _state["locale"]) + " "
        super().write_usage(prog, args, usage)


def _context_class(base: type[Context]) -> type[Context]:
    """Return a context class that formats help with the translated usage prefix."""
    if base.formatter_class is _Formatter:
        return base
    return type(base.__name__, (base,), {"formatter_class": _Formatter})


def _walk(command: Command, locale: str) -> None:
    """Translate the help of a command, its parameters, its --help and its subcommands."""
    _text(command, "help", locale)
    _text(command, "short_help", locale)
    command.context_class = _context_class(command.context_class)
    if command.options_metavar:
        command.options_metavar = t("cli_fw.options_metavar", locale)
    if getattr(command, "subcommand_metavar", None):
        command.subcommand_metavar = t("cli_fw.subcommand_metavar", locale)  # type: ignore[attr-defined]
    for param in command.params:
        _text(param, "help", locale)
        if param.name in TYPER_OPTIONS:
            param.help = t(f"cli_fw.{param.name}", locale)  # type: ignore[attr-defined]
    help_option = command.get_help_option(command.context_class(command))
    if help_option is not None:
        help_option.help = t("cli_fw.help_option", locale)
    for sub in getattr(command, "commands", {}).values():
        _walk(sub, locale)


def _framework(locale: str) -> None:
    """Set typer's own strings (panel titles, defaults, hints) in the language."""
    _state["locale"] = locale
    for name, key in (
        ("ARGUMENTS_PANEL_TITLE", "arguments"),
        ("OPTIONS_PANEL_TITLE", "options"),
        ("COMMANDS_PANEL_TITLE", "commands"),
        ("ERRORS_PANEL_TITLE", "error"),
        ("ABORTED_TEXT", "aborted"),
        ("RICH_HELP", "try_help"),
        ("DEFAULT_STRING", "default"),
        ("ENVVAR_STRING", "envvar"),
        ("REQUIRED_LONG_STRING", "required"),
        ("DEPRECATED_STRING", "deprecated"),
    ):
        setattr(rich_utils, name, t(f"cli_fw.{key}", locale).replace("{value}", "{}"))
    usage = re.escape(t("cli_fw.usage", locale) + " ")

    class Highlighter(rich_utils.OptionHighlighter):
        """Highlight the translated usage prefix too."""

        highlights: ClassVar[list[str]] = [
            *rich_utils.OptionHighlighter.highlights,
            rf"(?P<usage>{usage})",
        ]

    rich_utils.highlighter = Highlighter()


def localise(command: Command, locale: str) -> None:
    """Show a command tree's help and the framework's strings in one language."""
    _framework(locale)
    _walk(command, locale)


def _hint(exc: BadParameter) -> str:
    """Return how the error names the parameter ('--days', 'FILE')."""
    if exc.param_hint is not None:
        hint = exc.param_hint
        return hint if isinstance(hint, str) else " / ".join(f"'{h}'" for h in hint)
    return exc.param.get_error_hint() if exc.param is not None else ""


DETAILS = (
    (re.compile(r"valid integer"), "not_integer"),
    (re.compile(r"valid number|valid float"), "not_number"),
    (re.compile(r"^\w+ (?P<path>'.*') does not exist\.$"), "path_missing"),
    (re.compile(r"^\w+ (?P<path>'.*') is a directory\.$"), "path_is_dir"),
    (re.compile(r"^\w+ (?P<path>'.*') is a file\.$"), "path_is_file"),
    (re.compile(r"^(?P<value>'.*') is not one of (?P<choices>.+)\.$"), "not_choice"),
    (re.compile(r"greater than or equal to (?P<n>\S+)$"), "at_least"),
    (re.compile(r"less than or equal to (?P<n>\S+)$"), "at_most"),
)
MESSAGES = (
    (re.compile(r"^No such command (?P<name>'.*?')\.(?: Did you mean (?P<close>.+)\?)?$"), ""),
    (re.compile(r"^Missing command\.$"), "missing_command"),
    (re.compile(r"^Got unexpected extra argument\(s\) \((?P<args>.*)\)$"), "extra_args"),
    (re.compile(r"^Option (?P<name>'.*') requires (an argument|\d+ arguments)\.$"), "needs_value"),
    (re.compile(r"^Option (?P<name>'.*') does not take a value\.$"), "takes_no_value"),
)


def _detail(message: str, locale: str) -> str:
    """Translate what typer says is wrong with a value, when it is a known phrase."""
    for pattern, key in DETAILS:
        found = pattern.search(message)
        if found:
            return t(f"cli_fw.{key}", locale, **found.groupdict())
    return message


def translate_error(exc: UsageError, locale: str) -> str:
    """Return a usage error's message in the language."""
    if isinstance(exc, MissingParameter):
        kind = "missing_argument" if exc.param_type == "argument" else "missing_option"
        if exc.param is not None and exc.param_type is None:
            kind = f"missing_{exc.param.param_type_name}"
        kind = kind if has_key(f"cli_fw.{kind}") else "missing_option"
        return t(f"cli_fw.{kind}", locale, name=_hint(exc))
    if isinstance(exc, BadParameter):
        detail = _detail(exc.message, locale)
        return t("cli_fw.bad_value", locale, name=_hint(exc), detail=detail)
    if isinstance(exc, NoSuchOption):
        text = t("cli_fw.no_such_option", locale, name=exc.option_name)
        if exc.possibilities:
            close = ", ".join(sorted(exc.possibilities))
            text += " " + t("cli_fw.did_you_mean", locale, close=close)
        return text
    message = exc.format_message()
    for pattern, key in MESSAGES:
        found = pattern.match(message)
        if found is None:
            continue
        if not key:
            text = t("cli_fw.no_such_command", locale, name=found["name"])
            if found["close"]:
                text += " " + t("cli_fw.did_you_mean", locale, close=found["close"])
            return text
        return t(f"cli_fw.{key}", locale, **{k: v for k, v in found.groupdict().items() if v})
    if isinstance(exc, BadOptionUsage):
        return t("cli_fw.bad_value", locale, name=exc.option_name, detail=message)
    return message


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Re-raise usage errors with their message in the configured language."""
    try:
        yield
    except NoArgsIsHelpError:
        raise
    except UsageError as exc:
        raise UsageError(translate_error(exc, _state["locale"]), exc.ctx) from None


class LocalisedGroup(TyperGroup):
    """The root command: reads the configured language, then shows everything in it."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Translate the command tree, then run the command line."""
        argv = kwargs.pop("args", None) if "args" in kwargs else (args[0] if args else None)
        argv = list(sys.argv[1:] if argv is None else argv)
        localise(self, configured_locale(argv))
        return super().main(argv, *args[1:], **kwargs)

    def make_context(self, *args: Any, **kwargs: Any) -> Context:
        """Parse the arguments; usage errors come out translated."""
        with _translated_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Context) -> Any:
        """Run the chosen command; usage errors come out translated."""
        with _translated_errors():
            return super().invoke(ctx)
