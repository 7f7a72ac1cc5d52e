"""The SDK's floor: a minimal singer-sdk tap that emits segment_series-shaped records from memory.

``python benchmarks/floor_tap.py --config '{"segments": 1000, "days": 1275}'`` style config file
keys: ``segments``, ``days``, ``start`` (first day, ISO), ``incremental`` (replication key
``date_time`` with per-record state bookkeeping turned off, as the real stream does).
Same schema, same primary keys, same record dicts as the real stream; no HTTP, no parsing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from tap_klaviyo_segments.series import SegmentSeriesStream


class FloorSeriesStream(Stream):
    name = "segment_series"
    primary_keys = ("segment_id", "interval", "date_time")
    schema = SegmentSeriesStream.schema

    def get_records(self, context: Any) -> Iterator[dict[str, Any]]:
        segments = int(self.config["segments"])
        days = int(self.config["days"])
        first = date.fromisoformat(self.config.get("start", "2023-06-02"))
        labels = [f"{first + timedelta(days=k)}T00:00:00+00:00" for k in range(days)]
        for s in range(segments):
            segment_id = f"Seg{s:05d}"
            total = 1000 + s
            for k, label in enumerate(labels):
                added = (s * 7 + k * 13) % 50
                removed = (s * 3 + k * 5) % 20
                total += added - removed
                yield {
                    "segment_id": segment_id,
                    "interval": "daily",
                    "date_time": label,
                    "total_members": total,
                    "members_added": added,
                    "members_removed": removed,
                    "net_members_changed": added - removed,
                    "is_complete": True,
                }


class IncrementalFloorSeriesStream(FloorSeriesStream):
    replication_key = "date_time"

    def _increment_stream_state(self, latest_record: Any, *, context: Any = None) -> None:
        """Like the real stream: bookmarks are not moved per record."""


class FloorTap(Tap):
    name = "floor-tap"
    config_jsonschema = th.PropertiesList(
        th.Property("segments", th.IntegerType, required=True),
        th.Property("days", th.IntegerType, required=True),
        th.Property("start", th.StringType),
        th.Property("incremental", th.BooleanType),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        if self.config.get("incremental"):
            return [IncrementalFloorSeriesStream(self)]
        return [FloorSeriesStream(self)]


if __name__ == "__main__":
    FloorTap.cli()
