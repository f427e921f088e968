"""Database tables (SQLModel); every time is stored in UTC."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlmodel import Column, Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as naive UTC; give them back as aware UTC."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to naive UTC before writing."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Mark values read back as UTC."""
        return value.replace(tzinfo=UTC) if value is not None else None


def utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    """Return a UTC timestamp column."""
    return Column(UTCDateTime(), nullable=nullable, index=index)


class UnitKind(enum.StrEnum):
    """What a unit is in the department's organisation."""

    DEPARTMENT = "department"
    OFFICE = "office"
    AFFILIATED = "affiliated"
    DISTRICT_OFFICE = "district_office"
    SCHOOL = "school"
    ONE_STOP = "one_stop"


class Role(enum.StrEnum):
    """What a person may do; a person may hold several."""

    ADMIN = "admin"
    LEADER = "leader"
    UNIT_HEAD = "unit_head"
    STAFF = "staff"


class Channel(enum.StrEnum):
    """A chat platform."""

    TELEGRAM = "telegram"
    ZALO = "zalo"


class UnitBase(SQLModel):
    """Fields of a unit."""

    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False, index=True))
    name: str = Field(max_length=255)
    kind: UnitKind = Field(sa_column=Column(String(32), nullable=False))
    parent_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    active: bool = True


class Unit(UnitBase, table=True):
    """A unit of the organisation: an office, a district office, a school, a one-stop desk."""

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=utc_column(nullable=False))


class PersonBase(SQLModel):
    """Fields of a person."""

    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False, index=True))
    full_name: str = Field(max_length=255)
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    title: str | None = Field(default=None, max_length=255)
    phone: str | None = Field(default=None, max_length=20)
    email: str | None = Field(default=None, max_length=255)
    locale: str = Field(default="vi", max_length=8)
    active: bool = True


class Person(PersonBase, table=True):
    """A member of staff (cán bộ, công chức, viên chức), a head, an admin."""

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=utc_column(nullable=False))


class PersonRole(SQLModel, table=True):
    """One role held by one person."""

    __tablename__ = "person_role"

    person_id: int = Field(foreign_key="person.id", primary_key=True, ondelete="CASCADE")
    role: Role = Field(sa_column=Column(String(16), primary_key=True))


class Contact(SQLModel, table=True):
    """A chat account on one channel; linked to a person, or to none for a citizen."""

    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_contact_channel_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: Channel = Field(sa_column=Column(String(16), nullable=False))
    external_id: str = Field(max_length=64)
    display_name: str | None = Field(default=None, max_length=255)
    locale: str = Field(default="vi", max_length=8)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    opted_out: bool = False
    blocked_at: datetime | None = Field(default=None, sa_column=utc_column())
    last_seen_at: datetime | None = Field(default=None, sa_column=utc_column())
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class Invite(SQLModel, table=True):
    """A single-use, expiring code that links a chat account to a person."""

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    person_id: int = Field(foreign_key="person.id", index=True)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    expires_at: datetime = Field(sa_column=utc_column(nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=utc_column())
    used_by_contact_id: int | None = Field(default=None, foreign_key="contact.id")
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column())


class AuditLog(SQLModel, table=True):
    """Who did what, when: one row per administrative action."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=utc_column(nullable=False))
    actor: str = Field(max_length=128)
    action: str = Field(max_length=64)
    subject: str | None = Field(default=None, max_length=255)
    count: int | None = None
    detail: str | None = Field(default=None, max_length=2000)
