"""Deterministic synthetic Klaviyo account: segments and their membership history (no I/O).

Everything derives from ``seed`` (the clock only decides where ``now`` cuts the history), so tests
can compare what the HTTP server returns with the ground truth computed here, and the server answers
through the same functions, so both always agree.

Membership model: each segment has, per local day, a number of profiles added and removed; the
day's changes are split over the day's real hours (23 or 25 on DST days) and stamped at each whole
local hour's start. Nothing changes before the segment's ``created`` time, after an inactive
segment's ``updated`` time (inactive segments are not processed), or after ``now``. Removals on a
day never exceed the members at the start of that day, so totals are never negative.

Changes between runs (issue 17), each keeping the history that already happened:

- ``set_timezone``: the account's timezone changes (as when its owner changes it in Klaviyo). The
  membership history stays on the instants it happened at (generated on the local days and hours
  of the *history* timezone, the one the account was created in); only the reports change: labels,
  how timeframes are read and where buckets are cut follow the new timezone.
- ``clock_skew_seconds``: Klaviyo's clock runs that many seconds off ``now`` (or the real clock):
  what has happened, which buckets exist and the timeframe keys follow Klaviyo's skewed now.
- ``deleted``: segment ids deleted from the account. The API no longer lists or answers them
  (:meth:`segment_ids`, :meth:`segments`, :meth:`segment_attributes`), but the ground truth
  (:meth:`series`, :meth:`values`, :meth:`total_at`, ...) still has their history, exact for the
  time before deletion.

Memory: two ``array('q')`` prefix sums per segment (about 23 kB per segment for 3.9 years); hourly
splits are computed on demand and cached.
"""

from __future__ import annotations

import math
import random
import string
import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from functools import lru_cache
from itertools import accumulate, pairwise
from typing import Any
from zoneinfo import ZoneInfo

from klaviyo_standin.timeframes import (
    Alignment,
    Window,
    check_window,
    content_end,
    custom_window,
    cut_buckets,
    iso_at,
    iso_utc,
    resolve_key,
    to_epoch,
    to_epoch_ceil,
)

STATISTICS: tuple[str, ...] = (
    "total_members",
    "members_added",
    "members_removed",
    "net_members_changed",
)
HISTORY_START = date(2023, 1, 1)
CREATED_END = datetime(2025, 12, 31, 12, 0, tzinfo=dt_timezone.utc).timestamp()
_NAMES = (
    "Engaged (30 days)",
    "VIP customers",
    "Newsletter subscribers",
    "Repeat purchasers",
    "Cart abandoners",
    "Win-back candidates",
    "SMS subscribers",
    "High AOV",
    "First-time buyers",
    "Lapsed customers",
    "Birthday this month",
    "Browse abandoners",
)
_ID_ALPHABET = string.ascii_letters + string.digits
_WEEKDAY_FACTOR = (1.1, 1.05, 1.0, 1.0, 0.95, 0.8, 0.85)
_HOUR_FACTOR = tuple(0.3 + math.sin(math.pi * ((h - 6) % 24) / 24) ** 2 for h in range(24))


@dataclass(frozen=True)
class Segment:
    """One synthetic segment's metadata and growth parameters."""

    index: int
    id: str
    name: str
    created: int
    updated: int
    is_active: bool
    is_starred: bool
    definition: dict[str, Any] | None
    rate: float
    churn: float

    @property
    def stop(self) -> float:
        """Epoch after which membership no longer changes (inactive segments stop updating)."""
        return math.inf if self.is_active else float(self.updated)


