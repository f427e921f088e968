"""The command line's shared consoles, made independent of the terminal that runs the tests."""

from __future__ import annotations

import pytest

from bot.cli import common

WIDE = 200


def plain_consoles(monkeypatch: pytest.MonkeyPatch, width: int = WIDE) -> None:
    """Make the CLI's consoles print as into a file `width` columns wide, without colours.

    Rich sizes a console by the terminal of stdin (which pytest does not capture) or COLUMNS,
    and picks its colours once, when bot.cli.common is imported (with `-s` in a terminal: colour
    codes in every later result). Only fields are patched, undone to what they were: Rich's
    `width` property would read the width back and pin it on the shared console when undone.
    """
    for console in (common.console, common.err):
        monkeypatch.setattr(console, "_width", width)
        monkeypatch.setattr(console, "_color_system", None)
