"""The report run: what one sync shares between the report streams, made once per sync.

One object owns the settings, the clock, the STATE (:class:`~tap_klaviyo_segments.state.RunState`),
the gate that paces and counts report calls, the contact with the API, the segments to report
on, Klaviyo's clock as its answers tell it, and the ids already warned about. The streams ask it;
nobody changes its fields from outside. The tap builds it (``TapKlaviyoSegments.report_run``)
and hands it to the streams; the call plan asks the same object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from functools import cached_property

from tap_klaviyo_segments.errors import (
    ListingThrottledError,
    ReportBudgetSpent,
    StateMismatchError,
)
from tap_klaviyo_segments.http import ApiContact, klaviyo_date
from tap_klaviyo_segments.pacing import ReportGate
from tap_klaviyo_segments.settings import STATISTICS, Settings
from tap_klaviyo_segments.state import RunState

#: Waits up to this long are the normal pace of report calls and get no log line.
_LOGGED_WAIT_SECONDS = 5.0

#: A difference between Klaviyo's clock and the tap's beyond this gets one WARNING.
CLOCK_SKEW_WARNING = timedelta(minutes=2)

#: Lists the account's segments: id -> is_active (raises ListingThrottledError).
SegmentLister = Callable[[], Mapping[str, bool]]


class ReportRun:
    """What the report streams of one sync share (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: Settings,
        state: RunState,
        clock: Callable[[], datetime],
        list_segments: SegmentLister,
        logger: logging.Logger,
    ) -> None:
        self.settings = settings
        self.state = state
        self.logger = logger
        self._clock = clock
        self._list_segments = list_segments
        self._warned: set[tuple[str, str]] = set()
        self._pending_progress: str | None = None
        self._klaviyo_offset: timedelta | None = None
        self._skew_warned = False
        #: Report calls the streams stopped on this run still need (summed over the streams).
        self.calls_still_needed = 0

    # The clocks -------------------------------------------------------------------------------

    def now_utc(self) -> datetime:
        """The tap's clock (aware); tests freeze it."""
        return self._clock()

    def local_now(self) -> datetime:
        """The tap's clock as naive wall-clock time in the account timezone."""
        return self.settings.local_now(self.now_utc())

    def klaviyo_local_now(self) -> datetime | None:
        """Klaviyo's clock now, as its last answer's ``Date`` header showed it (local, naive)."""
        if self._klaviyo_offset is None:
            return None
        return self.settings.local_now(self.gate.wall_now() + self._klaviyo_offset)

    def ended_by(self, moment: datetime) -> datetime:
        """What has ended by ``moment`` (local) on both clocks: the earlier of the two.

        A bucket is complete only once it has ended on the tap's clock and on Klaviyo's, so a
        tap clock ahead of Klaviyo's never writes a partial bucket as complete.
        """
        klaviyo = self.klaviyo_local_now()
        return moment if klaviyo is None else min(moment, klaviyo)

    # The gate (pacing, daily budget) ----------------------------------------------------------

    @cached_property
    def gate(self) -> ReportGate:
        """Pacing and the daily budget shared by segment_values and segment_series.

        Built on first use, so it reads the clock of the sync (tests freeze it). The record of
        recent calls comes from STATE and goes back into it after every call.
        """
        settings = self.settings
        record, notes = self.state.call_record(self.now_utc(), settings.report_calls_per_day)
        for note in notes:
            self.logger.warning("Daily report budget: %s", note)
        self.state.save_call_record(record)
        return ReportGate(
            calls_per_minute=settings.report_calls_per_minute,
            calls_per_second=settings.report_calls_per_second,
            calls_per_day=settings.report_calls_per_day,
            max_wait=settings.max_retry_wait_seconds,
            sleep=self._announced_wait,
            now=self.now_utc,
            record=record,
            save=self.state.save_call_record,
        )

    @cached_property
    def contact(self) -> ApiContact:
        """Whether the API answered yet in this run, shared by every stream's session."""
        return ApiContact(self.settings.api_url)

    def announce(self, stream: str, done: int, total: int, what: str) -> None:
        """The progress line of the next report call, logged once the gate lets it go out.

        None for a call the spent budget will refuse (it is not made); the time left is at the
        pace measured so far, waits for ``RateLimit-Reset`` and retries included.
        """
        gate = self.gate
        after = total - done - 1
        budget = ""
        if after > gate.calls_left - 1:
            budget = f" (the daily budget allows {max(gate.calls_left - 1, 0)} more)"
        self._pending_progress = (
            f"{stream} call {done + 1}/{total}: {what}; {after} left after it{budget}, about "
            f"{after * gate.seconds_per_call / 60:.1f} min at the current pace"
        )

    def before_call(self) -> None:
        """Before each attempt: wait for the gate, then say which call goes out (once)."""
        self.gate.before_call()
        if self._pending_progress is not None:
            self.logger.info("%s", self._pending_progress)
            self._pending_progress = None

    def after_response(self, status: int, headers: Mapping[str, str]) -> None:
        """After each answer: Klaviyo's rate-limit headers and its clock."""
        self.gate.after_response(status, headers)
        said = klaviyo_date(headers)
        if said is None:
            return
        ours = self.gate.wall_now()
        self._klaviyo_offset = said - ours
        if abs(self._klaviyo_offset) > CLOCK_SKEW_WARNING and not self._skew_warned:
            self._skew_warned = True
            self.logger.warning(
                "Klaviyo's clock (its answer's Date header: %s) and this machine's (%s) differ "
                "by %.0f s: the tap judges what has ended by the earlier of the two; set this "
                "machine's clock right (NTP)",
                said.isoformat(),
                ours.isoformat(timespec="seconds"),
                self._klaviyo_offset.total_seconds(),
            )

    def stop_cleanly(
        self, stream: str, stop: ReportBudgetSpent, calls_left: int, resume: str
    ) -> None:
        """Warn why a stream stopped, the calls made and still needed, and where it resumes."""
        gate = self.gate
        gate.stop(str(stop))
        self.calls_still_needed += calls_left
        needed = f"{calls_left} more are needed for this stream"
        if self.calls_still_needed != calls_left:
            needed += f" ({self.calls_still_needed} for the whole sync)"
        self.logger.warning(
            "Stopping %s cleanly: %s. Made %d report calls this run; %s. "
            "State is saved; the next run resumes %s.",
            stream,
            stop,
            gate.calls_made,
            needed,
            resume,
        )

    def _announced_wait(self, seconds: float) -> None:
        """The gate's sleep: a wait longer than the normal pace gets an INFO line and reason."""
        if seconds > _LOGGED_WAIT_SECONDS:
            gate = self.gate
            if seconds > gate.spacing + 1:
                reason = (
                    "Klaviyo's last answer said RateLimit-Remaining 0 and gave a RateLimit-Reset "
                    f"(capped at max_retry_wait_seconds={gate.max_wait:g})"
                )
            else:
                reason = "to keep report_calls_per_minute / report_calls_per_second"
            self.logger.info("Waiting %.0f s before the next report call: %s", seconds, reason)
        time.sleep(seconds)

    # The segments -----------------------------------------------------------------------------

    def segment_ids(self) -> list[str]:
        """The segments both report streams ask about (listed from Klaviyo once per run)."""
        configured = self.settings.segment_ids
        if configured is None:
            return list(self._listed_ids)
        unknown = self.state.unknown_segments()
        return [sid for sid in configured if sid not in unknown]

    @cached_property
    def _listed_ids(self) -> tuple[str, ...]:
        listing = self._listing
        if listing is None:
            return ()
        active_only = not self.settings.include_inactive_segments
        ids = tuple(sid for sid, active in listing.items() if active or not active_only)
        self.logger.info("Reporting on %d %ssegments", len(ids), "active " if active_only else "")
        self._forget_deleted(listing)
        return ids

    @cached_property
    def _listing(self) -> Mapping[str, bool] | None:
        """Every segment of the account (id -> is_active), or None if the listing was throttled."""
        try:
            return self._list_segments()
        except ListingThrottledError as stop:
            self.logger.warning(
                "Reporting on no segments this run: %s. State is saved; the next run lists them "
                "again (set segment_ids to report without the listing)",
                stop,
            )
            return None

    def _forget_deleted(self, listing: Mapping[str, bool]) -> None:
        """Drop the bookmarks of segments the account no longer has (deleted in Klaviyo)."""
        gone = sorted(self.state.series.segment_ids() - set(listing))
        if gone:
            dropped = self.state.forget_segments(gone, unknown=False)
            self.logger.info(
                "Dropped %d bookmarks of %d segments Klaviyo no longer lists (deleted): %s",
                dropped,
                len(gone),
                ", ".join(gone[:5]),
            )

    def settle_missing(self, stream: str, segment_ids: Collection[str], what: str) -> None:
        """Segments left out of an answer asked for them twice: unknown ones, or a gap.

        An id Klaviyo does not list is unknown (deleted, or a typo in ``segment_ids``): warned
        once, kept in STATE and never asked again. Any other keeps its bookmark before the
        window, so the next run asks again.
        """
        listing = self._listing if self.settings.segment_ids is not None else None
        unknown = sorted(set(segment_ids) - set(listing)) if listing is not None else []
        if unknown:
            self.state.forget_segments(unknown, unknown=True)
            self.logger.warning(
                "Klaviyo does not know %d segments of segment_ids (%s): deleted, or a typo? The "
                "tap skips them from now on (kept in STATE); remove them from segment_ids",
                len(unknown),
                ", ".join(unknown[:5]),
            )
        held = sorted(set(segment_ids) - set(unknown))
        if held:
            self.logger.warning(
                "Klaviyo left %d segments (%s) out of its answers for %s twice in %s; their "
                "bookmarks stay before it, so the next run asks again",
                len(held),
                ", ".join(held[:5]),
                what,
                stream,
            )

    def warn_unexpected(self, unexpected: Collection[str]) -> None:
        """Say once per run which segments Klaviyo returned that were not asked for."""
        new = [sid for sid in unexpected if ("+", sid) not in self._warned]
        self._warned.update(("+", sid) for sid in new)
        if new:
            self.logger.warning(
                "Klaviyo returned %d segments that were not asked for (%s); they were skipped",
                len(new),
                ", ".join(new[:5]),
            )

    # Config changes between runs --------------------------------------------------------------

    def reconcile_series_config(self) -> None:
        """Compare the config with the one the series bookmarks were read with (STATE).

        - another ``account_timezone``: stop before any row (the target holds the old zone's
          days; re-reading under the new one would double days), saying what to do;
        - a statistic missing from what was read, or an earlier ``start_date``: read the series
          again from start_date (every row gets every statistic; the gap is filled);
        - then record what the bookmarks are read with from now on.
        """
        settings, state = self.settings, self.state
        now = self._read_with()
        before = state.read_with()
        has_bookmarks = bool(state.series.segment_ids())
        if before is None and has_bookmarks:
            # STATE from before this was recorded: read with this config's statistics.
            before = {**now, "statistics": list(settings.statistics)}
        if before is not None and has_bookmarks:
            old_zone = before.get("account_timezone")
            if isinstance(old_zone, str) and old_zone != now["account_timezone"]:
                raise StateMismatchError(_zone_change_message(old_zone, settings.timezone.key))
            reasons = _reread_reasons(before, now)
            if reasons:
                state.series.clear()
                self.logger.warning(
                    "segment_series is read again from start_date: %s", "; ".join(reasons)
                )
        state.record_read_with(now)

    def _read_with(self) -> dict[str, object]:
        settings = self.settings
        return {
            "statistics": list(STATISTICS),
            "start_date": settings.start.isoformat(),
            "account_timezone": settings.timezone.key,
        }


def _reread_reasons(before: Mapping[str, object], now: Mapping[str, object]) -> list[str]:
    reasons = []
    old_stats = before.get("statistics")
    added = [s for s in STATISTICS if isinstance(old_stats, list) and s not in old_stats]
    if added:
        reasons.append(
            f"the rows loaded so far lack {', '.join(added)} (read with fewer statistics); every "
            "row is read again with all four"
        )
    old_start, new_start = before.get("start_date"), now.get("start_date")
    if isinstance(old_start, str) and isinstance(new_start, str) and new_start < old_start:
        reasons.append(f"start_date moved earlier, from {old_start} to {new_start}")
    return reasons


def _zone_change_message(old: str, new: str) -> str:
    return (
        f"account_timezone changed from {old} to {new} since the segment_series bookmarks were "
        f"written: the target holds days and hours of {old}, and reading on under {new} would "
        "write the recent days twice. Either set account_timezone back to "
        f"{old}, or start segment_series afresh: clear the tap's state (meltano state clear "
        "<state id>, or run without --state), empty the segment_series table in the target, "
        "and run again (it reloads from start_date). No row was written."
    )
