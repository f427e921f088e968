"""Store outbound messages as JSON (outbox payloads) and read them back unchanged."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from bot.i18n.formats import FormalTime
from bot.messages import Button, Html, Items, OutboundMessage, Text


def _encode(value: Any) -> Any:
    """Turn one parameter into JSON-safe data, tagging the types JSON lacks."""
    if isinstance(value, FormalTime):
        return {"$formal": _encode(value.moment)["$dt"]}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a message parameter")
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, Html):
        return {"$html": value.value}
    if isinstance(value, Text):
        return {"$text": value.key, "params": _encode_params(value.params)}
    if isinstance(value, Items):
        return {
            "$items": value.key,
            "rows": [_encode_params(r) for r in value.rows],
            "sep": value.sep,
        }
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot store a message parameter of type {type(value).__name__}")


def _encode_params(params: dict[str, Any]) -> dict[str, Any]:
    """Encode every parameter."""
    return {k: _encode(v) for k, v in params.items()}


def _decode(value: Any) -> Any:
    """Read one parameter back."""
    if isinstance(value, dict):
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$formal" in value:
            return FormalTime(datetime.fromisoformat(value["$formal"]))
        if "$d" in value:
            return date.fromisoformat(value["$d"])
        if "$html" in value:
            return Html(value["$html"])
        if "$text" in value:
            return Text(value["$text"], _decode_params(value["params"]))
        if "$items" in value:
            rows = tuple(_decode_params(r) for r in value["rows"])
            return Items(value["$items"], rows, value["sep"])
    return value


def _decode_params(params: dict[str, Any]) -> dict[str, Any]:
    """Decode every parameter."""
    return {k: _decode(v) for k, v in params.items()}


def dumps(message: OutboundMessage) -> str:
    """Serialise a message for the outbox."""
    return json.dumps(
        {
            "key": message.key,
            "params": _encode_params(message.params),
            "buttons": [
                [
                    {
                        "key": b.key,
                        "action": b.action,
                        "params": _encode_params(b.params),
                        "number": b.number,
                    }
                    for b in row
                ]
                for row in message.buttons
            ],
            "locale": message.locale,
            "attachment_id": message.attachment_id,
            "media": message.media,
        },
        ensure_ascii=False,
    )


def loads(payload: str) -> OutboundMessage:
    """Read a message back from the outbox."""
    data = json.loads(payload)
    buttons = tuple(
        tuple(
            Button(b["key"], b["action"], _decode_params(b["params"]), b.get("number")) for b in row
        )
        for row in data["buttons"]
    )
    return OutboundMessage(
        key=data["key"],
        params=_decode_params(data["params"]),
        buttons=buttons,
        locale=data.get("locale"),
        attachment_id=data.get("attachment_id"),
        media=data.get("media", "document"),
    )
