"""Uploaded files kept in memory, with Telegram-like file ids and paths."""

from __future__ import annotations

import mimetypes
import re
import secrets
import struct
from dataclasses import dataclass
from urllib.parse import unquote

from bot.sandbox.errors import JsonDict

GENERIC_MIME = "application/octet-stream"
PREFIXES = {"document": "BQAC", "photo": "AgAC"}
SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


@dataclass
class StoredFile:
    """One uploaded file."""

    file_id: str
    file_unique_id: str
    kind: str
    file_name: str
    mime_type: str
    data: bytes
    file_path: str
    width: int = 0
    height: int = 0

    @property
    def size(self) -> int:
        """Return the size in bytes."""
        return len(self.data)

    def to_document(self) -> JsonDict:
        """Return the Document object."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_name": self.file_name,
            "mime_type": self.mime_type,
            "file_size": self.size,
        }

    def to_photo(self) -> list[JsonDict]:
        """Return the PhotoSize array (one size: the original)."""
        return [
            {
                "file_id": self.file_id,
                "file_unique_id": self.file_unique_id,
                "width": self.width,
                "height": self.height,
                "file_size": self.size,
            }
        ]

    def to_file(self) -> JsonDict:
        """Return the File object getFile answers."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "file_path": self.file_path,
        }


class FileStore:
    """The files one bot knows, by file id and by file path."""

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._seq = 0

    def add(self, kind: str, file_name: str, mime_type: str | None, data: bytes) -> StoredFile:
        """Store an upload and return it with fresh ids."""
        self._seq += 1
        file_name = clean_file_name(file_name)
        mime = guess_mime(file_name, mime_type)
        width, height = image_size(data) or (0, 0)
        stored = StoredFile(
            file_id=f"{PREFIXES[kind]}{self.owner_id}_{self._seq}_{secrets.token_hex(6)}",
            file_unique_id=f"AQAD{self._seq}{secrets.token_hex(3)}",
            kind=kind,
            file_name=file_name,
            mime_type=mime,
            data=data,
            file_path=f"{kind}s/file_{self._seq}{_suffix(file_name, mime)}",
            width=width,
            height=height,
        )
        self._by_id[stored.file_id] = stored
        self._by_path[stored.file_path] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """Return a file by id."""
        return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        """Return a file by its path."""
        return self._by_path.get(file_path)

    def clear(self) -> None:
        """Forget every file."""
        self._by_id.clear()
        self._by_path.clear()


def clean_file_name(name: str | None) -> str:
    """Return an upload's file name, undoing percent-encoding some clients apply."""
    name = (name or "").strip()
    if PERCENT_ESCAPE.search(name):
        name = unquote(name, errors="strict") if _is_utf8_escaped(name) else name
    return name.replace("/", "_").replace("\\", "_") or "file"


def _is_utf8_escaped(name: str) -> bool:
    """Tell whether percent escapes in a name decode as UTF-8."""
    try:
        unquote(name, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def guess_mime(file_name: str, given: str | None) -> str:
    """Return the given MIME type, or one guessed from the file name."""
    if given and given != GENERIC_MIME:
        return given
    return mimetypes.guess_type(file_name)[0] or GENERIC_MIME


def _suffix(file_name: str, mime: str) -> str:
    """Return a safe file suffix for the file path."""
    dot = file_name.rfind(".")
    suffix = file_name[dot:] if dot > 0 else ""
    if SAFE_SUFFIX.match(suffix):
        return suffix.lower()
    return mimetypes.guess_extension(mime) or ""


def image_size(data: bytes) -> tuple[int, int] | None:
    """Return (width, height) of a PNG, GIF or JPEG image, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Find the frame size in a JPEG's start-of-frame segment."""
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            pos += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return None
