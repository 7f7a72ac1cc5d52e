"""Per-segment, per-interval bookmarks of the segment_series stream, kept in singer-sdk's shape.

Each bookmark is a standard singer-sdk state partition::

    {"context": {"interval": "daily", "segment_id": "AbC123"},
     "replication_key": "date_time",
     "replication_key_value": "2026-11-26T00:00:00-05:00"}

where the value is the resume point: the start of the oldest bucket that still has to be read
(see :func:`tap_klaviyo_segments.planning.next_resume_point`). The stream, not the SDK, moves
these, once a whole response has been emitted, because one request serves up to 100 segments.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

REPLICATION_KEY = "date_time"


class SeriesBookmarks:
    """Reads and writes the resume points inside a stream's state dict (in place)."""

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

        A value that cannot be read is dropped (a full re-read is safe, skipping is not); one in
        the future is pulled back to ``now``, so no data is skipped because of it.
        """
        partition = self._index.get((interval, segment_id))
        if partition is None or partition.get("replication_key_value") is None:
            return None
        raw = partition["replication_key_value"]
        try:
            moment = datetime.fromisoformat(str(raw))
        except ValueError:
            self._logger.warning(
                "Ignoring unreadable bookmark %r of segment %s (%s); re-reading it from start_date",
                raw,
                segment_id,
                interval,
            )
            return None
        local = moment.astimezone(self._timezone).replace(tzinfo=None) if moment.tzinfo else moment
        if local > now:
            self._logger.warning(
                "Bookmark %s of segment %s (%s) lies in the future; resuming from now (%s) instead",
                raw,
                segment_id,
                interval,
                now.isoformat(),
            )
            return now
        return local

    def set(self, interval: str, segment_id: str, resume_at: datetime) -> None:
        """Store a resume point (local wall-clock time) for one segment and interval."""
        value = resume_at.replace(tzinfo=self._timezone).isoformat()
        partition = self._index.get((interval, segment_id))
        if partition is None:
            partition = {"context": {"interval": interval, "segment_id": segment_id}}
            self._partitions.append(partition)
            self._index[(interval, segment_id)] = partition
        partition["replication_key"] = REPLICATION_KEY
        partition["replication_key_value"] = value
