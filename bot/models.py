"""Database tables (SQLModel); every time is stored in UTC."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Index,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
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
    DISTRICT_OFFICE = "district_office"  # legacy imports only: gone since 1 July 2025
    COMMUNE = "commune"  # UBND xã, phường, đặc khu (two-tier local government since 07/2025)
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
    ZALO_OA = "zalo_oa"


class UnitBase(SQLModel):
    """Fields of a unit."""

    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False, index=True))
    name: str = Field(max_length=255)
    kind: UnitKind = Field(sa_column=Column(String(32), nullable=False))
    parent_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    active: bool = True


class Unit(UnitBase, table=True):
    """A unit of the organisation: an office, a commune committee, a school, a one-stop desk."""

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
    preferred_channel: str | None = Field(default=None, max_length=16)  # None: the latest seen


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


class OutboxStatus(enum.StrEnum):
    """Where an outbound message stands."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Outbox(SQLModel, table=True):
    """A message to deliver, written in the same transaction as the change that causes it."""

    __table_args__ = (
        Index("ix_outbox_due", "status", "due_at", "priority", "id"),
        Index("ix_outbox_ref", "kind", "ref_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    due_at: datetime = Field(sa_column=utc_column(nullable=False))
    status: OutboxStatus = Field(
        default=OutboxStatus.PENDING, sa_column=Column(String(16), nullable=False)
    )
    priority: int = 100
    kind: str = Field(max_length=32)
    ref_id: int | None = None
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    channel: Channel = Field(sa_column=Column(String(16), nullable=False))
    chat_id: str = Field(max_length=64)
    is_group: bool = False
    paid: bool = False
    payload: str = Field(sa_column=Column(Text, nullable=False))
    attempts: int = 0
    parts_sent: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_column=utc_column())
    sent_at: datetime | None = Field(default=None, sa_column=utc_column())
    platform_message_id: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=500)


class JobLease(SQLModel, table=True):
    """Who runs the scheduled jobs and the dispatcher now (SQLite; PostgreSQL also locks)."""

    __tablename__ = "job_lease"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    owner: str = Field(max_length=64)
    expires_at: datetime = Field(sa_column=utc_column(nullable=False))


