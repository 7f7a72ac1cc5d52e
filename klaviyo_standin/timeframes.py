"""Timeframes of the stand-in: keys, custom timeframe validation and bucket cutting.

Klaviyo reads every timeframe as wall-clock time in the account timezone ("Offset is ignored and
the company timezone is used"), so this module works on naive local datetimes and converts them to
epoch seconds only to cut buckets.

Timeframe keys (``today`` is the local date of ``now``; weeks start on Monday; a period that ends
"now" ends at the wall-clock ``now``, every other period ends at the next period's first midnight):

- ``today``: today 00:00 to now.  ``yesterday``: yesterday 00:00 to today 00:00.
- ``last_7_days`` / ``last_30_days`` / ``last_90_days`` / ``last_365_days``: the N whole local days
  before today (today excluded), i.e. ``today - N`` 00:00 to today 00:00.
- ``this_week`` / ``this_month`` / ``this_year``: from the period's first local midnight to now.
- ``last_week`` / ``last_month`` / ``last_year``: the previous calendar period.
- ``last_3_months`` / ``last_12_months``: the 3 / 12 whole calendar months before this month.

The end of a timeframe (key or custom) is inclusive or exclusive depending on ``end_inclusive``.
Membership changes happen at whole local hours (each hour's changes are stamped at the hour's
start), so an inclusive end at midnight also counts the changes stamped at that midnight: this is
why ``last_7_days`` with a daily interval returns 8 buckets when ``end_inclusive`` is on, like the
example in Klaviyo's guide.

Buckets: hourly and daily buckets start at whole local hours / local midnights. Klaviyo documents
no alignment for the others, so the stand-in offers each one the tap must cope with:
``week_alignment`` ``monday`` (calendar weeks from Monday, the default: what a real Klaviyo
answer showed, see below), ``sunday`` (calendar weeks from Sunday) or ``start`` (7-day steps from
the local midnight of the timeframe start); ``month_alignment`` ``calendar`` (calendar months, the
default) or ``start`` (calendar-month steps from the timeframe start's day, clamped to each
month's length). The first bucket is the one containing the timeframe start. With ``monday`` /
``sunday`` weeks it is labelled at the week's own start, so its label may lie before the timeframe
start (a real weekly ``last_30_days`` answer whose timeframe began on Wednesday 2026-08-05 was
labelled 2026-08-03, 08-10, ...); otherwise it is labelled at the timeframe start's floor (its
hour, or its local midnight). Later buckets are included when their start lies within the
timeframe and is not after ``now``. Every bucket counts only the changes inside the timeframe and
not after ``now`` (so a first week cut by the timeframe start counts only its part inside it).
Daily answers are as Klaviyo's were: a daily ``last_30_days`` answer holds 31 buckets, today's
unfinished one included (the inclusive end counts the changes stamped at today's midnight).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

TIMEFRAME_KEYS: tuple[str, ...] = (
    "last_12_months",
    "last_30_days",
    "last_365_days",
    "last_3_months",
    "last_7_days",
    "last_90_days",
    "last_month",
    "last_week",
    "last_year",
    "this_month",
    "this_week",
    "this_year",
    "today",
    "yesterday",
)
INTERVALS: tuple[str, ...] = ("hourly", "daily", "weekly", "monthly")
#: The first of each is the default.
WEEK_ALIGNMENTS: tuple[str, ...] = ("monday", "start", "sunday")
MONTH_ALIGNMENTS: tuple[str, ...] = ("calendar", "start")
#: Klaviyo's first data day as its API reference states it (its Help Center says June 21st, 2023:
#: ``StandinSettings.data_floor`` moves the stand-in's floor).
DATA_FLOOR = datetime(2023, 6, 1)
TIMEFRAME_POINTER = "/data/attributes/timeframe"
INTERVAL_LIMITS: dict[str, timedelta] = {
    "hourly": timedelta(days=7),
    "daily": timedelta(days=60),
    "weekly": timedelta(weeks=52),
    "monthly": timedelta(weeks=52),
}


class TimeframeError(ValueError):
    """A timeframe or interval Klaviyo would reject with a 400; carries the JSON pointer."""

    def __init__(self, detail: str, pointer: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer


@dataclass(frozen=True)
class Window:
    """A timeframe as naive wall-clock datetimes in the account timezone."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Bucket:
    """One report bucket: its label instant and the half-open epoch range ``[lo, hi)`` it counts."""

    label: int
    lo: int
    hi: int


