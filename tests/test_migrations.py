"""Alembic: the migrated schema is exactly what the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
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
    await engine.dispose()
    assert mode == "wal"
    assert fks == 1