class Account:
    """A synthetic account: segments and their hourly membership history, derived from ``seed``."""

    def __init__(
        self,
        segment_count: int = 12,
        seed: int = 1,
        timezone: str = "UTC",
        now: datetime | None = None,
        history_timezone: str | None = None,
    ) -> None:
        """Build the account (its history is generated lazily).

        ``history_timezone`` (default ``timezone``) is the zone the account was created in: its
        history and a naive ``now`` are on that zone's local days and hours, so
        ``Account(..., timezone=new, history_timezone=old)`` is the ground truth of an account
        whose timezone changed from ``old`` to ``new`` (see :meth:`set_timezone`).
        """
        #: The reporting timezone: labels, timeframes and bucket edges.
        self.tz = ZoneInfo(timezone)
        self._grid_tz = ZoneInfo(history_timezone or timezone)
        self.seed = seed
        #: Seconds Klaviyo's clock is ahead of ``now`` / the real clock (negative: behind).
        self.clock_skew_seconds = 0.0
        #: Ids of deleted segments: never listed nor answered, still in the ground truth.
        self.deleted: frozenset[str] = frozenset()
        self._fixed_now = None if now is None else self._now_epoch_of(now)
        self._lock = threading.RLock()
        self._day_starts = array("q")
        self._data: dict[int, tuple[array, array]] = {}
        self._horizon = 0
        self._segments = self._make_segments(segment_count)
        self._by_id = {seg.id: seg for seg in self._segments}
        self._hour_prefix = lru_cache(maxsize=1 << 16)(self._hour_prefix_uncached)

    # ----- clock -------------------------------------------------------------------------------
    def _now_epoch_of(self, moment: datetime) -> int:
        if moment.tzinfo is None:
            return to_epoch(moment, self._grid_tz)
        return math.floor(moment.timestamp())

    def now_epoch(self) -> int:
        """Klaviyo's current instant: the configured ``now`` or the real clock, plus the skew.

        It cuts the history, decides which buckets exist and resolves the timeframe keys.
        """
        base = self._fixed_now if self._fixed_now is not None else time.time()
        return math.floor(base + self.clock_skew_seconds)

    def set_timezone(self, timezone: str) -> None:
        """Change the account's (reporting) timezone; the history's instants stay as they were."""
        if timezone != self.tz.key:
            self.tz = ZoneInfo(timezone)

    def now_local(self) -> datetime:
        """``now`` as a naive wall-clock datetime in the account timezone."""
        return datetime.fromtimestamp(self.now_epoch(), self.tz).replace(tzinfo=None)

    # ----- segments ----------------------------------------------------------------------------
    def _make_segments(self, count: int) -> list[Segment]:
        """Create segment metadata; created times spread from 2023-01-01 to min(now, 2025-12-31)."""
        rng = random.Random(f"standin-segments:{self.seed}")  # noqa: S311 - synthetic data
        first = to_epoch(datetime(2023, 1, 1), self._grid_tz)
        last = max(first + 86400, min(self.now_epoch(), CREATED_END))
        created = sorted(int(first + rng.random() * (last - first)) for _ in range(count))
        ids: list[str] = []
        while len(ids) < count:
            candidate = "".join(rng.choice(_ID_ALPHABET) for _ in range(6))
            if candidate not in ids:
                ids.append(candidate)
        return [self._make_segment(i, ids[i], created[i], last, rng) for i in range(count)]

    @staticmethod
    def _make_segment(
        index: int, seg_id: str, created: int, last: float, rng: random.Random
    ) -> Segment:
        name = _NAMES[index % len(_NAMES)]
        if index >= len(_NAMES):
            name = f"{name} #{index // len(_NAMES) + 1}"
        updated = int(created + rng.random() * max(0.0, last - created))
        definition = None
        if index % 5 != 4:
            definition = {
                "condition_groups": [
                    {
                        "conditions": [
                            {
                                "type": "profile-property",
                                "property": "properties['score']",
                                "filter": {
                                    "type": "numeric",
                                    "operator": "greater-than",
                                    "value": index,
                                },
                            }
                        ]
                    }
                ]
            }
        return Segment(
            index=index,
            id=seg_id,
            name=name,
            created=created,
            updated=updated,
            is_active=index % 6 != 5,
            is_starred=index % 4 == 1,
            definition=definition,
            rate=math.exp(rng.uniform(1.0, 6.0)),
            churn=rng.uniform(0.2, 1.1),
        )

    def segment(self, segment_id: str) -> Segment:
        """Look a segment up by id (KeyError when unknown)."""
        return self._by_id[segment_id]

    def segment_ids(self, *, include_deleted: bool = False) -> list[str]:
        """Segment ids in list order (oldest first): those the API knows, or all ever created."""
        return [seg.id for seg in self._segments if include_deleted or seg.id not in self.deleted]

    def segments(self) -> list[dict[str, Any]]:
        """Segments the API lists, as its attributes plus ``id``, in list order (oldest first)."""
        return [self.segment_attributes(sid) | {"id": sid} for sid in self.segment_ids()]

    def segment_attributes(self, segment_id: str) -> dict[str, Any]:
        """The API attributes of one segment, with Klaviyo-style UTC timestamps.

        Raises KeyError for an unknown or deleted id, as the API answers 404 for it.
        """
        if segment_id in self.deleted:
            raise KeyError(segment_id)
        seg = self._by_id[segment_id]
        return {
            "name": seg.name,
            "definition": seg.definition,
            "created": iso_utc(seg.created),
            "updated": iso_utc(seg.updated),
            "is_active": seg.is_active,
            "is_processing": 0 <= self.now_epoch() - seg.created < 3600,
            "is_starred": seg.is_starred,
        }

    # ----- day grid ----------------------------------------------------------------------------
    def _ensure_days(self, days: int) -> None:
        """Extend the local-midnight grid (epoch of each local day's start) to ``days + 1`` days."""
        with self._lock:
            grid = self._day_starts
            while len(grid) <= days + 1:
                day = HISTORY_START + timedelta(days=len(grid))
                grid.append(to_epoch(datetime(day.year, day.month, day.day), self._grid_tz))

    def _hours(self, day: int) -> int:
        return (self._day_starts[day + 1] - self._day_starts[day]) // 3600

    def _day_of_epoch(self, epoch: int) -> int:
        local = datetime.fromtimestamp(epoch, self._grid_tz).date()
        return (local - HISTORY_START).days

    def _needed_days(self) -> int:
        return max(self._day_of_epoch(self.now_epoch()) + 2, 1)

    # ----- daily history -----------------------------------------------------------------------
    def _eligible_hours(self, seg: Segment, day: int) -> list[bool]:
        start = self._day_starts[day]
        return [seg.created <= start + 3600 * k < seg.stop for k in range(self._hours(day))]

    def _daily(self, seg: Segment) -> tuple[array, array]:
        """Prefix sums of daily added / removed, generated lazily and extended as ``now`` moves."""
        needed = self._needed_days()
        with self._lock:
            data = self._data.get(seg.index)
            if data is None or len(data[0]) <= needed:
                self._ensure_days(needed + 8)
                data = self._generate(seg, needed + 8)
                self._data[seg.index] = data
            return data

    def warm(self) -> None:
        """Generate every segment's history now (e.g. in a background thread before a benchmark)."""
        for seg in self._segments:
            self._daily(seg)

    def _generate(self, seg: Segment, days: int) -> tuple[array, array]:
        """Generate ``days`` days from one PRNG stream that starts at the creation day.

        The stream does not depend on ``days``, so extending the horizon keeps the prefix.
        """
        rng = random.Random(f"standin-history:{self.seed}:{seg.index}")  # noqa: S311 - synthetic data
        first = self._day_of_epoch(seg.created)
        last = min(days - 1, self._day_of_epoch(int(seg.stop)) if not seg.is_active else days)
        plus = [0] * days
        minus = [0] * days
        shares = {day: sum(self._eligible_hours(seg, day)) / 24 for day in (first, last)}
        weekday0 = HISTORY_START.weekday()
        factors = [seg.rate * _WEEKDAY_FACTOR[(weekday0 + k) % 7] for k in range(7)]
        rand, exp, churn, total = rng.random, math.exp, seg.churn, 0
        for day in range(max(first, 0), last + 1):
            u, v, w = rand(), rand(), rand()
            share = shares.get(day, 1.0)
            level = factors[day % 7] * exp(2 * u - 1) * (8 + 30 * w if v < 0.015 else 1.0)
            added = int(level * share)
            removed = min(total, int(added * churn * (0.5 + w))) if day > first and share else 0
            plus[day], minus[day] = added, removed
            total += added - removed
        return array("q", accumulate(plus, initial=0)), array("q", accumulate(minus, initial=0))

    # ----- hourly split ------------------------------------------------------------------------
    def _hour_prefix_uncached(
        self, index: int, day: int
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Prefix sums over the day's hours of added / removed (split deterministically)."""
        seg = self._segments[index]
        added, removed = self._daily(seg)
        rng = random.Random(f"standin-hours:{self.seed}:{index}:{day}")  # noqa: S311 - synthetic data
        eligible = self._eligible_hours(seg, day)
        prefixes = []
        for totals in (added, removed):
            weights = [
                _HOUR_FACTOR[k % 24] * (0.5 + rng.random()) if ok else 0.0
                for k, ok in enumerate(eligible)
            ]
            parts = _split(totals[day + 1] - totals[day], weights)
            prefix = [0]
            for part in parts:
                prefix.append(prefix[-1] + part)
            prefixes.append(tuple(prefix))
        return prefixes[0], prefixes[1]

    # ----- cumulative counts -------------------------------------------------------------------
    def _position(self, epoch: int) -> tuple[int, int]:
        """(day, hours) such that the changes stamped before ``epoch`` are days < day + hours.

        ``epoch`` is clamped to just after ``now``: nothing that happens later is ever visible.
        """
        epoch = min(epoch, self.now_epoch() + 1)
        self._ensure_days(self._day_of_epoch(epoch) + 1)
        grid = self._day_starts
        if epoch <= grid[0]:
            return 0, 0
        day = bisect_right(grid, epoch) - 1
        hours = -((grid[day] - epoch) // 3600)
        if hours >= self._hours(day):
            return day + 1, 0
        return day, hours

    def _cumulative(
        self, seg: Segment, positions: Sequence[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """Cumulative (added, removed) at each position; hours within a day come from the split."""
        added, removed = self._daily(seg)
        out = []
        for day, hours in positions:
            if hours == 0:
                out.append((added[day], removed[day]))
            else:
                plus, minus = self._hour_prefix(seg.index, day)
                out.append((added[day] + plus[hours], removed[day] + minus[hours]))
        return out

    def _stats_between(
        self, seg: Segment, bounds: Sequence[int], statistics: Sequence[str]
    ) -> dict[str, list[int]]:
        """Statistics for consecutive ranges ``[bounds[i], bounds[i + 1])``."""
        cums = self._cumulative(seg, [self._position(b) for b in bounds])
        columns: dict[str, list[int]] = {name: [] for name in statistics}
        for (a0, r0), (a1, r1) in pairwise(cums):
            values = {
                "total_members": a1 - r1,
                "members_added": a1 - a0,
                "members_removed": r1 - r0,
                "net_members_changed": (a1 - a0) - (r1 - r0),
            }
            for name in statistics:
                columns[name].append(values[name])
        return columns

    # ----- reports (used by the server and as ground truth) ------------------------------------
    def window_for(self, timeframe: str | Window | tuple[datetime, datetime]) -> Window:
        """Resolve a key, a Window or a (start, end) pair of naive local datetimes."""
        if isinstance(timeframe, str):
            return resolve_key(timeframe, self.now_local())
        if isinstance(timeframe, Window):
            return timeframe
        return Window(*timeframe)

    def series_report(
        self,
        segment_ids: Sequence[str],
        interval: str,
        window: Window,
        statistics: Sequence[str] = STATISTICS,
        end_inclusive: bool = True,
        alignment: Alignment | None = None,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Date_times and per-segment statistic lists, as the series endpoint returns them."""
        buckets = cut_buckets(interval, window, self.tz, self.now_epoch(), end_inclusive, alignment)
        bounds = [b.lo for b in buckets] + [buckets[-1].hi] if buckets else []
        positions = [self._position(b) for b in bounds]
        date_times = [iso_at(b.label, self.tz) for b in buckets]
        results = []
        for seg_id in segment_ids:
            seg = self._by_id[seg_id]
            columns = self._columns(seg, positions, statistics)
            results.append({"groupings": {"segment_id": seg_id}, "statistics": columns})
        return date_times, results

    def _columns(
        self, seg: Segment, positions: Sequence[tuple[int, int]], statistics: Sequence[str]
    ) -> dict[str, list[int]]:
        cums = self._cumulative(seg, positions)
        added = [a1 - a0 for (a0, _), (a1, _) in pairwise(cums)]
        removed = [r1 - r0 for (_, r0), (_, r1) in pairwise(cums)]
        available = {
            "total_members": [a - r for a, r in cums[1:]],
            "members_added": added,
            "members_removed": removed,
            "net_members_changed": [a - r for a, r in zip(added, removed, strict=True)],
        }
        return {name: available[name] for name in statistics}

    def values_report(
        self,
        segment_ids: Sequence[str],
        window: Window,
        statistics: Sequence[str] = STATISTICS,
        end_inclusive: bool = True,
    ) -> list[dict[str, Any]]:
        """Per-segment values over the whole window (total at its end), as the values endpoint."""
        lo = to_epoch_ceil(window.start, self.tz)
        hi = max(lo, content_end(window, self.tz, self.now_epoch(), end_inclusive))
        results = []
        for seg_id in segment_ids:
            columns = self._stats_between(self._by_id[seg_id], [lo, hi], statistics)
            stats = {name: column[0] for name, column in columns.items()}
            results.append({"groupings": {"segment_id": seg_id}, "statistics": stats})
        return results

    def series(
        self,
        segment_id: str,
        interval: str,
        start_local: datetime | str,
        end_local: datetime | None = None,
        *,
        end_inclusive: bool = True,
        statistics: Sequence[str] = STATISTICS,
        alignment: Alignment | None = None,
    ) -> list[tuple[str, dict[str, int]]]:
        """Ground truth series: ``[(date_time, {stat: value})]`` for one segment.

        ``start_local`` may be a timeframe key (then ``end_local`` is ignored).
        """
        if isinstance(start_local, str):
            window = self.window_for(start_local)
        else:
            window = Window(start_local, end_local if end_local is not None else self.now_local())
        date_times, results = self.series_report(
            [segment_id], interval, window, statistics, end_inclusive, alignment
        )
        columns = results[0]["statistics"]
        return [
            (stamp, {name: columns[name][i] for name in statistics})
            for i, stamp in enumerate(date_times)
        ]

    def values(
        self,
        segment_id: str,
        timeframe: str | Window | tuple[datetime, datetime],
        *,
        end_inclusive: bool = True,
        statistics: Sequence[str] = STATISTICS,
    ) -> dict[str, int]:
        """Ground truth values for one segment over a key or a (start, end) local window."""
        window = self.window_for(timeframe)
        return self.values_report([segment_id], window, statistics, end_inclusive)[0]["statistics"]

    def total_at(self, segment_id: str, local: datetime) -> int:
        """Members after every change stamped at or before ``local`` (and not after now)."""
        epoch = min(to_epoch(local, self.tz), self.now_epoch()) + 1
        ((added, removed),) = self._cumulative(self._by_id[segment_id], [self._position(epoch)])
        return added - removed

    def daily_totals(self, segment_id: str, first: date, last: date) -> list[tuple[date, int]]:
        """Total members at the end of each local day from ``first`` to ``last`` (cut at now)."""
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        ends = [datetime(d.year, d.month, d.day) + timedelta(days=1) for d in days]
        now = self.now_epoch() + 1
        bounds = [min(to_epoch(end, self.tz), now) for end in ends]
        cums = self._cumulative(self._by_id[segment_id], [self._position(b) for b in bounds])
        return [(day, a - r) for day, (a, r) in zip(days, cums, strict=True)]

    def validate_window(
        self, timeframe: dict[str, Any], interval: str | None, floor: date | None = None
    ) -> Window:
        """Validate a request's timeframe object (already shape-checked) into a window.

        ``floor`` is Klaviyo's first data day (default June 1st, 2023): a timeframe starting
        earlier is refused, whether the report has a segment filter or not.
        """
        if "key" in timeframe:
            window = resolve_key(timeframe["key"], self.now_local())
        else:
            window = custom_window(timeframe["start"], timeframe["end"])
        check_window(window, interval, floor)
        return window


def _split(count: int, weights: Sequence[float]) -> list[int]:
    """Split ``count`` into integer parts proportional to ``weights`` (largest remainder)."""
    total = sum(weights)
    if count == 0 or total <= 0:
        return [0] * len(weights)
    exact = [count * w / total for w in weights]
    parts = [int(x) for x in exact]
    rest = count - sum(parts)
    order = sorted(range(len(weights)), key=lambda k: (parts[k] - exact[k], k))
    for k in order[:rest]:
        parts[k] += 1
    return parts
