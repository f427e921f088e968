"""Attachments as the dispatcher sends them: bytes for the first upload, each channel's id after."""

from __future__ import annotations

import asyncio

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import SessionMaker, transaction
from bot.messages import StoredFile
from bot.models import Attachment, AttachmentFile


class Undeliverable(Exception):
    """The row can never be sent (missing attachment, unreadable payload)."""


Key = tuple[int, str]


class Attachments:
    """Attachments by id and channel: the channel's file id once known (cached and stored)."""

    def __init__(self, maker: SessionMaker) -> None:
        self.maker = maker
        self._known: dict[Key, StoredFile] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    def lock(self, attachment_id: int, channel: str) -> asyncio.Lock:
        """Return the lock that lets only one first upload of a file to a channel happen."""
        return self._locks.setdefault((attachment_id, channel), asyncio.Lock())

    async def get(
        self, attachment_id: int, channel: str, *, with_data: bool = False, fresh: bool = False
    ) -> StoredFile:
        """Return the file: the channel's id for it when known, else (when asked) its bytes."""
        known = None if fresh else self._known.get((attachment_id, channel))
        if known is not None:
            return known
        columns = select(Attachment.file_name, Attachment.mime_type, AttachmentFile.file_id)
        stmt = columns.outerjoin(
            AttachmentFile,
            (col(AttachmentFile.attachment_id) == Attachment.id)
            & (col(AttachmentFile.channel) == channel),
        ).where(Attachment.id == attachment_id)
        async with self.maker() as session:
            found = (await session.exec(stmt)).first()
            if found is None:
                raise Undeliverable(f"attachment {attachment_id} missing")
            name, mime_type, file_id = found
            if file_id and not fresh:
                self._known[attachment_id, channel] = StoredFile(name, mime_type, file_id=file_id)
                return self._known[attachment_id, channel]
            data = None
            if with_data:
                data_stmt = select(Attachment.data).where(Attachment.id == attachment_id)
                data = (await session.exec(data_stmt)).first()
        return StoredFile(name, mime_type, data=data)

    async def remember(
        self, attachment_id: int, channel: str, file: StoredFile, file_id: str
    ) -> None:
        """Store the id a channel gave an uploaded file."""
        self._known[attachment_id, channel] = StoredFile(file.name, file.mime_type, file_id=file_id)
        async with transaction(self.maker) as session:
            await self._drop(session, attachment_id, channel)
            session.add(
                AttachmentFile(attachment_id=attachment_id, channel=channel, file_id=file_id)
            )

    async def forget(self, attachment_id: int, channel: str, file_id: str) -> None:
        """Drop a file id the channel no longer accepts (not a newer one stored meanwhile)."""
        known = self._known.get((attachment_id, channel))
        if known is not None and known.file_id == file_id:
            del self._known[attachment_id, channel]
        async with transaction(self.maker) as session:
            await self._drop(session, attachment_id, channel, file_id)

    @staticmethod
    async def _drop(
        session: AsyncSession, attachment_id: int, channel: str, file_id: str | None = None
    ) -> None:
        """Delete the channel's file id of an attachment (only `file_id`, when given)."""
        only = [] if file_id is None else [col(AttachmentFile.file_id) == file_id]
        await session.exec(
            delete(AttachmentFile).where(
                col(AttachmentFile.attachment_id) == attachment_id,
                col(AttachmentFile.channel) == channel,
                *only,
            )
        )
