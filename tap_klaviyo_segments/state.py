"""STATE: the one module that reads the tap's STATE, hands out what it holds, and writes it.

The tap's STATE is singer-sdk's dict (``{"bookmarks": {stream: {...}}}``), with one key of the
tap's own at the top level (``report_calls``, the daily budget across runs). What it holds:

- ``bookmarks.segment_series.partitions``: one resume point per interval and segment, each a
  standard singer-sdk partition::

      {"context": {"interval": "daily", "segment_id": "AbC123"},
       "replication_key": "date_time",
       "replication_key_value": "2026-11-26T00:00:00-05:00"}

  where the value is the start of the oldest bucket that still has to be read (see
  :func:`tap_klaviyo_segments.planning.next_resume_point`). The stream moves them once a whole
  answer has been emitted, because one answer serves up to 100 segments.
- ``bookmarks.segment_series.bucket_alignment``: how Klaviyo was seen to align an interval's
  buckets (``{"weekly": "start"}``), so later runs cut windows on that grid without a call.
- ``bookmarks.segment_series.data_floor``: Klaviyo's first day of segment data where Klaviyo
  said it is later than the documented 2023-06-01 (a 400 naming its date).
- ``bookmarks.segment_series.read_with``: the config the bookmarks were read with (statistics,
  start, timezone), so a config edit between runs is noticed.
- ``bookmarks.<report stream>.whole_account_calls = "refused"``: Klaviyo refused a report
  without a segment filter, so that stream asks in filtered batches from then on.
- ``unknown_segments``: ids in ``segment_ids`` that Klaviyo does not know (never asked again).
- ``report_calls``: the record of recent report calls (:mod:`tap_klaviyo_segments.ledger`).

The incoming STATE is checked by :func:`tap_klaviyo_segments.state_checks.check_state`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tap_klaviyo_segments import ledger
from tap_klaviyo_segments.state_checks import (
    ALIGNMENT_KEY,
    DATA_FLOOR_KEY,
    READ_WITH_KEY,
    REPLICATION_KEY,
    SERIES_STREAM,
    UNKNOWN_SEGMENTS_KEY,
    WHOLE_ACCOUNT_KEY,
    WHOLE_ACCOUNT_REFUSED,
    read_moment,
)

__all__ = ["REPLICATION_KEY", "RunState", "SeriesBookmarks"]


class SeriesBookmarks:
    """Reads and writes the resume points inside the series stream's state dict (in place)."""

    def __init__(
        self, stream_state: dict[str, Any], timezone: ZoneInfo, logger: logging.Logger
    ) -> None:
        self._timezone = timezone
        self._logger = logger
        partitions = stream_state.get("partitions")
        if not isinstance(partitions, list):
            partitions = []
            stream_state["partitions"] = partitions
        self._partitions: list[Any] = partitions
        self._index: dict[tuple[str, str], dict[str, Any]] = {}
        for partition in partitions:
            context = partition.get("context") if isinstance(partition, dict) else None
            if isinstance(context, dict) and {"interval", "segment_id"} <= context.keys():
                self._index[(str(context["interval"]), str(context["segment_id"]))] = partition

    def resume_point(self, interval: str, segment_id: str, *, now: datetime) -> datetime | None:
        """The stored resume point as local wall-clock time, or None to start from the beginning.

        A value that cannot be read, or lies in the future, is dropped from the state with a
        warning and the segment is re-read from start_date: nothing says which buckets a broken
        bookmark really covered, and a full re-read is safe where resuming "now" would skip the
        buckets between the last real read and today.
        """
        partition = self._index.get((interval, segment_id))
        if partition is None or partition.get("replication_key_value") is None:
            return None
        raw = partition["replication_key_value"]
        moment = read_moment(raw)
        if moment is None:
            partition.pop("replication_key_value", None)
            self._logger.warning(
                "Ignoring unreadable bookmark %r of segment %s (%s); re-reading it from start_date",
                raw,
                segment_id,
                interval,
            )
            return None
        local = moment.astimezone(self._timezone).replace(tzinfo=None) if moment.tzinfo else moment
        if local > now:
            partition.pop("replication_key_value", None)
            self._logger.warning(
                "Ignoring bookmark %s of segment %s (%s): it lies in the future (now is %s), so it "
                "cannot say what was read; re-reading the segment from start_date",
                raw,
                segment_id,
                interval,
                now.isoformat(),
            )
            return None
        return local

    def move_to(self, interval: str, segment_id: str, resume_at: datetime) -> None:
        """Store a resume point (local wall-clock time) for one segment and interval."""
        value = resume_at.replace(tzinfo=self._timezone).isoformat()
        partition = self._index.get((interval, segment_id))
        if partition is None:
            partition = {"context": {"interval": interval, "segment_id": segment_id}}
            self._partitions.append(partition)
            self._index[(interval, segment_id)] = partition
        partition["replication_key"] = REPLICATION_KEY
        partition["replication_key_value"] = value

    def segment_ids(self) -> set[str]:
        """Every segment that has a bookmark, in any interval."""
        return {segment_id for _, segment_id in self._index}

    def forget(self, segment_ids: Iterable[str]) -> int:
        """Drop every bookmark of these segments; how many were dropped."""
        gone = set(segment_ids)
        keep = [
            p for p in self._partitions if str(p.get("context", {}).get("segment_id")) not in gone
        ]
        dropped = len(self._partitions) - len(keep)
        self._partitions[:] = keep
        self._index = {key: p for key, p in self._index.items() if key[1] not in gone}
        return dropped

    def clear(self) -> None:
        """Drop every bookmark: the series is read again from start_date."""
        self._partitions.clear()
        self._index.clear()


