"""Switches of the stand-in server (also exposed as CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from klaviyo_standin.timeframes import DATA_FLOOR, Alignment

DEFAULT_API_KEY = "pk_standin_0123456789abcdef"
FIRST_DATA_DAY = DATA_FLOOR.date()
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
class LeaveOut:
    """Leave segments out of the report answers that match (Klaviyo answering a window partly).

    A rule matches an answer when every condition given holds: the report kind (``report``:
    "series", "values" or "any"), the timeframe start (``window_start``: the local wall-clock
    start as Klaviyo reads it; a ``date`` means its midnight) and the answer's number
    (``call``: the Nth answered report of that kind, from 1, counted since the server started or
    its log was last cleared; answers with segments left out, malformed or corrupted count too;
    refusals (4xx, 429), 5xx and dropped connections do not). ``times`` limits the rule to the
    first N answers it matches (``None``: every one, "always"). ``segment_ids=None`` leaves every
    segment out: the answer is a 200 with ``results: []`` (series answers keep ``date_times``).
    """

    segment_ids: list[str] | None = None
    window_start: datetime | date | None = None
    call: int | None = None
    report: str = "series"
    times: int | None = None
    #: Answers this rule has changed so far (the server counts; compare with ``times``).
    used: int = 0

    def __post_init__(self) -> None:
        if self.report not in ("series", "values", "any"):
            raise ValueError(f"LeaveOut.report must be series, values or any, not {self.report!r}")

    def wants(self, kind: str, window_start: datetime, number: int) -> bool:
        """Whether this rule applies to answer ``number`` of ``kind`` for ``window_start``."""
        start = self.window_start
        if start is not None and not isinstance(start, datetime):
            start = datetime(start.year, start.month, start.day)
        return (
            self.report in ("any", kind)
            and (start is None or start == window_start)
            and (self.call is None or self.call == number)
            and (self.times is None or self.used < self.times)
        )


@dataclass
class StandinSettings:
    """Everything that shapes the stand-in's data and behaviour.

    ``segment_count``, ``seed`` and ``now`` shape the synthetic account; the server rebuilds its
    account (a fresh history) when one of them changes. ``now=None`` follows the real clock; a
    naive ``now`` is wall-clock time in ``timezone`` (as it was when the account was built).
    ``time_scale`` divides every rate-limit window.

    Switches for changes between runs and clocks that disagree (issue 17); each may be changed on
    a running server, between two tap runs, and takes effect on the next request:

    - ``timezone``: the account's timezone. Changing it keeps the history (the instants members
      came and went) and moves only the reports: labels, timeframes and buckets follow it.
    - ``clock_skew_seconds``: Klaviyo's clock is ``now`` (or the real clock) plus this; the HTTP
      ``Date`` header of every answer shows it, and what has ended, which buckets exist (the one
      in progress is partial as of it) and the timeframe keys follow it.
    - ``data_floor``: Klaviyo's first data day; a timeframe starting earlier is a 400 ``invalid``
      "Cannot query for segment data before June 21st, 2023" at
      ``/data/attributes/timeframe/start``, with a segment filter or without.
    - ``deleted_segment_ids``: deleted segments: not listed, 404 by id, left out of every report
      (a filter naming only them answers 200 with ``results: []``); still in the ground truth.
    - ``leave_out``: :class:`LeaveOut` rules that drop segments from matching report answers.
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
    clock_skew_seconds: float = 0.0
    data_floor: date = FIRST_DATA_DAY
    deleted_segment_ids: list[str] = field(default_factory=list)
    leave_out: list[LeaveOut] = field(default_factory=list)

    @property
    def alignment(self) -> Alignment:
        """The bucket alignment of series answers."""
        return Alignment(self.week_alignment, self.month_alignment)

    def model_key(self) -> tuple[object, ...]:
        """The fields the synthetic history depends on (a change means a rebuild).

        ``timezone`` is not one: a timezone change keeps the history (``Account.set_timezone``).
        """
        return (self.segment_count, self.seed, self.now)
