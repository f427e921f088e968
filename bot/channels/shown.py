"""For channels without buttons: tell the recorder which numbered list a chat now sees."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.messages import OutboundMessage

log = logging.getLogger(__name__)

# Remember the list of choices a chat was shown last (its typed answers map to them).
OnChoices = Callable[[str, OutboundMessage], Awaitable[None]]


async def tell(
    on_choices: OnChoices | None, channel: str, chat_id: str, message: OutboundMessage
) -> None:
    """Pass a message with buttons to the recorder; a failure only logs (the send went out)."""
    if on_choices is None or not message.buttons:
        return
    try:
        await on_choices(chat_id, message)
    except Exception:
        log.exception("could not remember the choices shown to %s chat %s", channel, chat_id)