def add_months(day: date, months: int) -> date:
    """Return the 1st of the month ``months`` after ``day``'s month (calendar arithmetic)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def add_year(moment: datetime) -> datetime:
    """Return ``moment`` one calendar year later (29 Feb becomes 1 Mar), the 1-year maximum."""
    if moment.year >= datetime.max.year:
        return datetime.max
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:
        return moment.replace(year=moment.year + 1, month=3, day=1)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def resolve_key(key: object, now_local: datetime) -> Window:
    """Turn a timeframe key into a wall-clock window, per the module docstring's semantics."""
    today = now_local.date()
    monday = today - timedelta(days=today.weekday())
    month1 = today.replace(day=1)
    year1 = date(today.year, 1, 1)
    last_days = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90, "last_365_days": 365}
    if isinstance(key, str) and key in last_days:
        return Window(_midnight(today - timedelta(days=last_days[key])), _midnight(today))
    ranges: dict[str, tuple[date, date | None]] = {
        "today": (today, None),
        "yesterday": (today - timedelta(days=1), today),
        "this_week": (monday, None),
        "last_week": (monday - timedelta(days=7), monday),
        "this_month": (month1, None),
        "last_month": (add_months(month1, -1), month1),
        "last_3_months": (add_months(month1, -3), month1),
        "last_12_months": (add_months(month1, -12), month1),
        "this_year": (year1, None),
        "last_year": (date(today.year - 1, 1, 1), year1),
    }
    if not isinstance(key, str) or key not in ranges:
        raise TimeframeError(f"Invalid timeframe key: {key!r}", f"{TIMEFRAME_POINTER}/key")
    start, end = ranges[key]
    end_local = _midnight(end) if end is not None else now_local.replace(microsecond=0)
    return Window(_midnight(start), end_local)


def parse_wall_clock(value: object, pointer: str) -> datetime:
    """Parse an ISO date-time that must carry an offset; return its wall-clock part.

    The spec types start and end as ``date-time``, which requires an offset; Klaviyo then ignores
    the offset and reads the wall-clock part in the account timezone.
    """
    if not isinstance(value, str):
        raise TimeframeError("Expected an ISO 8601 date-time string.", pointer)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimeframeError(f"Invalid date-time: {value!r}", pointer) from None
    if "T" not in text.upper() or parsed.tzinfo is None:
        raise TimeframeError(f"Date-time must include a time and an offset: {value!r}", pointer)
    return parsed.replace(tzinfo=None)


def custom_window(start_raw: object, end_raw: object) -> Window:
    """Validate a custom ``{"start","end"}`` timeframe and return it as a wall-clock window."""
    start = parse_wall_clock(start_raw, f"{TIMEFRAME_POINTER}/start")
    end = parse_wall_clock(end_raw, f"{TIMEFRAME_POINTER}/end")
    if end < start:
        raise TimeframeError(
            "The timeframe end must not be before its start.", f"{TIMEFRAME_POINTER}/end"
        )
    return Window(start, end)


def floor_detail(floor: date) -> str:
    """Klaviyo's 400 detail for a timeframe before ``floor``, e.g. "... before June 21st, 2023"."""
    day = floor.day
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"Cannot query for segment data before {floor:%B} {day}{suffix}, {floor.year}"


#: The detail of Klaviyo's 400 for a timeframe before :data:`DATA_FLOOR`.
FLOOR_DETAIL = floor_detail(DATA_FLOOR.date())


def check_window(window: Window, interval: str | None, floor: date | None = None) -> None:
    """Apply Klaviyo's data floor, 1-year maximum and per-interval length limits.

    ``floor`` is the first data day (default :data:`DATA_FLOOR`'s day).
    """
    first_day = DATA_FLOOR.date() if floor is None else floor
    if window.start < _midnight(first_day):
        raise TimeframeError(floor_detail(first_day), f"{TIMEFRAME_POINTER}/start")
    if window.end > add_year(window.start):
        raise TimeframeError("The timeframe cannot be longer than 1 year.", TIMEFRAME_POINTER)
    limit = INTERVAL_LIMITS.get(interval or "")
    if limit is not None and window.end - window.start > limit:
        raise TimeframeError(
            f"The timeframe cannot be longer than {limit.days} days for the {interval} interval.",
            "/data/attributes/interval",
        )


