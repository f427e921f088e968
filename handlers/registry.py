"""The ordered registry of commands and button namespaces, with who may see each."""

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


COMMANDS: dict[str, Command] = {}
ACTIONS: dict[str, Handler] = {}


def command(name: str, audience: str | frozenset[Role] = EVERYONE) -> Callable[[Handler], Handler]:
    """Register a handler for /name, in the order of registration."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"command /{name} registered twice")
        COMMANDS[name] = Command(name, handler, audience)
        return handler

    return register


def action(namespace: str) -> Callable[[Handler], Handler]:
    """Register a handler for buttons whose action starts with 'namespace:'."""

    def register(handler: Handler) -> Handler:
        if namespace in ACTIONS:
            raise ValueError(f"action namespace {namespace} registered twice")
        ACTIONS[namespace] = handler
        return handler

    return register


def row_id(text: str) -> int | None:
    """Read the id a button carries; None for anything forged or malformed ('abc', '-1')."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value < 2**31 else None


def roles_only(*roles: Role) -> frozenset[Role]:
    """Return an audience of the given roles."""
    return frozenset(roles)
