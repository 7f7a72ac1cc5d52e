"""The scenarios of the end-to-end tests (shared by fixtures and assertions).

The stand-in's clock is always frozen (``StandinSettings.now``), so its ground truth cannot move
while a test runs. Two scenarios:

* ``recent``: the stand-in's now is the current hour (UTC) and the tap has no end_date, as in a
  daily production run. The tap's own clock is the real one, a few minutes later; nothing
  changes in the stand-in between the two. A second run must re-read only the lookback.
* ``bounded``: a window long closed (2026-01-05 .. 2026-03-01, end_date set), fully
  deterministic; every segment exists before it (the stand-in creates them in 2023-2025).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

SEGMENTS = 8
SEED = 4242
INTERVALS = ("daily", "weekly")
TIMEFRAMES = ("last_30_days", "last_7_days")
LOOKBACK_DAYS = 2
RUN_TIMEOUT = 240


@dataclass(frozen=True)
class Scenario:
    """The stand-in's frozen clock and the tap's start and (inclusive) end dates."""

    name: str
    standin_now: datetime  # naive, UTC (the account timezone)
    start: date
    end: date | None

    @property
    def first(self) -> datetime:
        """Start of the data, local midnight of ``start``."""
        return datetime(self.start.year, self.start.month, self.start.day)

    @property
    def data_end(self) -> datetime:
        """Exclusive end of the data: the day after ``end``, or the stand-in's now."""
        if self.end is None:
            return self.standin_now
        return datetime(self.end.year, self.end.month, self.end.day) + timedelta(days=1)

    @property
    def truth_end(self) -> datetime:
        """Exclusive end for the ground truth: the tap reads a little after the stand-in's now,
        so the changes stamped at that whole hour are in."""
        if self.end is None:
            return self.standin_now + timedelta(minutes=1)
        return self.data_end


BOUNDED = Scenario(
    name="bounded",
    standin_now=datetime(2026, 6, 1, 12, 0),
    start=date(2026, 1, 5),
    end=date(2026, 3, 1),
)


def recent_scenario() -> Scenario:
    """Stand-in frozen at the current hour; start 20 days back; no end_date.

    Within four minutes of midnight UTC it first waits for the new day, so the tap (real clock)
    and the stand-in (frozen clock) agree on which day is today.
    """
    now = datetime.now(timezone.utc)
    to_midnight = (
        datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), timezone.utc) - now
    )
    if to_midnight < timedelta(minutes=4):
        time.sleep(to_midnight.total_seconds() + 5)
        now = datetime.now(timezone.utc)
    frozen = now.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    return Scenario(
        name="recent",
        standin_now=frozen,
        start=frozen.date() - timedelta(days=20),
        end=None,
    )


def tap_config(server: Any, scenario: Scenario) -> dict[str, Any]:
    """The tap's config for the stand-in, with pacing raised (the stand-in has no limits)."""
    config: dict[str, Any] = {
        "api_key": server.settings.api_key,
        "api_url": server.url,
        "start_date": scenario.start.isoformat(),
        "account_timezone": "UTC",
        "series_intervals": list(INTERVALS),
        "values_timeframes": list(TIMEFRAMES),
        "lookback_days": LOOKBACK_DAYS,
        "report_calls_per_minute": 100000,
        "report_calls_per_second": 1000,
        "report_calls_per_day": 100000,
        "max_retries": 2,
        "retry_initial_wait_seconds": 1,
        "max_retry_wait_seconds": 1,
        "request_timeout": 30,
    }
    if scenario.end is not None:
        config["end_date"] = scenario.end.isoformat()
    return config
