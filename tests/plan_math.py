"""Call-count arithmetic the tests compare the planner with (not the tap's own code)."""

from __future__ import annotations

import math

from tap_klaviyo_segments.planning import BUCKETS_PER_WINDOW, MAX_IDS_PER_CALL


def minimum_series_calls(
    segment_count: int, bucket_count: int, interval: str, *, whole_account: bool = False
) -> int:
    """The fewest calls for ``segment_count`` segments sharing ``bucket_count`` buckets."""
    if segment_count <= 0 or bucket_count <= 0:
        return 0
    windows = math.ceil(bucket_count / BUCKETS_PER_WINDOW[interval])
    per_window = 1 if whole_account else math.ceil(segment_count / MAX_IDS_PER_CALL)
    return per_window * windows