def to_epoch(local: datetime, tz: ZoneInfo) -> int:
    """Convert a naive wall-clock datetime to epoch seconds (first occurrence when ambiguous)."""
    return math.floor(local.replace(tzinfo=tz).timestamp())


def to_epoch_ceil(local: datetime, tz: ZoneInfo) -> int:
    """Like :func:`to_epoch` but rounding sub-second starts up, so a start never gains a stamp."""
    return math.ceil(local.replace(tzinfo=tz).timestamp())


def iso_at(epoch: int, tz: ZoneInfo) -> str:
    """Format an instant like Klaviyo: local wall clock with that instant's UTC offset."""
    return datetime.fromtimestamp(epoch, tz).isoformat()


def iso_utc(epoch: int) -> str:
    """Format an instant in UTC with ``+00:00``, as Klaviyo returns segment timestamps."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


@dataclass(frozen=True)
class Alignment:
    """How weekly and monthly buckets are cut (see the module docstring)."""

    week: str = "monday"
    month: str = "calendar"

    def __post_init__(self) -> None:
        if self.week not in WEEK_ALIGNMENTS or self.month not in MONTH_ALIGNMENTS:
            raise ValueError(f"unknown alignment {self}")


def _bucket_day(interval: str, day0: date, step: int, alignment: Alignment) -> date:
    """The local day bucket ``step`` starts on, for a timeframe starting on ``day0``."""
    if interval == "daily":
        return day0 + timedelta(days=step)
    if interval == "weekly":
        if alignment.week == "start":
            return day0 + timedelta(days=7 * step)
        first_weekday = 0 if alignment.week == "monday" else 6
        week_start = day0 - timedelta(days=(day0.weekday() - first_weekday) % 7)
        return week_start + timedelta(days=7 * step)
    if step == 0:
        return day0
    if alignment.month == "calendar":
        return add_months(day0, step)
    first = add_months(day0, step)
    last_day = (add_months(day0, step + 1) - timedelta(days=1)).day
    return first.replace(day=min(day0.day, last_day))


def _bucket_starts(
    interval: str, start: datetime, tz: ZoneInfo, hi: int, alignment: Alignment
) -> list[int]:
    """Epoch starts of the buckets beginning before ``hi``, the first one holding ``start``.

    The first one is ``start``'s floor (hour or local midnight), or the start of its calendar week.
    """
    if interval == "hourly":
        first = to_epoch(start.replace(minute=0, second=0, microsecond=0), tz)
        return list(range(first, max(hi, first + 1), 3600))
    day0 = start.date()
    starts: list[int] = []
    step = 0
    while True:
        day = _bucket_day(interval, day0, step, alignment)
        epoch = to_epoch(_midnight(day), tz)
        if starts and epoch >= hi:
            return starts
        starts.append(epoch)
        step += 1


def cut_buckets(
    interval: str,
    window: Window,
    tz: ZoneInfo,
    now_epoch: int,
    end_inclusive: bool,
    alignment: Alignment | None = None,
) -> list[Bucket]:
    """Cut a window into buckets, each limited to the timeframe and to ``now`` (inclusive)."""
    lo = to_epoch_ceil(window.start, tz)
    hi = content_end(window, tz, now_epoch, end_inclusive)
    if lo >= hi:
        return []
    starts = _bucket_starts(interval, window.start, tz, hi, alignment or Alignment())
    bounds = [*starts[1:], hi]
    return [
        Bucket(label, max(label, lo), min(nxt, hi))
        for label, nxt in zip(starts, bounds, strict=True)
    ]


def content_end(window: Window, tz: ZoneInfo, now_epoch: int, end_inclusive: bool) -> int:
    """Exclusive epoch bound of the changes a window counts: its end (+1 s if inclusive), or now."""
    end = to_epoch(window.end, tz) + (1 if end_inclusive else 0)
    return min(end, now_epoch + 1)
