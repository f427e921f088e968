"""What a route is: a command with its audience, a handler; and helpers handlers share.

The routes themselves, in order, are listed in handlers/routes.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.messages import OutboundMessage
from bot.models import Role
from handlers.context import Context

Handler = Callable[[Context], Awaitable[list[OutboundMessage]]]

EVERYONE = "everyone"
STAFF = "staff"


@dataclass(frozen=True)
class Command:
    """A slash command: its handler and the audience it is offered to in /help."""

    name: str
    handler: Handler
    audience: str | frozenset[Role] = EVERYONE

    @property
    def help_key(self) -> str:
        """Return the catalog key describing the command."""
        return f"help.cmd.{self.name}"

    @property
    def roles(self) -> frozenset[Role]:
        """Return the roles the command needs (empty when open to everyone or all staff)."""
        return self.audience if isinstance(self.audience, frozenset) else frozenset()


def row_id(text: str) -> int | None:
    """Read the id a button carries; None for anything forged or malformed ('abc', '-1')."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value < 2**31 else None


def roles_only(*roles: Role) -> frozenset[Role]:
    """Return an audience of the given roles."""
    return frozenset(roles)
