"""reply_markup: inline keyboards (validated like Telegram), reply keyboards and removal."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bot.sandbox.errors import JsonDict, bad_request

ACTION_FIELDS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
BUTTON_URL = re.compile(r"^(?:https?|tg)://\S+$", re.IGNORECASE)


@dataclass(frozen=True)
class Markup:
    """A parsed reply_markup: the inline keyboard echoed in the message, or a chat keyboard."""

    inline: JsonDict | None = None
    keyboard: JsonDict | None = None
    remove_keyboard: bool = False


def parse_markup(raw: Any) -> Markup:
    """Parse and validate a reply_markup parameter (JSON string or object)."""
    if raw is None or raw == "":
        return Markup()
    data = _load(raw)
    if "inline_keyboard" in data:
        return Markup(inline=_inline(data["inline_keyboard"]))
    if "keyboard" in data:
        return Markup(keyboard=_reply_keyboard(data))
    if data.get("remove_keyboard") is True:
        return Markup(remove_keyboard=True)
    if data.get("force_reply") is True:
        return Markup()
    raise bad_request("object expected as reply markup")


def _load(raw: Any) -> JsonDict:
    """Decode the markup JSON."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise bad_request("can't parse reply keyboard markup JSON object") from None
    if not isinstance(raw, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return raw


def _rows(rows: Any, field: str, kind: str) -> list[list[Any]]:
    """Check that a keyboard is an array of arrays."""
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(f'field "{field}" of the {kind} should be an Array of Arrays')
    return rows


def _inline(rows: Any) -> JsonDict | None:
    """Validate an inline keyboard; return None when it has no buttons."""
    checked = [
        [_inline_button(button) for button in row]
        for row in _rows(rows, "inline_keyboard", "InlineKeyboardMarkup")
    ]
    checked = [row for row in checked if row]
    return {"inline_keyboard": checked} if checked else None


def _inline_button(button: Any) -> JsonDict:
    """Validate one inline button."""
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    actions = [name for name in ACTION_FIELDS if name in button]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button and not (isinstance(button["url"], str) and BUTTON_URL.match(button["url"])):
        raise bad_request(
            f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL"
        )
    return {"text": button["text"], **{name: button[name] for name in actions}}


def _reply_keyboard(data: JsonDict) -> JsonDict:
    """Validate a reply keyboard and normalise its buttons to objects."""
    rows = _rows(data["keyboard"], "keyboard", "ReplyKeyboardMarkup")
    keyboard = [[_reply_button(button) for button in row] for row in rows]
    extras: JsonDict = {
        key: data[key]
        for key in (
            "resize_keyboard",
            "one_time_keyboard",
            "input_field_placeholder",
            "is_persistent",
            "selective",
        )
        if key in data
    }
    return {"keyboard": keyboard, **extras}


def _reply_button(button: Any) -> JsonDict:
    """Validate one reply keyboard button (a string or an object with text)."""
    if isinstance(button, str):
        return {"text": button}
    if isinstance(button, dict) and isinstance(button.get("text"), str):
        return dict(button)
    raise bad_request('can\'t parse keyboard button: Field "text" must be of type String')
