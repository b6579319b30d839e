"""Apply and roll back the SQL migrations through yoyo, as ``yoyo apply`` does at deploy."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

from etlstore._config import yoyo_url

__all__ = ["apply_migrations", "default_migrations_dir", "rollback_migrations"]


def default_migrations_dir() -> Path:
    """``./migrations`` when run from a checkout's root, else the checkout this package lives in."""
    here = Path.cwd() / "migrations"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "migrations"


def apply_migrations(dsn: str, migrations_dir: Path | None = None) -> list[str]:
    """Apply every pending migration under yoyo's lock; return the ids applied, in order."""
    backend = get_backend(yoyo_url(dsn))
    migrations = read_migrations(str(migrations_dir or default_migrations_dir()))
    try:
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
            return [m.id for m in pending]
    finally:
        backend.connection.close()


def rollback_migrations(dsn: str, migrations_dir: Path | None = None) -> list[str]:
    """Roll back every applied migration, newest first; return the ids rolled back."""
    backend = get_backend(yoyo_url(dsn))
    migrations = read_migrations(str(migrations_dir or default_migrations_dir()))
    try:
        with backend.lock():
            applied = backend.to_rollback(migrations)
            backend.rollback_migrations(applied)
            return [m.id for m in applied]
    finally:
        backend.connection.close()
