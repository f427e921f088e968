"""What a handler gets: the event, a database session, the actor, settings and the clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.db import SessionMaker
from bot.messages import Button, InboundEvent, OutboundMessage
from bot.models import Contact
from bot.services.delivery.contacts import ContactCache
from bot.services.flows import FlowCache
from bot.services.org.access import Actor


@dataclass(frozen=True)
class Deps:
    """Long-lived things every handler may use."""

    maker: SessionMaker
    settings: Settings
    clock: Clock
    bot_username: str | None = None
    fetch_file: Callable[[str], Awaitable[bytes]] | None = None
    contacts: ContactCache = field(default_factory=ContactCache)
    flows: FlowCache = field(default_factory=FlowCache)


@dataclass
class Context:
    """One event being handled, inside one database transaction."""

    event: InboundEvent
    session: AsyncSession
    actor: Actor
    contact: Contact
    deps: Deps

    @property
    def now(self) -> datetime:
        """Return the current time from the injected clock."""
        return self.deps.clock.now()

    @property
    def locale(self) -> str:
        """Return the language to answer in."""
        return self.contact.locale


def msg(
    key: str, *, buttons: tuple[tuple[Button, ...], ...] = (), edit: bool = False, **params: Any
) -> OutboundMessage:
    """Build an outbound message from a catalog key and its parameters."""
    return OutboundMessage(key=key, params=params, buttons=buttons, edit=edit)
