"""Builders of Telegram updates (as dicts) for handler tests."""

from __future__ import annotations

import itertools
import time
from typing import Any

_update_ids = itertools.count(1)
_message_ids = itertools.count(1)


def user(uid: int, first_name: str = "Người dùng", language_code: str = "vi") -> dict[str, Any]:
    """Return a Telegram user."""
    return {"id": uid, "is_bot": False, "first_name": first_name, "language_code": language_code}


def text_update(
    uid: int, text: str, *, chat_type: str = "private", name: str = "Người dùng"
) -> dict[str, Any]:
    """Return an update carrying a text message (a command gets its bot_command entity)."""
    chat: dict[str, Any] = {"id": uid, "type": chat_type, "first_name": name}
    if chat_type != "private":
        chat = {"id": -100 - uid, "type": chat_type, "title": "Nhóm"}
    message: dict[str, Any] = {
        "message_id": next(_message_ids),
        "date": int(time.time()),
        "chat": chat,
        "from": user(uid, name),
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": next(_update_ids), "message": message}


def callback_update(uid: int, data: str, message_id: int = 5) -> dict[str, Any]:
    """Return an update for a pressed inline button."""
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": str(next(_update_ids)),
            "from": user(uid),
            "chat_instance": "ci",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": uid, "type": "private", "first_name": "x"},
                "from": {"id": 1, "is_bot": True, "first_name": "bot"},
                "text": "?",
            },
        },
    }


def blocked_update(uid: int, status: str = "kicked") -> dict[str, Any]:
    """Return a my_chat_member update: the user blocked (kicked) or restarted (member) the bot."""
    bot_member = {"id": 1, "is_bot": True, "first_name": "bot"}
    return {
        "update_id": next(_update_ids),
        "my_chat_member": {
            "chat": {"id": uid, "type": "private", "first_name": "x"},
            "from": user(uid),
            "date": int(time.time()),
            "old_chat_member": {"status": "member", "user": bot_member},
            "new_chat_member": {
                "status": status,
                "user": bot_member,
                **({"until_date": 0} if status == "kicked" else {}),
            },
        },
    }
