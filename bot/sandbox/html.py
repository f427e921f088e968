"""Telegram's HTML parse mode: the allowed tags, entities, and the same error messages."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.sandbox.entities import sort_entities
from bot.sandbox.errors import JsonDict, bad_request

ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
}
NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
SPACES = " \t\r\n\v\0"
ENTITY = re.compile(r"&(?:#x([0-9a-fA-F]*)|#([0-9]*)|([A-Za-z]*))")
PLAIN = re.compile(r"[^<&]+")  # a run of plain text, taken at once
NAME_TOKEN = re.compile(r"[A-Za-z0-9.-]*")
URL_WITH_SCHEME = re.compile(r"^(?:https?|tg|ton|ftp)://\S+$|^mailto:\S+$", re.IGNORECASE)
BARE_DOMAIN = re.compile(r"^[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}(?:[/?#]\S*)?$", re.IGNORECASE)


class HtmlError(Exception):
    """A parse error, worded like Telegram's."""


@dataclass
class _Open:
    """A start tag waiting for its end tag."""

    tag: str
    argument: str
    offset: int
    position: int


def parse_html(text: str) -> tuple[str, list[JsonDict]]:
    """Parse Telegram HTML into plain text and entities, or raise a 400 ApiError."""
    try:
        return _Parser(text).run()
    except HtmlError as exc:
        raise bad_request(f"can't parse entities: {exc}") from None


def decode_entity(text: str, pos: int) -> tuple[str, int] | None:
    """Decode the HTML entity at `pos`; return the character and the next position."""
    match = ENTITY.match(text, pos)
    if match is None:
        return None
    end = match.end()
    hexadecimal, decimal, name = match.groups()
    if name is not None:
        char = NAMED.get(name)
        if char is None:
            return None
    else:
        digits = hexadecimal if hexadecimal is not None else decimal
        if not digits or end - pos >= 10:
            return None
        value = int(digits, 16 if hexadecimal is not None else 10)
        if value == 0 or value >= 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            return None
        char = chr(value)
    return char, end + (text[end : end + 1] == ";")


def _at(text: str, pos: int) -> str:
    """Return the character at `pos`, or "" past the end."""
    return text[pos] if pos < len(text) else ""


def _is_space(char: str) -> bool:
    """Tell whether a character is a space for the tag parser (the end counts as one)."""
    return char == "" or char in SPACES


def link_url(url: str) -> str | None:
    """Return the URL of a text link, or None when Telegram would drop the link."""
    url = url.strip()
    if URL_WITH_SCHEME.match(url):
        return url
    if BARE_DOMAIN.match(url):
        return f"http://{url}"
    return None


