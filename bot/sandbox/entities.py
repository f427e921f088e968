"""Message entities: UTF-16 offsets, bot commands in user text, trimming like Telegram."""

from __future__ import annotations

import re
from typing import Any

from bot.sandbox.errors import JsonDict, bad_request

COMMAND = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w@/])")


def utf16_len(text: str) -> int:
    """Return the length of `text` in UTF-16 code units, the unit of entity offsets."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def command_entities(text: str) -> list[JsonDict]:
    """Return bot_command entities for every /command in a user's text."""
    return [
        {
            "type": "bot_command",
            "offset": utf16_len(text[: match.start()]),
            "length": utf16_len(match.group()),
        }
        for match in COMMAND.finditer(text)
    ]


def sort_entities(entities: list[JsonDict]) -> list[JsonDict]:
    """Sort entities by offset, outer ones first (on equal spans, the one closed last)."""
    order = sorted(
        enumerate(entities),
        key=lambda pair: (pair[1]["offset"], -pair[1]["length"], -pair[0]),
    )
    return [entity for _, entity in order]


def trim(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Strip leading and trailing whitespace, moving and clipping entities to match."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    kept: list[JsonDict] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def check_entities(raw: Any, text: str) -> list[JsonDict]:
    """Validate an explicit `entities` parameter against the text."""
    if not isinstance(raw, list):
        raise bad_request("can't parse entities JSON object")
    total = utf16_len(text)
    checked = [_check_entity(item, total) for item in raw]
    return sort_entities(checked)


def _check_entity(item: Any, total: int) -> JsonDict:
    """Validate one explicit entity."""
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise bad_request('can\'t parse MessageEntity: Field "type" must be of type String')
    offset, length = item.get("offset"), item.get("length")
    if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 1:
        raise bad_request("can't parse MessageEntity: wrong offset or length")
    if offset + length > total:
        raise bad_request("entity end is beyond the end of the text")
    return dict(item)
