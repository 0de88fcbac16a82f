"""Time as the database keeps it: naive datetimes in UTC."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_iso(value: datetime | None) -> str | None:
    """ISO 8601 with an explicit UTC offset, as the command line prints it."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).isoformat()


def to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)
