"""Every config key, declared once: the table that yields the JSON schema and the typed Settings.

Each :class:`Setting` says what the schema says of a key (type, title, description, default,
bounds, choices, secret) and which reader turns its value into a field of :class:`Settings`.
singer-sdk validates the config against :func:`config_schema` (types, enums, bounds, unknown
keys); :func:`check_config` then rewords its errors and reads the values, with the checks a JSON
schema cannot make (dates, timezones, URLs, ids, numbers that arrive as text, start before end).
The readers and every line a user sees about config are in ``config_checks.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import EMIT_ACTIVATE_VERSION_CONFIG

from tap_klaviyo_segments import config_checks as checks
from tap_klaviyo_segments.planning import FIRST_DATA_DAY, INTERVALS

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


class SettingsError(ValueError):
    """Config values that cannot be used; each message names the key and what it accepts."""

    def __init__(self, errors: list[str]) -> None:
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


#: Reads a key's value (already past the schema) into its Settings field, or raises ValueError
#: with the one line a user sees.
Reader = Callable[["Setting", Any], Any]


@dataclass(frozen=True)
class Setting:
    """One config key: what the JSON schema says of it, and how it becomes a Settings field."""

    key: str
    #: The JSON type: "string", "boolean", "integer", "number" (also read from text) or "array"
    #: (a non-empty list of strings).
    kind: str
    title: str
    description: str
    read: Reader
    default: Any = None
    minimum: float | None = None
    exclusive_minimum: float | None = None
    #: The values allowed (for a list: of each item).
    choices: tuple[str, ...] = ()
    #: Required, non-empty, and masked wherever it could be shown (the api key).
    secret: bool = False
    #: The Settings field, when not named as the key; "" for a key checked but not kept.
    field: str | None = None

    @property
    def target(self) -> str:
        """The name of the Settings field this key fills ("" for none)."""
        return self.key if self.field is None else self.field

    def json_schema(self) -> dict[str, Any]:
        """The key's JSON schema, as singer-sdk's typing helpers write it."""
        if self.kind == "array":
            return _string_list_schema(self)
        bounds: dict[str, Any] = {}
        if self.minimum is not None:
            bounds["minimum"] = self.minimum
        if self.exclusive_minimum is not None:
            bounds["exclusive_minimum"] = self.exclusive_minimum
        if self.choices:
            bounds["allowed_values"] = list(self.choices)
        if self.secret:
            bounds["min_length"] = 1
        prop = th.Property(
            self.key,
            _SCALAR_TYPES[self.kind](**bounds),
            title=self.title,
            required=self.secret,
            secret=self.secret,
            default=self.default,
            description=self.description,
        )
        spec: dict[str, Any] = prop.to_dict()[self.key]
        if self.kind == "number":
            # singer-sdk passes a number setting's environment value (--config ENV) on as text,
            # and Meltano does for `kind: string`: the reader takes numeric text, with these
            # bounds, in both forms.
            spec["type"] = ["number", "string", "null"]
        return spec


_SCALAR_TYPES: dict[str, Callable[..., th.JSONTypeHelper[Any]]] = {
    "string": th.StringType,
    "boolean": th.BooleanType,
    "integer": th.IntegerType,
    "number": th.NumberType,
}


def _string_list_schema(setting: Setting) -> dict[str, Any]:
    """A non-empty list of strings, each from ``choices`` if there are any.

    A free-form list (ids) has no ``uniqueItems``: the schema's message would quote the whole
    list (50 KB for 5,000 ids), while the reader names just the repeated ids.
    """
    items: dict[str, Any] = {"type": "string"}
    schema: dict[str, Any] = {"type": "array", "items": items, "minItems": 1}
    if setting.choices:
        items["enum"] = list(setting.choices)
        schema["uniqueItems"] = True
    schema.update(title=setting.title, description=setting.description)
    if setting.default is not None:
        schema["default"] = list(setting.default)
    return schema


# ----- the table: every key the tap takes, in the order --about and the plugin files list them --

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "api_key",
        "string",
        "API Key",
        "Klaviyo private API key with the segments:read scope.",
        checks.api_key,
        secret=True,
        field="",
    ),
    Setting(
        "start_date",
        "string",
        "Start Date",
        "First day to report (date or date-time, account time). "
        "Klaviyo has no data before 2023-06-01; earlier values are raised to it.",
        checks.first_moment,
        default=FIRST_DATA_DAY.date().isoformat(),
        field="start",
    ),
    Setting(
        "end_date",
        "string",
        "End Date",
        "Last day to report (a date includes that whole day). Default: now.",
        checks.end_moment,
        field="end",
    ),
    Setting(
        "include_inactive_segments",
        "boolean",
        "Include Inactive Segments",
        "Without segment_ids, also report inactive segments.",
        checks.flag,
        default=False,
    ),
    Setting(
        "lookback_days",
        "integer",
        "Lookback Days",
        "Recent days re-read on each run, since Klaviyo revises them.",
        checks.days,
        default=2,
        minimum=0,
        field="lookback",
    ),
    Setting(
        "account_timezone",
        "string",
        "Account Timezone",
        "The Klaviyo account's IANA timezone; Klaviyo reads timeframes in it.",
        checks.timezone_name,
        default="UTC",
        field="timezone",
    ),
    Setting(
        "revision",
        "string",
        "API Revision",
        "Klaviyo API revision header.",
        checks.revision,
        default=DEFAULT_REVISION,
    ),
    Setting(
        "whole_account_calls",
        "string",
        "Whole-Account Calls",
        "auto: where more than 100 segments need the same report, ask once without a segment "
        "filter (the whole account) and keep the wanted segments; never: always ask in "
        "filtered batches of 100.",
        checks.text,
        default=WHOLE_ACCOUNT_MODES[0],
        choices=WHOLE_ACCOUNT_MODES,
    ),
    Setting(
        "api_url",
        "string",
        "API URL",
        "Base URL of the Klaviyo API (https, or http to a loopback stand-in).",
        checks.api_url,
        default=DEFAULT_API_URL,
    ),
    Setting(
        "report_calls_per_minute",
        "number",
        "Report Calls per Minute",
        "Pace of report calls (Klaviyo's steady limit is 2 a minute).",
        checks.number,
        default=2,
        exclusive_minimum=0,
    ),
    Setting(
        "report_calls_per_second",
        "number",
        "Report Calls per Second",
        "Burst cap of report calls (Klaviyo's is 1 a second).",
        checks.number,
        default=1,
        exclusive_minimum=0,
    ),
    Setting(
        "report_calls_per_day",
        "integer",
        "Daily Report Call Budget",
        "Most report calls in any 24 hours, across the runs that share STATE; "
        "then a run stops cleanly with state saved.",
        checks.number,
        default=225,
        minimum=0,
    ),
    Setting(
        "max_retry_wait_seconds",
        "number",
        "Longest Retry Wait (s)",
        "Longest Retry-After the tap waits; a longer one stops the run cleanly.",
        checks.number,
        default=300,
        minimum=0,
    ),
    Setting(
        "request_timeout",
        "number",
        "Request Timeout (s)",
        "Seconds per HTTP request.",
        checks.number,
        default=60,
        exclusive_minimum=0,
    ),
    Setting(
        "max_retries",
        "integer",
        "Max Retries",
        "Retries of a 5xx, timeout, dropped connection, malformed body or 429.",
        checks.number,
        default=5,
        minimum=0,
    ),
    Setting(
        "retry_initial_wait_seconds",
        "number",
        "First Retry Wait (s)",
        "First backoff wait; it doubles on each retry (429s wait Retry-After).",
        checks.number,
        default=2,
        minimum=0,
    ),
    Setting(
        "segment_ids",
        "array",
        "Segment IDs",
        "Segments to report on. Default: all active segments.",
        checks.segment_ids,
    ),
    Setting(
        "statistics",
        "array",
        "Statistics",
        "Kept for old configs: every statistic is always read (it costs nothing), so a row "
        "never holds null for a loaded value.",
        checks.choice_list,
        default=STATISTICS,
        choices=STATISTICS,
    ),
    Setting(
        "series_intervals",
        "array",
        "Series Intervals",
        "Intervals of segment_series (hourly, daily, weekly, monthly).",
        checks.choice_list,
        default=("daily",),
        choices=INTERVALS,
    ),
    Setting(
        "values_timeframes",
        "array",
        "Values Timeframes",
        "Klaviyo timeframe keys of segment_values (last_30_days, last_7_days, this_month, ...).",
        checks.choice_list,
        default=("last_30_days",),
        choices=TIMEFRAME_KEYS,
    ),
)


def config_schema() -> dict[str, Any]:
    """The tap's config JSON schema, from :data:`SETTINGS` (``--about`` and the plugin files)."""
    envelope = th.PropertiesList().to_dict()  # "$schema", as singer-sdk writes it
    properties = {setting.key: setting.json_schema() for setting in SETTINGS}
    # --about advertises activate-version (a singer-sdk capability of every tap), whose setting
    # singer-sdk 0.54 does not add to the schema, so `additionalProperties: false` rejected it.
    properties.update(copy.deepcopy(EMIT_ACTIVATE_VERSION_CONFIG["properties"]))
    return {
        "type": "object",
        "properties": properties,
        "required": [setting.key for setting in SETTINGS if setting.secret],
        "$schema": envelope["$schema"],
        "additionalProperties": False,
    }