class Attachment(SQLModel, table=True):
    """A file sent with a directive or a broadcast (kept in the database, cached per channel)."""

    id: int | None = Field(default=None, primary_key=True)
    file_name: str = Field(max_length=255)
    mime_type: str = Field(max_length=128)
    size: int
    sha256: str = Field(max_length=64, index=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class AttachmentFile(SQLModel, table=True):
    """The id a channel gave an attachment once it had the file (later sends go by this id)."""

    __tablename__ = "attachment_file"

    attachment_id: int = Field(foreign_key="attachment.id", primary_key=True, ondelete="CASCADE")
    channel: str = Field(sa_column=Column(String(16), primary_key=True))
    file_id: str = Field(max_length=255)


class Audience(enum.StrEnum):
    """Who in the targeted units receives a directive."""

    EVERYONE = "everyone"
    HEADS = "heads"


class Directive(SQLModel, table=True):
    """A directive notice (công văn, chỉ đạo) pushed to the staff of targeted units."""

    __table_args__ = (Index("ix_directive_created", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=64)
    issued_on: date
    title: str = Field(max_length=500)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    attachment_id: int | None = Field(default=None, foreign_key="attachment.id")
    audience: Audience = Field(sa_column=Column(String(16), nullable=False))
    target: str = Field(max_length=500)
    ack_deadline: datetime = Field(sa_column=utc_column(nullable=False))
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=utc_column())
    admins_escalated_at: datetime | None = Field(default=None, sa_column=utc_column())


class DirectiveUnit(SQLModel, table=True):
    """A unit a directive targets."""

    __tablename__ = "directive_unit"

    directive_id: int = Field(foreign_key="directive.id", primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", primary_key=True)


class DirectiveRecipient(SQLModel, table=True):
    """One targeted person of a directive: delivery, acknowledgement, reminders, escalation."""

    __tablename__ = "directive_recipient"
    __table_args__ = (
        UniqueConstraint("directive_id", "person_id", name="uq_recipient_person"),
        Index("ix_recipient_open", "directive_id", "acked_at"),
        Index("ix_recipient_report", "directive_id", "unit_id", "acked_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    directive_id: int = Field(foreign_key="directive.id")
    person_id: int = Field(foreign_key="person.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    message_id: str | None = Field(default=None, max_length=64)
    acked_at: datetime | None = Field(default=None, sa_column=utc_column())
    ack_channel: str | None = Field(default=None, max_length=16)
    reminders_sent: int = 0
    last_reminder_at: datetime | None = Field(default=None, sa_column=utc_column())
    head_escalated_at: datetime | None = Field(default=None, sa_column=utc_column())


class BroadcastStatus(enum.StrEnum):
    """Where a broadcast stands."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class Broadcast(SQLModel, table=True):
    """An announcement or survey sent to a segment of contacts."""

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    attachment_id: int | None = Field(default=None, foreign_key="attachment.id")
    media: str = Field(default="text", max_length=16)
    segment: str = Field(sa_column=Column(Text, nullable=False))
    segment_label: str = Field(max_length=500)
    send_at: datetime = Field(sa_column=utc_column(nullable=False))
    status: BroadcastStatus = Field(sa_column=Column(String(16), nullable=False))
    total: int = 0
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    cancelled_at: datetime | None = Field(default=None, sa_column=utc_column())


class Flow(SQLModel, table=True):
    """A contact's open multi-step conversation (one at most), kept in the database."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", unique=True)
    kind: str = Field(max_length=32)
    step: str = Field(max_length=32)
    data: str = Field(sa_column=Column(Text, nullable=False))
    started_at: datetime = Field(sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=utc_column(nullable=False))
    expires_at: datetime = Field(sa_column=utc_column(nullable=False, index=True))


class TaskStatus(enum.StrEnum):
    """Where one unit's part of a task stands."""

    OPEN = "open"
    DONE = "done"


class TaskSeries(SQLModel, table=True):
    """A recurring task: a cron rule for due moments, and the units it is assigned to."""

    __tablename__ = "task_series"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=500)
    details: str = Field(default="", sa_column=Column(Text, nullable=False))
    cron: str = Field(max_length=64)
    unit_codes: str = Field(sa_column=Column(Text, nullable=False))
    lead_days: int = 10
    next_due_at: datetime | None = Field(default=None, sa_column=utc_column(index=True))
    active: bool = True
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class Task(SQLModel, table=True):
    """A piece of reform work with a due date, assigned to one or many units."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=500)
    details: str = Field(default="", sa_column=Column(Text, nullable=False))
    directive_id: int | None = Field(default=None, foreign_key="directive.id")
    series_id: int | None = Field(default=None, foreign_key="task_series.id", index=True)
    ladder: str | None = Field(default=None, max_length=200)
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class TaskAssignment(SQLModel, table=True):
    """One unit's part of a task: due, reminded step by step, reported done (maybe late)."""

    __tablename__ = "task_assignment"
    __table_args__ = (
        UniqueConstraint("task_id", "unit_id", name="uq_assignment_unit"),
        Index("ix_assignment_next", "status", "next_step_at"),
        Index("ix_assignment_report", "unit_id", "due_at", "status", "done_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    due_at: datetime = Field(sa_column=utc_column(nullable=False))
    status: TaskStatus = Field(
        default=TaskStatus.OPEN, sa_column=Column(String(16), nullable=False)
    )
    next_step_at: datetime | None = Field(default=None, sa_column=utc_column())
    last_step: str | None = Field(default=None, max_length=32)
    leadership_alerted_at: datetime | None = Field(default=None, sa_column=utc_column())
    done_at: datetime | None = Field(default=None, sa_column=utc_column())
    done_by: str | None = Field(default=None, max_length=128)
    done_note: str | None = Field(default=None, max_length=2000)
    done_attachment_id: int | None = Field(default=None, foreign_key="attachment.id")
    late: bool | None = None


class TaskLog(SQLModel, table=True):
    """The history of a unit's part of a task: done, reopened (with the reason)."""

    __tablename__ = "task_log"

    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="task_assignment.id", index=True)
    at: datetime = Field(sa_column=utc_column(nullable=False))
    actor: str = Field(max_length=128)
    action: str = Field(max_length=32)
    note: str | None = Field(default=None, max_length=2000)


class TaskAssignee(SQLModel, table=True):
    """A person named for a unit's part of a task (reminded with the unit's head)."""

    __tablename__ = "task_assignee"

    assignment_id: int = Field(foreign_key="task_assignment.id", primary_key=True)
    person_id: int = Field(foreign_key="person.id", primary_key=True)


class Procedure(SQLModel, table=True):
    """An administrative procedure (thủ tục hành chính) by its code (mã TTHC), and its unit."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False, index=True))
    name: str = Field(max_length=500)
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    active: bool = True
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=utc_column(nullable=False))


class ServiceCounter(SQLModel, table=True):
    """A counter (desk) of a unit where citizens are served; QR codes point at it."""

    __tablename__ = "service_counter"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False, index=True))
    name: str = Field(max_length=255)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    active: bool = True
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=utc_column(nullable=False))


class DossierStatus(enum.StrEnum):
    """Where a citizen's dossier stands."""

    RECEIVED = "received"
    PROCESSING = "processing"
    ADDITIONAL = "additional"
    DONE = "done"
    RETURNED = "returned"
    CANCELLED = "cancelled"


class Dossier(SQLModel, table=True):
    """A citizen's dossier (hồ sơ) by its receipt code: procedure, unit, dates, status."""

    __table_args__ = (
        Index("ix_dossier_open_due", "status", "appointment_at"),
        Index(
            "ix_dossier_report", "unit_id", "received_on", "status", "appointment_at", "returned_at"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(64), unique=True, nullable=False, index=True))
    procedure_id: int | None = Field(default=None, foreign_key="procedure.id")
    unit_id: int = Field(foreign_key="unit.id", index=True)
    citizen_name: str = Field(max_length=255)
    phone: str | None = Field(default=None, max_length=20)
    received_on: date
    appointment_at: datetime = Field(sa_column=utc_column(nullable=False))
    status: DossierStatus = Field(sa_column=Column(String(16), nullable=False))
    returned_at: datetime | None = Field(default=None, sa_column=utc_column())
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=utc_column(nullable=False))


class DossierFollower(SQLModel, table=True):
    """A chat account that proved it may follow a dossier (the phone's last 4 digits)."""

    __tablename__ = "dossier_follower"

    dossier_id: int = Field(foreign_key="dossier.id", primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", primary_key=True)
    verified_at: datetime = Field(sa_column=utc_column(nullable=False))
    last_status: str | None = Field(default=None, max_length=16)


class ApologyStatus(enum.StrEnum):
    """Where an apology for a late dossier stands."""

    ASKED = "asked"
    SENT = "sent"


class Apology(SQLModel, table=True):
    """The formal apology and new return date for a late dossier (one per dossier and delay)."""

    __table_args__ = (
        Index("ix_apology_dossier", "dossier_id"),
        UniqueConstraint("number_year", "number", name="uq_apology_number"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id")
    unit_id: int = Field(foreign_key="unit.id", index=True)
    original_appointment_at: datetime = Field(sa_column=utc_column(nullable=False))
    status: ApologyStatus = Field(sa_column=Column(String(16), nullable=False))
    asked_at: datetime = Field(sa_column=utc_column(nullable=False))
    reason: str | None = Field(default=None, max_length=1000)
    new_return_at: datetime | None = Field(default=None, sa_column=utc_column())
    signed_by: str | None = Field(default=None, max_length=255)
    answered_by: str | None = Field(default=None, max_length=128)
    sent_at: datetime | None = Field(default=None, sa_column=utc_column())
    document_id: int | None = Field(default=None, foreign_key="attachment.id")
    number: int | None = None  # "Số: 12/PXL-…", counted from 1 each calendar year
    number_year: int | None = None


class InstallSecret(SQLModel, table=True):
    """A random secret made once per installation (for example the salt of anonymous ratings)."""

    __tablename__ = "install_secret"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    value: str = Field(max_length=128)


BAD_DOSSIER_RATING = "overall <= 2 AND dossier_id IS NOT NULL"


class Rating(SQLModel, table=True):
    """A citizen's satisfaction rating: 5 = Rất hài lòng … 1 = Rất không hài lòng."""

    __table_args__ = (
        UniqueConstraint("dossier_id", name="uq_rating_dossier"),
        Index("ix_rating_unit_at", "unit_id", "created_at"),
        # The scoreboard reads ratings from this index alone (bench/reports.py).
        Index(
            "ix_rating_report",
            "unit_id",
            "created_at",
            "overall",
            "access",
            "procedure",
            "officer_score",
            "result",
            "feedback",
        ),
        Index("ix_rating_voter", "voter_hash", "unit_id", "created_at"),
        # The dossiers rated unsatisfied (the scoreboard's one-stop indicator): a few rows only.
        Index(
            "ix_rating_dossier_bad",
            "dossier_id",
            sqlite_where=text(BAD_DOSSIER_RATING),
            postgresql_where=text(BAD_DOSSIER_RATING),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id")
    procedure_id: int | None = Field(default=None, foreign_key="procedure.id")
    counter_id: int | None = Field(default=None, foreign_key="service_counter.id")
    dossier_id: int | None = Field(default=None, foreign_key="dossier.id")
    officer: str | None = Field(default=None, max_length=255)
    channel: str = Field(max_length=16)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    voter_hash: str = Field(max_length=64)
    phone: str | None = Field(default=None, max_length=20)
    overall: int
    access: int | None = None
    procedure: int | None = None
    officer_score: int | None = None
    result: int | None = None
    feedback: int | None = None
    comment: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class RatingDaily(SQLModel, table=True):
    """One unit's ratings of one UTC day, added up as they are stored (the scoreboard reads it).

    Kept by bot.services.ratings.daily in the transaction that stores each rating; filled from
    the existing ratings by migration 0015. A UTC day (not a local one) needs no time zone when
    a rating is stored, and stays right whatever zone the agency configures.
    """

    __tablename__ = "rating_daily"

    day: date = Field(primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", primary_key=True)
    level_1: int = 0
    level_2: int = 0
    level_3: int = 0
    level_4: int = 0
    level_5: int = 0
    access_count: int = 0
    access_sum: int = 0
    procedure_count: int = 0
    procedure_sum: int = 0
    officer_score_count: int = 0
    officer_score_sum: int = 0
    result_count: int = 0
    result_sum: int = 0
    feedback_count: int = 0
    feedback_sum: int = 0


class CaseStatus(enum.StrEnum):
    """Where the follow-up of a bad rating stands."""

    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class FollowUpCase(SQLModel, table=True):
    """The follow-up of a bad rating: the head's answer, the citizen's word, the closing."""

    __tablename__ = "followup_case"
    __table_args__ = (
        Index("ix_case_due", "status", "due_at"),
        Index("ix_case_report", "unit_id", "opened_at", "status", "due_at", "closed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rating_id: int = Field(foreign_key="rating.id", unique=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    status: CaseStatus = Field(sa_column=Column(String(16), nullable=False))
    opened_at: datetime = Field(sa_column=utc_column(nullable=False))
    due_at: datetime = Field(sa_column=utc_column(nullable=False))
    answer: str | None = Field(default=None, max_length=2000)
    answered_at: datetime | None = Field(default=None, sa_column=utc_column())
    answered_by: str | None = Field(default=None, max_length=128)
    citizen_settled: bool | None = None
    closed_at: datetime | None = Field(default=None, sa_column=utc_column())
    closed_by: str | None = Field(default=None, max_length=128)
    close_note: str | None = Field(default=None, max_length=2000)
    escalated_at: datetime | None = Field(default=None, sa_column=utc_column())


class SeenUpdate(SQLModel, table=True):
    """An update a channel delivered by webhook, kept a while so a replay is handled once."""

    __tablename__ = "seen_update"
    __table_args__ = (Index("ix_seen_update_received", "received_at"),)

    channel: str = Field(sa_column=Column(String(16), primary_key=True))
    update_id: str = Field(sa_column=Column(String(64), primary_key=True))
    received_at: datetime = Field(sa_column=utc_column(nullable=False))


class ShownChoices(SQLModel, table=True):
    """The list of choices a chat without buttons (Zalo) was shown last, to map typed answers.

    `payload` is the message's buttons as the outbox stores messages (bot.messages.codec).
    """

    __tablename__ = "shown_choices"

    channel: str = Field(sa_column=Column(String(16), primary_key=True))
    chat_id: str = Field(sa_column=Column(String(64), primary_key=True))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    shown_at: datetime = Field(sa_column=utc_column(nullable=False))


class ZaloOAToken(SQLModel, table=True):
    """An Official Account's token pair, and the journal of a refresh under way.

    A refresh token works once: `refreshing_owner` is written (with a lease) before it is spent,
    and the new pair replaces it, with Zalo's raw answer, in one transaction.
    """

    __tablename__ = "zalo_oa_token"

    oa_id: str = Field(sa_column=Column(String(64), primary_key=True))
    access_token: str | None = Field(default=None, sa_column=Column(Text))
    access_expires_at: datetime | None = Field(default=None, sa_column=utc_column())
    refresh_token: str | None = Field(default=None, sa_column=Column(Text))
    version: int = 0
    seed_hash: str | None = Field(default=None, max_length=64)
    refreshing_owner: str | None = Field(default=None, max_length=64)
    refreshing_until: datetime | None = Field(default=None, sa_column=utc_column())
    last_answer: str | None = Field(default=None, sa_column=Column(Text))
    last_error: str | None = Field(default=None, max_length=500)
    needs_reauth: bool = False
    updated_at: datetime = Field(sa_column=utc_column(nullable=False))

    def __repr_args__(self) -> Any:
        """Leave the tokens (and the answer that carries them) out of every repr."""
        hidden = {"access_token", "refresh_token", "last_answer"}
        return [(k, v) for k, v in super().__repr_args__() if k not in hidden]


class DashboardLogin(SQLModel, table=True):
    """A one-time sign-in link to the web dashboard, sent through the bot (its token hashed)."""

    __tablename__ = "dashboard_login"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    expires_at: datetime = Field(sa_column=utc_column(nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=utc_column())


class DashboardSession(SQLModel, table=True):
    """A signed-in browser: its cookie's key hashed, its CSRF token, its age and its language."""

    __tablename__ = "dashboard_session"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    csrf: str = Field(max_length=64)
    locale: str = Field(default="vi", max_length=8)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    last_seen_at: datetime = Field(sa_column=utc_column(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=utc_column())


class DashboardPassword(SQLModel, table=True):
    """A person's dashboard password (argon2 hash), the fallback to the link sent by the bot."""

    __tablename__ = "dashboard_password"

    person_id: int = Field(foreign_key="person.id", primary_key=True, ondelete="CASCADE")
    password_hash: str = Field(max_length=255)
    set_at: datetime = Field(sa_column=utc_column(nullable=False))
    failures: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=utc_column())


class Questionnaire(SQLModel, table=True):
    """A questionnaire imported from a TOML or XLSX file; `definition` is its checked JSON."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False, index=True))
    title: str = Field(max_length=500)
    definition: str = Field(sa_column=Column(Text, nullable=False))
    questions: int = 0
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class CampaignStatus(enum.StrEnum):
    """Where a survey or awareness campaign stands."""

    SCHEDULED = "scheduled"
    OPEN = "open"
    CLOSED = "closed"


class Campaign(SQLModel, table=True):
    """A survey, or a material with an optional check of understanding, sent to an audience.

    An anonymous campaign keeps a salt while it is open (its answers are found by a salted hash
    of the person, to be changed); the salt is erased when it closes.
    """

    __tablename__ = "survey_campaign"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=500)
    questionnaire_id: int | None = Field(default=None, foreign_key="questionnaire.id")
    material: str | None = Field(default=None, sa_column=Column(Text))
    attachment_id: int | None = Field(default=None, foreign_key="attachment.id")
    media: str = Field(default="text", max_length=16)
    audience: str = Field(max_length=500)
    audience_label: str = Field(max_length=500)
    anonymous: bool = True
    min_group: int = 5
    results_open: bool = False
    opens_at: datetime = Field(sa_column=utc_column(nullable=False))
    closes_at: datetime = Field(sa_column=utc_column(nullable=False))
    reminders_max: int = 2
    remind_every_hours: int = 16
    status: CampaignStatus = Field(sa_column=Column(String(16), nullable=False))
    salt: str | None = Field(default=None, max_length=64)
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=utc_column())


class CampaignRecipient(SQLModel, table=True):
    """One person (or citizen's chat account) a campaign is sent to: reached, done, reminded.

    It says whether they answered (or read), never what: answers are in SurveyResponse.
    """

    __tablename__ = "survey_recipient"
    __table_args__ = (
        UniqueConstraint("campaign_id", "person_id", name="uq_survey_recipient_person"),
        UniqueConstraint("campaign_id", "contact_id", name="uq_survey_recipient_contact"),
        Index("ix_survey_recipient_unit", "campaign_id", "unit_id", "done"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="survey_campaign.id")
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)  # citizens
    unit_id: int | None = Field(default=None, foreign_key="unit.id")
    sent: bool = False
    done: bool = False
    read: bool = False
    reminders_sent: int = 0
    last_reminder_at: datetime | None = Field(default=None, sa_column=utc_column())


class SurveyResponse(SQLModel, table=True):
    """One person's answers to a campaign's questions (JSON by question id).

    Anonymous: a random id, the salted hash, the unit as a group, and no person, chat or time.
    Named: the person and the time of the last change as well.
    """

    __tablename__ = "survey_response"
    __table_args__ = (
        UniqueConstraint("campaign_id", "voter_hash", name="uq_survey_response_voter"),
        Index("ix_survey_response_unit", "campaign_id", "unit_id"),
    )

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    campaign_id: int = Field(foreign_key="survey_campaign.id")
    voter_hash: str = Field(max_length=64)
    unit_id: int | None = Field(default=None, foreign_key="unit.id")
    person_id: int | None = Field(default=None, foreign_key="person.id")
    answers: str = Field(sa_column=Column(Text, nullable=False))
    complete: bool = False
    answered_at: datetime | None = Field(default=None, sa_column=utc_column())
