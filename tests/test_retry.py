"""The retry schedule as a table: delays in order, then the last one repeats, then max_age."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from relay.retry import delay_after, next_attempt

SCHEDULE = (60.0, 300.0, 900.0)
T0 = datetime(2024, 5, 1, 12, 0, 0)


@pytest.mark.parametrize("failures, delay", [
    (1, 60.0),    # the first retry uses the first entry
    (2, 300.0),
    (3, 900.0),   # the last entry
    (4, 900.0),   # after it, the last interval repeats
    (10, 900.0),
    (1000, 900.0),
])
def test_delay_after(failures, delay):
    assert delay_after(SCHEDULE, failures) == delay


def test_delay_after_single_entry_schedule_repeats():
    assert [delay_after((5.0,), n) for n in (1, 2, 3)] == [5.0, 5.0, 5.0]


def test_delay_after_counts_failures_from_one():
    with pytest.raises(ValueError):
        delay_after(SCHEDULE, 0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


MAX_AGE = 2000.0


@pytest.mark.parametrize("now, failures, expected", [
    (0, 1, 60),          # first failure at once: wait schedule[0]
    (60, 2, 360),        # second failure: wait schedule[1]
    (360, 3, 1260),      # third: schedule[2]
    (1260, 4, 2000),     # fourth would be 2160: clamped to the deadline
    (1000, 5, 1900),     # well before the deadline: the last interval again
    (1999, 6, 2000),     # one second left: the last attempt is at the deadline
    (2000, 7, None),     # at the deadline: nothing more, it bounces
    (5000, 7, None),     # long past it
])
def test_next_attempt(now, failures, expected):
    when = next_attempt(SCHEDULE, MAX_AGE, T0, at(now), failures)
    assert when == (None if expected is None else at(expected))


def test_next_attempt_follows_schedule_from_first_queued_time():
    """Walking the whole life of a message: each failure retried as the schedule says."""
    now, failures, attempts = T0, 0, []
    while True:
        failures += 1
        when = next_attempt((1.0, 1.0, 2.0), 7.0, T0, now, failures)
        if when is None:
            break
        attempts.append((when - T0).total_seconds())
        now = when
    assert attempts == [1.0, 2.0, 4.0, 6.0, 7.0]
