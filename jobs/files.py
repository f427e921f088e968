"""Attachments as the dispatcher sends them: bytes for the first upload, the platform id after."""

from __future__ import annotations

import asyncio

from sqlmodel import col, select, update

from bot.db import SessionMaker, transaction
from bot.messages import StoredFile
from bot.models import Attachment


class Undeliverable(Exception):
    """The row can never be sent (missing attachment, unreadable payload)."""


class Attachments:
    """Attachments by id: the platform's file id once known (cached here and in the DB)."""

    def __init__(self, maker: SessionMaker) -> None:
        self.maker = maker
        self._known: dict[int, StoredFile] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def lock(self, attachment_id: int) -> asyncio.Lock:
        """Return the lock that lets only one first upload of a file happen."""
        return self._locks.setdefault(attachment_id, asyncio.Lock())

    async def get(self, attachment_id: int, *, with_data: bool = False) -> StoredFile:
        """Return the file: its platform id when known, else (when asked) its bytes."""
        known = self._known.get(attachment_id)
        if known is not None:
            return known
        columns = select(Attachment.file_name, Attachment.mime_type, Attachment.telegram_file_id)
        async with self.maker() as session:
            found = (await session.exec(columns.where(Attachment.id == attachment_id))).first()
            if found is None:
                raise Undeliverable(f"attachment {attachment_id} missing")
            name, mime_type, file_id = found
            if file_id:
                self._known[attachment_id] = StoredFile(name, mime_type, file_id=file_id)
                return self._known[attachment_id]
            data = None
            if with_data:
                stmt = select(Attachment.data).where(Attachment.id == attachment_id)
                data = (await session.exec(stmt)).first()
        return StoredFile(name, mime_type, data=data)

    async def remember(self, attachment_id: int, file: StoredFile, file_id: str) -> None:
        """Store the platform's id of an uploaded file."""
        self._known[attachment_id] = StoredFile(file.name, file.mime_type, file_id=file_id)
        await self._store(attachment_id, file_id)

    async def forget(self, attachment_id: int) -> None:
        """Drop a file id the platform no longer accepts."""
        self._known.pop(attachment_id, None)
        await self._store(attachment_id, None)

    async def _store(self, attachment_id: int, file_id: str | None) -> None:
        """Write the file id to the attachment row."""
        async with transaction(self.maker) as session:
            await session.exec(
                update(Attachment)
                .where(col(Attachment.id) == attachment_id)
                .values(telegram_file_id=file_id)
            )
