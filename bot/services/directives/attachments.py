"""Files attached to directives and broadcasts, kept in the database."""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import datetime
from pathlib import PurePath

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Attachment, AttachmentFile
from bot.services.errors import InvalidInput

MAX_BYTES = 20 * 1024 * 1024
ALLOWED = {
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}


def mime_for(name: str) -> str:
    """Return the MIME type of an allowed file name, or raise naming the file."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in ALLOWED:
        raise InvalidInput(
            "attachment.bad_type", name=name[:100], allowed="PDF, DOC(X), XLS(X), JPG, PNG"
        )
    return ALLOWED[suffix] or mimetypes.guess_type(name)[0] or "application/octet-stream"


def store(
    session: AsyncSession,
    *,
    name: str,
    data: bytes,
    now: datetime,
) -> Attachment:
    """Validate and keep a file; return its row (in the caller's transaction)."""
    mime = mime_for(name)
    if not data:
        raise InvalidInput("attachment.empty", name=name[:100])
    if len(data) > MAX_BYTES:
        raise InvalidInput("attachment.too_big", name=name[:100], limit_mb=MAX_BYTES // 2**20)
    row = Attachment(
        file_name=PurePath(name).name[:255],
        mime_type=mime,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        created_at=now,
    )
    session.add(row)
    return row


async def keep_upload(
    session: AsyncSession, *, name: str, data: bytes, now: datetime, channel: str, file_id: str
) -> Attachment:
    """Keep a file a user sent, with the id its channel gave it; return the flushed row."""
    row = store(session, name=name, data=data, now=now)
    await session.flush()
    assert row.id is not None
    session.add(AttachmentFile(attachment_id=row.id, channel=channel, file_id=file_id))
    return row