def parse_settings(config: Mapping[str, Any]) -> Settings:
    """Read a config the schema accepted into :class:`Settings`, naming every problem at once.

    A key set to null means "use the default" (the schema allows null for optional keys).
    """
    given = {key: value for key, value in config.items() if value is not None}
    fields: dict[str, Any] = {}
    errors: list[str] = []
    for setting in SETTINGS:
        try:
            value = setting.read(setting, given.get(setting.key, setting.default))
        except ValueError as problem:
            errors.append(str(problem))
            continue
        if setting.target:
            fields[setting.target] = value
    errors += checks.date_order_problems(
        fields.get("start") or FIRST_DATA_DAY, fields.get("end"), given
    )
    if errors:
        raise SettingsError(errors)
    return Settings(**fields)


@dataclass(frozen=True)
class CheckedConfig:
    """What :func:`check_config` found: the problems (one line each), or the typed settings."""

    problems: list[str]
    settings: Settings | None = None
    #: Lines about a usable config that reports less than a user may expect.
    warnings: list[str] = field(default_factory=list)

    def usable(self) -> Settings:
        """The settings, or the problems as a :class:`SettingsError`."""
        if self.settings is None:
            raise SettingsError(self.problems)
        return self.settings


def check_config(
    config: Mapping[str, Any], schema_errors: Sequence[str], accepted: Sequence[str], now: datetime
) -> CheckedConfig:
    """The config checked once: the schema's errors reworded, then the values read.

    ``schema_errors`` are singer-sdk's, against :func:`config_schema`; ``accepted`` is every key
    the tap takes (its own and singer-sdk's built-in ones); ``now`` is the tap's clock, in UTC.
    """
    problems = checks.schema_problems(schema_errors, config, accepted)
    if problems:
        return CheckedConfig(problems)
    try:
        settings = parse_settings(config)
    except SettingsError as exc:
        return CheckedConfig(exc.errors)
    start_given = config.get("start_date")
    warnings = checks.start_date_warnings(start_given, settings.start, settings.local_now(now))
    return CheckedConfig([], settings, warnings)


def utc_now() -> datetime:
    """The current time, aware, in UTC (the tap's clock; tests replace it)."""
    return datetime.now(timezone.utc)
