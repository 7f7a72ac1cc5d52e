"""Pacing and budgeting of report calls, shared by both report streams.

Klaviyo allows each report endpoint 1 call a second, 2 a minute and 225 a day. A 429 costs a
wait and retries, so the tap spaces its calls evenly instead of provoking one, listens to the
``RateLimit-*`` headers Klaviyo sends on success, and counts its calls against the daily budget
(:mod:`tap_klaviyo_segments.ledger`, kept in STATE across runs) so that a spent budget stops the
run cleanly instead of failing it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tap_klaviyo_segments.ledger import CallRecord
from tap_klaviyo_segments.settings import utc_now


class ReportBudgetSpent(Exception):  # noqa: N818 - a signal to stop, not an error
    """No more report calls may be made in this run; the sync stops cleanly with state saved."""


@dataclass
class ReportGate:
    """Decides when the next report call may go out, and whether it may go out at all.

    ``calls_per_minute`` and ``calls_per_second`` set an even spacing between calls (Klaviyo's
    steady and burst limits); ``calls_per_day`` is the budget of any 24 hours, shared with the
    earlier runs whose calls ``record`` holds. ``clock`` and ``sleep`` pace; ``now`` (the tap's
    clock) is read once, and call times are that instant plus ``clock``'s elapsed time, so a
    wall clock that jumps during a run cannot re-date its calls. ``save`` receives the record
    after every call, to keep it in the STATE the next message writes.
    """

    calls_per_minute: float
    calls_per_second: float
    calls_per_day: int = 225
    #: The longest wait a ``RateLimit-Reset`` may impose (``max_retry_wait_seconds``); also the
    #: longest the gate waits for an earlier call to stop counting against the daily budget.
    max_wait: float = 300.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = lambda seconds: time.sleep(seconds)  # looked up per call
    now: Callable[[], datetime] = utc_now
    #: Report calls of the last 24 hours, earlier runs' and this run's.
    record: CallRecord = field(default_factory=CallRecord)
    save: Callable[[CallRecord], None] | None = None
    calls_made: int = 0
    stop_reason: str | None = None
    #: When the next report call becomes available, once the daily budget stopped the run.
    available_at: datetime | None = None
    _next_allowed: float = 0.0
    _first_call_at: float | None = None
    _anchor: tuple[datetime, float] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def spacing(self) -> float:
        """Seconds between two calls at the configured pace."""
        return max(60.0 / self.calls_per_minute, 1.0 / self.calls_per_second)

    @property
    def seconds_per_call(self) -> float:
        """Seconds per call so far, never below the configured spacing.

        Waits for ``RateLimit-Reset`` and retries are included: it is the pace of this run.
        """
        if self._first_call_at is None or self.calls_made < 2:
            return self.spacing
        observed = (self.clock() - self._first_call_at) / (self.calls_made - 1)
        return max(self.spacing, observed)

    @property
    def calls_left(self) -> int:
        """Calls the daily budget allows now or within ``max_wait`` (earlier calls expiring)."""
        if self.stop_reason:
            return 0
        horizon = self.wall_now() + timedelta(seconds=self.max_wait)
        return self.record.calls_left(horizon, self.calls_per_day)

    def wall_now(self) -> datetime:
        """The tap's clock as this gate keeps it: read once, then moved on by ``clock``."""
        if self._anchor is None:
            self._anchor = (self.now(), self.clock())
        start, started = self._anchor
        return start + timedelta(seconds=self.clock() - started)

    def before_call(self) -> None:
        """Wait until a call is allowed and count it; raise when the budget is spent."""
        with self._lock:
            if self.stop_reason:
                raise ReportBudgetSpent(self.stop_reason)
            self._wait_for_budget()
            wait = self._next_allowed - self.clock()
            if wait > 0:
                self.sleep(wait)
            self.calls_made += 1
            now = self.clock()
            if self._first_call_at is None:
                self._first_call_at = now
            self._next_allowed = now + self.spacing
            at = self.wall_now()
            self.record = self.record.add(at).pruned(at)
            if self.save is not None:
                self.save(self.record)

    def _wait_for_budget(self) -> None:
        """Return once the daily budget allows a call, waiting up to ``max_wait`` for one.

        A short wait lets a run scheduled at the same time as yesterday's go on as yesterday's
        calls stop counting; a longer one stops the run, saying when calls are available again.
        """
        now = self.wall_now()
        if self.record.calls_left(now, self.calls_per_day) > 0:
            return
        at = self.record.next_call_at(now, self.calls_per_day)
        if at is not None and (at - now).total_seconds() <= self.max_wait:
            self.sleep((at - now).total_seconds())
            now = self.wall_now()
            if self.record.calls_left(now, self.calls_per_day) > 0:
                return
            at = self.record.next_call_at(now, self.calls_per_day)
        self.available_at = at
        used = self.record.used(now)
        earlier = used - self.calls_made
        by_earlier = f", {earlier} of them by earlier runs" if earlier > 0 else ""
        when = (
            f"the next is allowed at {at.astimezone(timezone.utc).isoformat(timespec='seconds')}"
            if at is not None
            else "none is ever allowed"
        )
        self.stop_reason = (
            f"the daily budget of {self.calls_per_day} report calls (report_calls_per_day) is "
            f"spent: {used} made in the last 24 hours{by_earlier}; {when}"
        )
        raise ReportBudgetSpent(self.stop_reason)

    def after_response(self, status: int, headers: Mapping[str, str]) -> None:
        """Hold the next call until Klaviyo's window resets if it says none are left.

        A 429 is handled by the retry (which waits ``Retry-After``); here we only read the
        successful responses' ``RateLimit-Remaining`` and ``RateLimit-Reset``. The reset is
        rounded to its last digit (whole seconds at Klaviyo), possibly down, so the wait adds
        one unit of that digit: arriving a fraction early would earn the 429 we wait to avoid.
        """
        if status >= 400:
            return
        remaining = _header_number(headers.get("RateLimit-Remaining"))
        raw_reset = headers.get("RateLimit-Reset")
        reset = _header_number(raw_reset)
        if remaining is not None and remaining <= 0 and reset is not None:
            # Klaviyo's reset covers the steady (per-minute) window; a huge value is not a wait
            # we trust, so it is capped like a Retry-After would be.
            wait = min(max(reset, 0.0) + _resolution(raw_reset), self.max_wait)
            with self._lock:
                self._next_allowed = max(self._next_allowed, self.clock() + wait)

    def stop(self, reason: str) -> None:
        """Refuse every further call in this run (Klaviyo said the day's quota is spent)."""
        with self._lock:
            self.stop_reason = reason


def _resolution(value: str | None) -> float:
    """One unit of the last digit of a number as written: 1 for "40", 0.001 for "0.150"."""
    _, dot, decimals = (value or "").strip().partition(".")
    return 10.0 ** -len(decimals) if dot and decimals.isdigit() else 1.0


def _header_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