class _Parser:
    """A port of the Bot API's HTML parser, working on characters."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.out: list[str] = []
        self.utf16 = 0
        self.stack: list[_Open] = []
        self.entities: list[JsonDict] = []

    def run(self) -> tuple[str, list[JsonDict]]:
        """Parse the whole text."""
        while self.pos < len(self.text):
            self._step()
        if self.stack:
            raise HtmlError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].tag}"'
            )
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)
        return "".join(self.out), sort_entities(self.entities)

    def _step(self) -> None:
        """Consume one character, entity or tag."""
        char = self.text[self.pos]
        if char == "&":
            decoded = decode_entity(self.text, self.pos)
            if decoded is not None:
                self._emit(decoded[0])
                self.pos = decoded[1]
            else:
                self._emit(char)
                self.pos += 1
        elif char != "<":
            match = PLAIN.match(self.text, self.pos)
            end = match.end() if match else self.pos + 1
            self._emit(self.text[self.pos : end])
            self.pos = end
        elif _at(self.text, self.pos + 1) == "/":
            self._end_tag()
        else:
            self._start_tag()

    def _emit(self, chars: str) -> None:
        """Append plain text, counting its length in UTF-16 code units as Telegram does."""
        self.out.append(chars)
        if chars.isascii():
            self.utf16 += len(chars)
        else:
            self.utf16 += len(chars.encode("utf-16-le", "surrogatepass")) // 2

    def _byte_offset(self, pos: int) -> int:
        """Return the UTF-8 byte offset of a character position, as Telegram reports it."""
        return len(self.text[:pos].encode("utf-8", "surrogatepass"))

    def _skip_spaces(self) -> None:
        """Skip spaces inside a tag."""
        while self.pos < len(self.text) and self.text[self.pos] in SPACES:
            self.pos += 1

    def _start_tag(self) -> None:
        """Parse a start tag and its attributes."""
        begin = self.pos
        at = self._byte_offset(begin)
        self.pos += 1
        while not _is_space(_at(self.text, self.pos)) and self.text[self.pos] != ">":
            self.pos += 1
        if self.pos >= len(self.text):
            raise HtmlError(f"Unclosed start tag at byte offset {at}")
        tag = self.text[begin + 1 : self.pos].lower()
        if tag not in ALLOWED_TAGS:
            raise HtmlError(f'Unsupported start tag "{tag}" at byte offset {at}')
        argument = ""
        while _at(self.text, self.pos) != ">":
            self._skip_spaces()
            if _at(self.text, self.pos) == ">":
                break
            argument = self._attribute(tag, at, argument)
        if tag == "span" and argument != "spoiler":
            raise HtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
        self.stack.append(_Open(tag, argument, self.utf16, len(self.out)))
        self.pos += 1

    def _attribute(self, tag: str, at: int, argument: str) -> str:
        """Parse one attribute; return the tag's argument, updated if the attribute is one."""
        begin = self.pos
        while not _is_space(_at(self.text, self.pos)) and self.text[self.pos] not in "=>":
            self.pos += 1
        name = self.text[begin : self.pos]
        if not name:
            raise HtmlError(f'Empty attribute name in the tag "{tag}" at byte offset {at}')
        self._skip_spaces()
        if _at(self.text, self.pos) != "=" and tag == "blockquote" and name == "expandable":
            return "1"
        if _at(self.text, self.pos) != "=":
            raise HtmlError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {at}"
            )
        self.pos += 1
        self._skip_spaces()
        if self.pos >= len(self.text):
            raise HtmlError(f'Unclosed start tag "{tag}" at byte offset {at}')
        value = self._value()
        if self.pos >= len(self.text):
            raise HtmlError(f"Unclosed start tag at byte offset {at}")
        return _argument(tag, name, value, argument)

    def _value(self) -> str:
        """Parse an attribute value: a quoted string or a name token."""
        quote = self.text[self.pos]
        if quote not in "'\"":
            match = NAME_TOKEN.match(self.text, self.pos)
            end = match.end() if match else self.pos
            value, self.pos = self.text[self.pos : end].lower(), end
            if not _is_space(_at(self.text, end)) and self.text[end] != ">":
                raise HtmlError(
                    f"Unexpected end of name token at byte offset {self._byte_offset(end)}"
                )
            return value
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            decoded = decode_entity(self.text, self.pos) if self.text[self.pos] == "&" else None
            if decoded is None:
                chars.append(self.text[self.pos])
                self.pos += 1
            else:
                chars.append(decoded[0])
                self.pos = decoded[1]
        self.pos += _at(self.text, self.pos) == quote
        return "".join(chars)

    def _end_tag(self) -> None:
        """Parse an end tag and close the matching entity."""
        begin = self.pos
        at = self._byte_offset(begin)
        if not self.stack:
            raise HtmlError(f"Unexpected end tag at byte offset {at}")
        self.pos += 2
        while not _is_space(_at(self.text, self.pos)) and self.text[self.pos] != ">":
            self.pos += 1
        name = self.text[begin + 2 : self.pos]
        self._skip_spaces()
        if _at(self.text, self.pos) != ">":
            raise HtmlError(f"Unclosed end tag at byte offset {at}")
        opened = self.stack.pop()
        if name and name != opened.tag:
            raise HtmlError(
                f'Unmatched end tag at byte offset {at}, expected "</{opened.tag}>", '
                f'found "</{name}>"'
            )
        if self.utf16 > opened.offset:
            self._close(opened)
        self.pos += 1

    def _close(self, opened: _Open) -> None:
        """Add the entity for a closed tag."""
        span = {"offset": opened.offset, "length": self.utf16 - opened.offset}
        tag = opened.tag
        if tag in SIMPLE_TAGS:
            self.entities.append({"type": SIMPLE_TAGS[tag], **span})
        elif tag == "a":
            url = link_url(opened.argument or "".join(self.out[opened.position :]))
            if url is not None:
                self.entities.append({"type": "text_link", **span, "url": url})
        elif tag == "code":
            self.entities.append({"type": "code", **span, "language": opened.argument})
        elif tag == "pre":
            self._close_pre(span)
        elif tag == "tg-emoji":
            if opened.argument.isdigit():
                self.entities.append(
                    {"type": "custom_emoji", **span, "custom_emoji_id": opened.argument}
                )
        else:
            kind = "expandable_blockquote" if opened.argument else "blockquote"
            self.entities.append({"type": kind, **span})

    def _close_pre(self, span: JsonDict) -> None:
        """Add a pre entity, taking the language of a code tag that fills it."""
        last = self.entities[-1] if self.entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == span["offset"]
            and last["length"] == span["length"]
            and last.get("language")
        ):
            self.entities[-1] = {"type": "pre", **span, "language": last["language"]}
        else:
            self.entities.append({"type": "pre", **span})


def _argument(tag: str, name: str, value: str, argument: str) -> str:
    """Return the argument an attribute gives a tag (href, language, spoiler...)."""
    if tag == "a" and name == "href":
        return value
    if tag == "code" and name == "class" and value.startswith("language-"):
        return value[len("language-") :]
    if tag == "span" and name == "class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if tag == "tg-emoji" and name == "emoji-id":
        return value
    if tag == "blockquote" and name == "expandable":
        return "1"
    return argument
