"""Typed settings read from the tap's config, with the checks a JSON schema cannot express.

singer-sdk validates types, enums and unknown keys against the config schema in ``tap.py``;
this module adds what needs code (dates, timezones, URLs, cross-key rules) and turns the raw
config into values the streams can use without re-parsing.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_klaviyo_segments.planning import FIRST_DATA_DAY, INTERVALS, local_midnight

STATISTICS = ("total_members", "members_added", "members_removed", "net_members_changed")

#: Klaviyo's relative timeframe keys (OpenAPI enum of ``timeframe.key``).
TIMEFRAME_KEYS = (
    "last_12_months",
    "last_30_days",
    "last_365_days",
    "last_3_months",
    "last_7_days",
    "last_90_days",
    "last_month",
    "last_week",
    "last_year",
    "this_month",
    "this_week",
    "this_year",
    "today",
    "yesterday",
)

#: How report calls may ask for more than 100 segments: the first is the default.
WHOLE_ACCOUNT_MODES = ("auto", "never")

DEFAULT_API_URL = "https://a.klaviyo.com"
DEFAULT_REVISION = "2026-10-15"

#: Klaviyo segment ids are short alphanumeric strings; anything else would break the filter text.
_SEGMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.pre)?$")


class SettingsError(ValueError):
    """Config values that cannot be used; each message names the key and what it accepts."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


@dataclass(frozen=True)
class Settings:
    """The config as the streams use it. Dates are naive local wall-clock times."""

    timezone: ZoneInfo
    start: datetime
    end: datetime | None
    segment_ids: tuple[str, ...] | None
    include_inactive_segments: bool
    statistics: tuple[str, ...]
    series_intervals: tuple[str, ...]
    values_timeframes: tuple[str, ...]
    lookback: timedelta
    revision: str
    api_url: str
    report_calls_per_minute: float
    report_calls_per_second: float
    report_calls_per_day: int
    max_retry_wait_seconds: float
    request_timeout: float
    max_retries: int
    retry_initial_wait_seconds: float
    #: "auto" (one unfiltered call where batches of 100 would need several) or "never".
    whole_account_calls: str

    def local_now(self, now_utc: datetime) -> datetime:
        """``now_utc`` as naive wall-clock time in the account timezone."""
        return now_utc.astimezone(self.timezone).replace(tzinfo=None, microsecond=0)

    def to_klaviyo_time(self, local: datetime) -> str:
        """A wall-clock time as Klaviyo wants it: ISO 8601 with the account's offset."""
        return local.replace(tzinfo=self.timezone).isoformat()


