"""The record of recent report calls that makes ``report_calls_per_day`` one budget across runs.

Klaviyo counts 225 report calls a day per account but does not say whether its day is a rolling
24 hours, a UTC day or a day in the account's timezone. A rolling 24 hours is the reading that
is safe against every fixed 24-hour day: if no 24-hour span holds more than N calls, no calendar
day of 24 hours does either (a 25-hour local day, when daylight saving time ends, is the one
exception). So a call made at ``t`` counts against the budget until ``t + 24 h``.

Runs that share a STATE share this record (``state["report_calls"]``), so a run started an hour
after another knows what is left. To stay small, calls are counted per minute, each minute
stamped with its *end*: a call is never dated earlier than it was made, so it never stops
counting early. The record holds at most a day's worth of minutes (fewer than the calls).

Everything here is pure: the caller passes the instants (the tap's clock), nothing reads time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

#: Top-level key of the record in the tap's STATE (next to ``bookmarks``).
STATE_KEY = "report_calls"
#: How long a call counts against the daily budget.
WINDOW = timedelta(hours=24)
#: Calls are counted per minute; a minute is stamped with its end.
RESOLUTION = timedelta(minutes=1)
#: Marks a record that STATE held in a form this module cannot read (see :func:`check`).
UNREADABLE_KEY = "unreadable"


class RecordError(ValueError):
    """A stored record this module cannot read."""


def _minute_end(moment: datetime) -> datetime:
    """The end of the minute holding ``moment``, in UTC (``moment`` itself if on a minute)."""
    utc = moment.astimezone(timezone.utc)
    floor = utc.replace(second=0, microsecond=0)
    return floor if floor == utc else floor + RESOLUTION


@dataclass(frozen=True)
class CallRecord:
    """Report calls per minute, oldest first: ``((minute end, calls), ...)`` in UTC."""

    entries: tuple[tuple[datetime, int], ...] = ()

    def add(self, at: datetime, calls: int = 1) -> CallRecord:
        """The record plus ``calls`` made at ``at`` (counted in the minute holding ``at``)."""
        if calls <= 0:
            return self
        stamp = _minute_end(at)
        entries = list(self.entries)
        stamps = [entry[0] for entry in entries]
        position = bisect.bisect_left(stamps, stamp)
        if position < len(entries) and stamps[position] == stamp:
            entries[position] = (stamp, entries[position][1] + calls)
        else:  # normally appended; earlier only if the clock went back
            entries.insert(position, (stamp, calls))
        return CallRecord(tuple(entries))

    def pruned(self, now: datetime) -> CallRecord:
        """Only the calls that still count at ``now`` (at most a day's worth)."""
        return CallRecord(tuple(entry for entry in self.entries if entry[0] + WINDOW > now))

    def used(self, now: datetime) -> int:
        """Calls that count against the budget at ``now``."""
        return sum(calls for stamp, calls in self.entries if stamp + WINDOW > now)

    def calls_left(self, now: datetime, calls_per_day: int) -> int:
        """Calls the budget allows at ``now``."""
        return max(calls_per_day - self.used(now), 0)

    def next_call_at(self, now: datetime, calls_per_day: int) -> datetime | None:
        """When one more call is allowed: ``now`` if one is left, None if never (a 0 budget)."""
        return self.when_available(1, now, calls_per_day)

    def when_available(self, calls: int, now: datetime, calls_per_day: int) -> datetime | None:
        """The earliest instant, ``now`` or later, from which ``calls`` more calls fit the budget.

        From that instant on, ``calls`` calls can be made without passing ``calls_per_day``
        within any 24 hours (calls only ever stop counting as time passes). It says nothing
        about pacing: the calls still go out one ``ReportGate.spacing`` apart. ``calls <= 0``
        fits at ``now``; None means never, because ``calls`` exceeds ``calls_per_day``.
        """
        if calls <= 0:
            return now
        if calls > calls_per_day:
            return None
        excess = self.used(now) + calls - calls_per_day
        if excess <= 0:
            return now
        for stamp, counted in self.entries:
            if stamp + WINDOW <= now:
                continue
            excess -= counted
            if excess <= 0:
                return stamp + WINDOW
        return None  # not reached: the counted entries sum to used(now)

    def to_state(self) -> dict[str, Any]:
        """The JSON form kept in STATE."""
        return {"calls": [[stamp.isoformat(), calls] for stamp, calls in self.entries]}

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[datetime, int]]) -> CallRecord:
        """A record of the given (instant, calls), in any order."""
        record = cls()
        for stamp, calls in entries:
            record = record.add(stamp, calls)
        return record


