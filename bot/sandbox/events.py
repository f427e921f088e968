"""Chat events (new, edited, deleted messages, button answers) for the page's stream."""

from __future__ import annotations

import asyncio

from bot.sandbox.errors import JsonDict

ChatKey = tuple[int, int]


class EventHub:
    """Fan-out of chat events to the streams watching each (bot, chat)."""

    def __init__(self) -> None:
        self._subscribers: dict[ChatKey, set[asyncio.Queue[JsonDict | None]]] = {}

    def subscribe(self, key: ChatKey) -> asyncio.Queue[JsonDict | None]:
        """Return a new queue that receives the events of a chat."""
        queue: asyncio.Queue[JsonDict | None] = asyncio.Queue()
        self._subscribers.setdefault(key, set()).add(queue)
        return queue

    def unsubscribe(self, key: ChatKey, queue: asyncio.Queue[JsonDict | None]) -> None:
        """Stop sending events to a queue."""
        queues = self._subscribers.get(key)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[key]

    def publish(self, key: ChatKey, event: JsonDict) -> None:
        """Send an event to every watcher of a chat."""
        for queue in self._subscribers.get(key, ()):
            queue.put_nowait(event)

    def close(self) -> None:
        """End every stream (used on shutdown)."""
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)
        self._subscribers.clear()
