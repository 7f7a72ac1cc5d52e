"""A local stand-in for Klaviyo's segment APIs, for tests and the demo job.

Start it in-process with ``with StandinServer(StandinSettings(...)) as server:`` (``server.url``,
``server.account`` for ground truth) or as a command: ``python -m klaviyo_standin``.

Switches are fields of :class:`StandinSettings` (``server.settings``; most may change between two
tap runs against one server): bucket alignments, faults, and the changes of issue 17
(``timezone``, ``clock_skew_seconds``, ``data_floor``, ``deleted_segment_ids``, ``leave_out``).
docs/standin.md describes each.
"""

from klaviyo_standin.model import STATISTICS, Account, Segment
from klaviyo_standin.server import LogEntry, StandinServer
from klaviyo_standin.settings import (
    DEFAULT_API_KEY,
    DEFAULT_SCOPELESS_API_KEY,
    FaultSettings,
    LeaveOut,
    StandinSettings,
)
from klaviyo_standin.timeframes import (
    DATA_FLOOR,
    INTERVALS,
    TIMEFRAME_KEYS,
    TimeframeError,
    Window,
    resolve_key,
)

__all__ = [
    "DATA_FLOOR",
    "DEFAULT_API_KEY",
    "DEFAULT_SCOPELESS_API_KEY",
    "INTERVALS",
    "STATISTICS",
    "TIMEFRAME_KEYS",
    "Account",
    "FaultSettings",
    "LeaveOut",
    "LogEntry",
    "Segment",
    "StandinServer",
    "StandinSettings",
    "TimeframeError",
    "Window",
    "resolve_key",
]
