"""For channels without buttons: tell the recorder which numbered list a chat now sees."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.channels.contract import Outcome, Part, Progress, send_parts
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


async def send_parts_then_tell(
    on_choices: OnChoices | None,
    channel: str,
    chat_id: str,
    message: OutboundMessage,
    parts: Sequence[Part],
    *,
    first: int = 0,
    progress: Progress | None = None,
) -> Outcome:
    """Send a message's parts; once all are out (not before), remember the choices shown."""
    outcome = await send_parts(parts, first=first, progress=progress)
    if outcome.ok:
        await tell(on_choices, channel, chat_id, message)
    return outcome
