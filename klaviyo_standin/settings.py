"""Switches of the stand-in server (also exposed as CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from klaviyo_standin.timeframes import Alignment

DEFAULT_API_KEY = "pk_standin_0123456789abcdef"
DEFAULT_SCOPELESS_API_KEY = "pk_standin_noscope_0123456789"

# A scripted response: (kind, value). Kinds: "429" (value = Retry-After seconds), "500", "502",
# "503", "504", "drop", "slow" (value = seconds, then answers normally), "malformed", "ok", and
# the answer faults of ANSWER_FAULTS, which corrupt an otherwise good 200.
ScriptEntry = tuple[str, "float | None"]

#: Faults in a 200 that parses: each one is a way an answer can be incomplete or shifted.
#: "statistic-missing" / "statistic-null": the first answered segment lacks its first statistic
#: (or has it null); "leading-missing": the first ``value`` (default 1) buckets are left out;
#: "empty-date-times": no buckets at all; "offset": every label carries ``value`` hours as its
#: UTC offset, the wall clock unchanged (as if the account were in another timezone).
ANSWER_FAULTS = (
    "statistic-missing",
    "statistic-null",
    "leading-missing",
    "empty-date-times",
    "offset",
)


@dataclass
class FaultSettings:
    """Seeded fault injection on the report endpoints (and on GET /api/segments if enabled).

    Rates are probabilities per request, drawn from a PRNG seeded with ``fault_seed`` in request
    order, so a sequential test sees the same faults on every run.
    """

    fault_seed: int = 0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 1.0
    malformed_rate: float = 0.0
    apply_to_segments: bool = False
    script: list[ScriptEntry] = field(default_factory=list)


@dataclass
class StandinSettings:
    """Everything that shapes the stand-in's data and behaviour.

    ``timezone``, ``segment_count``, ``seed`` and ``now`` shape the synthetic account; the server
    rebuilds its account when one of them changes. ``now=None`` follows the real clock; a naive
    ``now`` is wall-clock time in ``timezone``. ``time_scale`` divides every rate-limit window.
    """

    timezone: str = "UTC"
    segment_count: int = 12
    seed: int = 1
    now: datetime | None = None
    end_inclusive: bool = True
    #: How weekly / monthly buckets are cut (klaviyo_standin.timeframes docstring): calendar
    #: weeks from Monday by default, as a real Klaviyo answer showed; ``start`` / ``sunday``
    #: are switches for the tap's alignment learning.
    week_alignment: str = "monday"
    month_alignment: str = "calendar"
    #: A report without a segment filter answers for every segment (inactive ones too), at
    #: most this many of them (None: all); or is refused with a 400.
    unfiltered_cap: int | None = None
    reject_unfiltered: bool = False
    api_key: str = DEFAULT_API_KEY
    scopeless_api_key: str | None = DEFAULT_SCOPELESS_API_KEY
    rate_limits_enabled: bool = True
    time_scale: float = 1.0
    shared_daily_budget: bool = False
    faults: FaultSettings = field(default_factory=FaultSettings)
    verbose: bool = False

    @property
    def alignment(self) -> Alignment:
        """The bucket alignment of series answers."""
        return Alignment(self.week_alignment, self.month_alignment)

    def model_key(self) -> tuple[object, ...]:
        """The fields the synthetic account depends on (a change means a rebuild)."""
        return (self.timezone, self.segment_count, self.seed, self.now)