def parse_settings(config: Mapping[str, Any], schema: Mapping[str, Any]) -> Settings:
    """Build :class:`Settings` from a config, collecting every problem before failing.

    ``schema`` is the tap's config schema, the one place defaults and numeric bounds are written
    (passed in because that schema is built from this module's constants). A key set to null
    means "use the default" (the schema allows null for optional keys).
    """
    properties: Mapping[str, Any] = schema.get("properties", {})
    config = {key: value for key, value in config.items() if value is not None}

    def get(key: str) -> Any:
        return config.get(key, properties.get(key, {}).get("default"))

    errors: list[str] = []
    _check_api_key(config.get("api_key"), errors)
    tz = _parse_timezone(get("account_timezone"), errors)
    start = _parse_day_or_time("start_date", get("start_date"), errors, end=False)
    end = _parse_day_or_time("end_date", get("end_date"), errors, end=True)
    if start is None:
        start = FIRST_DATA_DAY
    if end is not None and end <= FIRST_DATA_DAY:
        errors.append(
            f"end_date ({config.get('end_date')}) is before 2023-06-01, when Klaviyo's segment "
            "data begins, so the run would report nothing: set end_date to a later day than "
            "start_date, or leave it out to report up to now"
        )
    elif end is not None and end <= start:
        errors.append(
            f"start_date ({config.get('start_date') or start.date().isoformat()}) must be before "
            f"end_date ({config.get('end_date')}); Klaviyo has no segment data before 2023-06-01"
        )
    segment_ids = _parse_segment_ids(get("segment_ids"), errors)
    api_url = _parse_api_url(get("api_url"), errors)
    revision = str(get("revision"))
    if not _REVISION.match(revision):
        errors.append(
            f"revision must look like YYYY-MM-DD (e.g. {DEFAULT_REVISION}), not {revision!r}"
        )
    statistics = _parse_choices("statistics", get("statistics"), STATISTICS, errors)
    intervals = _parse_choices("series_intervals", get("series_intervals"), INTERVALS, errors)
    timeframes = _parse_choices(
        "values_timeframes", get("values_timeframes"), TIMEFRAME_KEYS, errors
    )
    whole_account = str(get("whole_account_calls"))
    if whole_account not in WHOLE_ACCOUNT_MODES:
        errors.append(
            f"whole_account_calls must be one of {', '.join(WHOLE_ACCOUNT_MODES)}, "
            f"not {whole_account!r}"
        )
    numbers = {
        key: _parse_number(key, get(key), properties.get(key, {}), errors) for key in _NUMBER_KEYS
    }
    if errors:
        raise SettingsError(errors)
    return Settings(
        timezone=tz or ZoneInfo("UTC"),
        start=start,
        end=end,
        segment_ids=segment_ids,
        include_inactive_segments=bool(get("include_inactive_segments")),
        statistics=statistics,
        series_intervals=intervals,
        values_timeframes=timeframes,
        lookback=timedelta(days=int(numbers["lookback_days"])),
        revision=revision,
        api_url=api_url,
        report_calls_per_minute=float(numbers["report_calls_per_minute"]),
        report_calls_per_second=float(numbers["report_calls_per_second"]),
        report_calls_per_day=int(numbers["report_calls_per_day"]),
        max_retry_wait_seconds=float(numbers["max_retry_wait_seconds"]),
        request_timeout=float(numbers["request_timeout"]),
        max_retries=int(numbers["max_retries"]),
        retry_initial_wait_seconds=float(numbers["retry_initial_wait_seconds"]),
        whole_account_calls=whole_account,
    )


#: The numeric settings. Each may arrive as a JSON number or, from ``--config ENV`` (singer-sdk
#: passes a number setting's environment value on as text), as a numeric string.
_NUMBER_KEYS = (
    "lookback_days",
    "report_calls_per_minute",
    "report_calls_per_second",
    "report_calls_per_day",
    "max_retry_wait_seconds",
    "request_timeout",
    "max_retries",
    "retry_initial_wait_seconds",
)


def _parse_number(key: str, value: Any, spec: Mapping[str, Any], errors: list[str]) -> float | int:
    """A number or numeric string, checked against the schema's type and bounds for ``key``.

    The schema also lets strings through (an environment value is text), so the bounds a JSON
    schema checks only on numbers are checked here for both forms, from the same schema.
    """
    whole = "integer" in _types(spec)
    kind = "a whole number" if whole else "a number"
    bounds = []
    if "minimum" in spec:
        bounds.append(f">= {spec['minimum']}")
    if "exclusiveMinimum" in spec:
        bounds.append(f"> {spec['exclusiveMinimum']}")
    expected = f"{kind} {' and '.join(bounds)}".strip()
    number: float | int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float | Decimal):  # singer-sdk reads JSON fractions as Decimal
        number = value if isinstance(value, int) else float(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip()) if whole else float(value.strip())
        except ValueError:
            number = None
    if number is not None and not math.isfinite(number):
        number = None
    if number is None or (whole and not float(number).is_integer()):
        errors.append(f"{key} must be {expected}, not {value!r}")
        return 0
    if ("minimum" in spec and number < spec["minimum"]) or (
        "exclusiveMinimum" in spec and number <= spec["exclusiveMinimum"]
    ):
        errors.append(f"{key} must be {expected}, not {value!r}")
        return 0
    return int(number) if whole else number


