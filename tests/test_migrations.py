"""Alembic: the migrated schema is exactly what the models describe, on every backend."""

from __future__ import annotations

import asyncio
from datetime import datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from bot import migrate
from bot.db import create_engine


async def _fresh_url(db_url: str, tmp_path) -> str:
    """Return an empty database of the backend under test."""
    if db_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}/migrated.db"
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    await engine.dispose()
    return db_url


async def test_migrated_schema_matches_models(db_url, tmp_path):
    url = await _fresh_url(db_url, tmp_path)
    await migrate.upgrade(url)
    assert await migrate.current(url) is not None
    engine = create_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), SQLModel.metadata
            )
        )
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    assert diff == []
    assert set(SQLModel.metadata.tables) <= tables


async def test_upgrade_is_idempotent(db_url, tmp_path):
    url = await _fresh_url(db_url, tmp_path)
    await migrate.upgrade(url)
    first = await migrate.current(url)
    await migrate.upgrade(url)
    assert await migrate.current(url) == first


async def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/wal.db")
    async with engine.connect() as conn:
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        sync = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
    await engine.dispose()
    assert mode == "wal"
    assert fks == 1
    assert sync == 1  # NORMAL: in WAL, a power cut may lose the last commits, never corrupts


async def test_0009_moves_telegram_file_ids_into_attachment_file_and_back(db_url, tmp_path):
    url = await _fresh_url(db_url, tmp_path)
    await migrate.upgrade(url, "0008")
    engine = create_engine(url)
    insert = (
        "INSERT INTO attachment (id, file_name, mime_type, size, sha256, data, telegram_file_id,"
        " created_at) VALUES (:id, 'a.pdf', 'application/pdf', 1, 'x', :data, :fid, :at)"
    )
    directive = (
        "INSERT INTO directive (id, number, issued_on, title, summary, attachment_id, audience,"
        " target, ack_deadline, created_by, created_at) VALUES (1, '12/SGDĐT', '2026-12-01',"
        " 'Kế hoạch', '', 1, 'everyone', 'all', :at, 'admin', :at)"
    )
    at = datetime(2026, 12, 1)
    async with engine.begin() as conn:
        for row_id, file_id in ((1, "BQACAgIAAx-known"), (2, None)):
            await conn.execute(text(insert), {"id": row_id, "data": b"%", "fid": file_id, "at": at})
        await conn.execute(text(directive), {"at": at})  # a row that refers to an attachment
    await migrate.upgrade(url)
    async with engine.connect() as conn:
        moved = (await conn.execute(text("SELECT * FROM attachment_file"))).all()
        columns = await conn.run_sync(
            lambda sync: {c["name"] for c in inspect(sync).get_columns("attachment")}
        )
    assert [tuple(r) for r in moved] == [(1, "telegram", "BQACAgIAAx-known")]
    assert "telegram_file_id" not in columns
    await asyncio.to_thread(command.downgrade, migrate.alembic_config(url), "0008")
    async with engine.connect() as conn:
        back = (await conn.execute(text("SELECT id, telegram_file_id FROM attachment"))).all()
    await engine.dispose()
    assert sorted(tuple(r) for r in back) == [(1, "BQACAgIAAx-known"), (2, None)]


async def test_0011_adds_the_preferred_channel_and_drops_it_back(db_url, tmp_path):
    url = await _fresh_url(db_url, tmp_path)
    await migrate.upgrade(url)
    engine = create_engine(url)
    person = (
        "INSERT INTO person (id, code, full_name, locale, active, preferred_channel, created_at,"
        " updated_at) VALUES (1, 'CB1', 'An', 'vi', true, 'zalo', :at, :at)"
    )
    async with engine.begin() as conn:
        await conn.execute(text(person), {"at": datetime(2026, 12, 1)})
    await asyncio.to_thread(command.downgrade, migrate.alembic_config(url), "0010_zalo_oa_token")

    def columns(sync):
        return {c["name"] for c in inspect(sync).get_columns("person")}

    async with engine.connect() as conn:
        kept = (await conn.execute(text("SELECT code FROM person"))).scalars().all()
        assert "preferred_channel" not in await conn.run_sync(columns)
    await migrate.upgrade(url)
    async with engine.connect() as conn:
        assert "preferred_channel" in await conn.run_sync(columns)
    await engine.dispose()
    assert kept == ["CB1"]