def check(raw: Any) -> tuple[dict[str, Any], str | None]:
    """A stored record as it may go on in STATE, and what was wrong with it (None if nothing).

    Reading takes no clock (it runs before the sync's clock is known). A record that cannot be
    read is kept as ``{"calls": [the readable entries], "unreadable": true}``: the calls it
    lost may have used the whole budget, so :func:`resolve` assumes they did.
    """
    try:
        return read(raw).to_state(), None
    except RecordError as exc:
        readable = []
        for item in raw.get("calls", []) if isinstance(raw, dict) else []:
            try:
                readable.append(_entry(item))
            except RecordError:
                continue
        kept = CallRecord.from_entries(readable).to_state()
        kept[UNREADABLE_KEY] = True
        return kept, str(exc)


def read(raw: Any) -> CallRecord:
    """The record stored in STATE; :class:`RecordError` if it is not one this module wrote."""
    if not isinstance(raw, dict):
        msg = f"it is {type(raw).__name__}, not an object with 'calls'"
        raise RecordError(msg)
    if raw.get(UNREADABLE_KEY):
        msg = "an earlier run could not read it either"
        raise RecordError(msg)
    unknown = set(raw) - {"calls"}
    if unknown:
        msg = f"unknown keys {sorted(unknown)}"
        raise RecordError(msg)
    calls = raw.get("calls")
    if not isinstance(calls, list):
        msg = "its 'calls' is not a list"
        raise RecordError(msg)
    return CallRecord.from_entries(_entry(item) for item in calls)


def _entry(item: Any) -> tuple[datetime, int]:
    if not (isinstance(item, list) and len(item) == 2):
        msg = f"entry {str(item)[:60]} is not [date-time, calls]"
        raise RecordError(msg)
    stamp, calls = item
    if not isinstance(calls, int) or isinstance(calls, bool) or calls < 0:
        msg = f"entry {str(item)[:60]} does not count calls as a whole number >= 0"
        raise RecordError(msg)
    try:
        moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        msg = f"entry {str(item)[:60]} has no ISO 8601 date-time with an offset"
        raise RecordError(msg)
    return moment, calls


def resolve(stored: Any, now: datetime, calls_per_day: int) -> tuple[CallRecord, list[str]]:
    """The record a sync starts from at ``now``, and what it had to assume (for WARNINGs).

    Conservative where the stored record cannot be trusted: calls dated after ``now`` (a clock
    that moved back) count as made now, so they stop counting within a day; a record marked
    unreadable by :func:`check` counts as the whole budget spent just now.
    """
    notes: list[str] = []
    if stored is None:
        return CallRecord(), notes
    checked, _ = check(stored)
    unreadable = bool(checked.pop(UNREADABLE_KEY, False))
    record = read(checked)
    late = [(stamp, calls) for stamp, calls in record.entries if stamp > _minute_end(now)]
    if late:
        notes.append(
            f"{sum(calls for _, calls in late)} report calls in the record are dated after now "
            f"(up to {late[-1][0].isoformat()}; did the clock move back?): counting them as "
            "made now"
        )
        kept = [(stamp, calls) for stamp, calls in record.entries if stamp <= _minute_end(now)]
        record = CallRecord.from_entries([*kept, (now, sum(calls for _, calls in late))])
    if unreadable:
        notes.append(
            "the record of earlier report calls in STATE could not be read, so this run assumes "
            f"the whole daily budget ({calls_per_day} calls) was spent just now"
        )
        record = record.add(now, calls_per_day)
    return record.pruned(now), notes