def _types(spec: Mapping[str, Any]) -> list[str]:
    kinds = spec.get("type", [])
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _check_api_key(value: Any, errors: list[str]) -> None:
    """Reject what would break the header (and make requests quote the key in its error).

    Header values go out as Latin-1, and Klaviyo's keys are ASCII: anything else would end in a
    UnicodeEncodeError deep inside http.client. The message never quotes the key.
    """
    if not isinstance(value, str):
        return
    if any(c.isspace() or not c.isprintable() for c in value):
        errors.append(
            "api_key must be the key alone (pk_...), without spaces, line breaks or control "
            "characters; a trailing newline from a secrets file is the usual cause"
        )
    elif not value.isascii():
        position = next(i for i, c in enumerate(value) if not c.isascii()) + 1
        errors.append(
            f"api_key holds a character an HTTP header cannot carry (character {position} is "
            "not ASCII); Klaviyo keys are pk_ and letters and digits: copy the key again"
        )


def _parse_timezone(value: Any, errors: list[str]) -> ZoneInfo | None:
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(
            f"account_timezone must be an IANA timezone name such as 'UTC' or "
            f"'America/New_York', not {value!r}"
        )
        return None


def _parse_day_or_time(key: str, value: Any, errors: list[str], *, end: bool) -> datetime | None:
    """Parse a date or date-time into naive local wall-clock time.

    A bare date as ``end_date`` means "through that day", so it becomes the next midnight
    (the data end is exclusive). An offset on a date-time is dropped, as Klaviyo drops it.
    """
    if value is None:
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return local_midnight(day + timedelta(days=1) if end else day)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        errors.append(
            f"{key} must be a date (2024-01-31) or date-time (2024-01-31T00:00:00Z), not {value!r}"
        )
        return None
    return moment.replace(tzinfo=None)


def _parse_segment_ids(value: Any, errors: list[str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    bad = [item for item in value if not isinstance(item, str) or not _SEGMENT_ID.match(item)]
    if bad:
        errors.append(
            f"segment_ids must be Klaviyo segment ids (letters, digits, '_' or '-'); "
            f"these are not: {', '.join(repr(item) for item in bad[:5])}"
        )
        return None
    if not value:
        errors.append(
            "segment_ids must list at least one id, or be left out to report on all segments"
        )
        return None
    repeated = [sid for sid, count in Counter(value).items() if count > 1]
    if repeated:
        shown = ", ".join(repr(sid) for sid in repeated[:10])
        more = f" and {len(repeated) - 10} more" if len(repeated) > 10 else ""
        errors.append(
            f"segment_ids has non-unique elements: {shown}{more} listed more than once; "
            "list each id once"
        )
        return None
    return tuple(value)


def _parse_choices(
    key: str, value: Any, allowed: Sequence[str], errors: list[str]
) -> tuple[str, ...]:
    if value is None:
        return tuple(allowed)
    unknown = [item for item in value if item not in allowed]
    if unknown or not value:
        errors.append(
            f"{key} must be a non-empty list of {', '.join(allowed)}; "
            f"got {', '.join(repr(item) for item in unknown) or 'an empty list'}"
        )
        return ()
    return tuple(dict.fromkeys(value))


def _parse_api_url(value: Any, errors: list[str]) -> str:
    """Allow plain http only to loopback, so the key never crosses a network in clear text."""
    url = str(value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        errors.append(f"api_url must be an https:// URL such as {DEFAULT_API_URL}, not {url!r}")
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        errors.append(
            f"api_url must use https:// (plain http is only allowed to 127.0.0.1 or localhost, "
            f"for a local stand-in), not {url!r}"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def utc_now() -> datetime:
    """The current time, aware, in UTC (the tap's clock; tests replace it)."""
    return datetime.now(timezone.utc)
