"""The retry schedule: a pure function of the attempt count and the age.

`retry_schedule` is a list of delays in seconds: the first retry waits
`schedule[0]`, the second `schedule[1]`, and after the last one every
further retry waits the last delay again. Once a message is older than
`max_age`, there is no next attempt: it bounces.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def delay_after(schedule: tuple[float, ...], failures: int) -> float:
    """Seconds to wait after the `failures`-th failed attempt (1-based)."""
    if failures < 1:
        raise ValueError("failures counts from 1")
    return schedule[min(failures, len(schedule)) - 1]


def next_attempt(schedule: tuple[float, ...], max_age: float, first_queued: datetime,
                 now: datetime, failures: int) -> datetime | None:
    """When to try again, or None if the message has been queued too long."""
    when = now + timedelta(seconds=delay_after(schedule, failures))
    if (now - first_queued).total_seconds() >= max_age:
        return None
    deadline = first_queued + timedelta(seconds=max_age)
    return min(when, deadline)