class RunState:
    """The tap's STATE during one run: what the streams and the call plan ask of it.

    ``state`` is singer-sdk's own dict (the streams' ``stream_state`` live inside it), changed
    in place; ``write`` sends it as a STATE message (through the tap's public state writer).
    Nothing else in the package reads or writes STATE.
    """

    def __init__(
        self,
        state: dict[str, Any],
        *,
        write: Callable[[dict[str, Any]], None],
        timezone: ZoneInfo,
        logger: logging.Logger,
    ) -> None:
        self._state = state
        self._write = write
        self._timezone = timezone
        self._logger = logger
        self._bookmarks: SeriesBookmarks | None = None

    def write(self) -> None:
        """Write a STATE message now: everything emitted so far is covered by it."""
        self._write(self._state)

    def read_only(self) -> None:
        """Write nothing from now on: the call plan reads STATE and must print only the plan."""
        self._write = lambda state: None

    def stream(self, name: str) -> dict[str, Any]:
        """A stream's own part of STATE (the dict singer-sdk keeps as its ``stream_state``)."""
        bookmarks = self._state.setdefault("bookmarks", {})
        return bookmarks.setdefault(name, {})  # type: ignore[no-any-return]

    @property
    def series(self) -> SeriesBookmarks:
        """The series stream's resume points."""
        if self._bookmarks is None:
            self._bookmarks = SeriesBookmarks(
                self.stream(SERIES_STREAM), self._timezone, self._logger
            )
        return self._bookmarks

    def whole_account_refused(self, stream: str) -> bool:
        """Whether Klaviyo once refused this stream a report without a segment filter."""
        return self.stream(stream).get(WHOLE_ACCOUNT_KEY) == WHOLE_ACCOUNT_REFUSED

    def refuse_whole_account(self, stream: str) -> None:
        """Remember that this stream asks in filtered batches from now on; write STATE."""
        self.stream(stream)[WHOLE_ACCOUNT_KEY] = WHOLE_ACCOUNT_REFUSED
        self.write()

    def alignment(self, interval: str) -> str | None:
        """How Klaviyo was seen to align this interval's buckets, if a run has learned it."""
        learned = self.stream(SERIES_STREAM).get(ALIGNMENT_KEY)
        return learned.get(interval) if isinstance(learned, dict) else None

    def learn_alignment(self, interval: str, alignment: str) -> None:
        """Remember how Klaviyo aligns this interval's buckets; write STATE."""
        self.stream(SERIES_STREAM).setdefault(ALIGNMENT_KEY, {})[interval] = alignment
        self.write()

    def data_floor(self) -> date | None:
        """Klaviyo's first day of segment data, where a 400 said it is later than documented."""
        raw = self.stream(SERIES_STREAM).get(DATA_FLOOR_KEY)
        return date.fromisoformat(raw) if isinstance(raw, str) else None

    def learn_data_floor(self, floor: date) -> None:
        """Remember Klaviyo's first day of data; write STATE."""
        self.stream(SERIES_STREAM)[DATA_FLOOR_KEY] = floor.isoformat()
        self.write()

    def read_with(self) -> dict[str, Any] | None:
        """The config the series bookmarks were read with, if a run recorded it."""
        raw = self.stream(SERIES_STREAM).get(READ_WITH_KEY)
        return raw if isinstance(raw, dict) else None

    def record_read_with(self, read_with: dict[str, Any]) -> None:
        """Record the config the bookmarks are read with from now on (written with them)."""
        self.stream(SERIES_STREAM)[READ_WITH_KEY] = read_with

    def unknown_segments(self) -> set[str]:
        """Ids in ``segment_ids`` that Klaviyo said it does not know."""
        raw = self._state.get(UNKNOWN_SEGMENTS_KEY)
        return {str(sid) for sid in raw} if isinstance(raw, list) else set()

    def forget_segments(self, segment_ids: Iterable[str], *, unknown: bool) -> int:
        """Drop the bookmarks of segments Klaviyo no longer has; write STATE.

        ``unknown`` ids (configured in ``segment_ids``) are also kept in a list, so later runs
        skip them without asking. Returns the number of bookmarks dropped.
        """
        ids = set(segment_ids)
        dropped = self.series.forget(ids)
        if unknown:
            self._state[UNKNOWN_SEGMENTS_KEY] = sorted(self.unknown_segments() | ids)
        self.write()
        return dropped

    def call_record(self, now: datetime, calls_per_day: int) -> tuple[ledger.CallRecord, list[str]]:
        """The record of recent report calls the daily budget starts from, and what it assumed."""
        return ledger.resolve(self._state.get(ledger.STATE_KEY), now, calls_per_day)

    def save_call_record(self, record: ledger.CallRecord) -> None:
        """Keep the record in STATE: every STATE written from now on carries it."""
        self._state[ledger.STATE_KEY] = record.to_state()


def carry_top_level(checked: dict[str, Any], state: dict[str, Any]) -> None:
    """Put the tap's own top-level keys of a checked STATE into the tap's state.

    singer-sdk's ``load_state`` only loads ``bookmarks``; the record of report calls and the
    unknown segments live next to it.
    """
    for key in (ledger.STATE_KEY, UNKNOWN_SEGMENTS_KEY):
        if key in checked:
            state[key] = checked[key]
