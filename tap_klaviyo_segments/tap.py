"""TapKlaviyoSegments: the config it accepts and the streams it offers."""

from __future__ import annotations

import copy
import difflib
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import IO, Any, ClassVar

import click
from singer_sdk import Stream
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    EMIT_ACTIVATE_VERSION_CONFIG,
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)
from typing_extensions import override

from tap_klaviyo_segments import plan_command
from tap_klaviyo_segments.cli import (
    FAILED_STREAM,
    checked_state_file,
    interrupted,
    one_failure_line,
)
from tap_klaviyo_segments.planning import FIRST_DATA_DAY, INTERVALS
from tap_klaviyo_segments.redaction import cut, redact, register_secret
from tap_klaviyo_segments.run import ReportRun
from tap_klaviyo_segments.sdk_seams import TapSeams
from tap_klaviyo_segments.series import SegmentSeriesStream
from tap_klaviyo_segments.settings import (
    DEFAULT_API_URL,
    DEFAULT_REVISION,
    STATISTICS,
    TIMEFRAME_KEYS,
    WHOLE_ACCOUNT_MODES,
    Settings,
    SettingsError,
    parse_settings,
    utc_now,
)
from tap_klaviyo_segments.singer_output import SingerWriter
from tap_klaviyo_segments.state import RunState, carry_top_level
from tap_klaviyo_segments.state_checks import check_state
from tap_klaviyo_segments.streams import SegmentsStream, SegmentValuesStream


def _environment_integer_problems(schema: dict[str, Any], prefix: str) -> list[str]:
    """Whole-number settings in the environment that are not whole numbers, one message each.

    singer-sdk turns an integer setting's environment value into an int itself, before the
    tap's checks run, and a value such as ``abc`` would end in its traceback instead.
    """
    problems = []
    for key, spec in schema.get("properties", {}).items():
        kinds = spec.get("type", [])
        name = prefix + key.upper().replace("-", "_")
        value = os.environ.get(name)
        if value is None or "integer" not in ([kinds] if isinstance(kinds, str) else kinds):
            continue
        try:
            int(value)
        except ValueError:
            problems.append(
                f"{name} ({key}) must be a whole number, not {cut(redact(repr(value)), 40)}"
            )
    return problems


def _string_list(
    title: str, description: str, *, choices: tuple[str, ...] = (), default: Any = None
) -> dict[str, Any]:
    """A JSON schema for a non-empty list of strings, optionally from ``choices``.

    A free-form list (ids) has no ``uniqueItems``: the schema's message would quote the whole
    list (50 KB for 5,000 ids), while settings.py names just the repeated ids.
    """
    items: dict[str, Any] = {"type": "string"}
    schema: dict[str, Any] = {"type": "array", "items": items, "minItems": 1}
    if choices:
        items["enum"] = list(choices)
        schema["uniqueItems"] = True
    schema["title"] = title
    schema["description"] = description
    if default is not None:
        schema["default"] = default
    return schema


def _config_schema() -> dict[str, Any]:
    properties = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType(min_length=1),
            title="API Key",
            required=True,
            secret=True,
            description="Klaviyo private API key with the segments:read scope.",
        ),
        th.Property(
            "start_date",
            th.StringType,
            title="Start Date",
            default=FIRST_DATA_DAY.date().isoformat(),
            description="First day to report (date or date-time, account time). "
            "Klaviyo has no data before 2023-06-01; earlier values are raised to it.",
        ),
        th.Property(
            "end_date",
            th.StringType,
            title="End Date",
            description="Last day to report (a date includes that whole day). Default: now.",
        ),
        th.Property(
            "include_inactive_segments",
            th.BooleanType,
            title="Include Inactive Segments",
            default=False,
            description="Without segment_ids, also report inactive segments.",
        ),
        th.Property(
            "lookback_days",
            th.IntegerType(minimum=0),
            title="Lookback Days",
            default=2,
            description="Recent days re-read on each run, since Klaviyo revises them.",
        ),
        th.Property(
            "account_timezone",
            th.StringType,
            title="Account Timezone",
            default="UTC",
            description="The Klaviyo account's IANA timezone; Klaviyo reads timeframes in it.",
        ),
        th.Property(
            "revision",
            th.StringType,
            title="API Revision",
            default=DEFAULT_REVISION,
            description="Klaviyo API revision header.",
        ),
        th.Property(
            "whole_account_calls",
            th.StringType(allowed_values=list(WHOLE_ACCOUNT_MODES)),
            title="Whole-Account Calls",
            default=WHOLE_ACCOUNT_MODES[0],
            description="auto: where more than 100 segments need the same report, ask once "
            "without a segment filter (the whole account) and keep the wanted segments; never: "
            "always ask in filtered batches of 100.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            title="API URL",
            default=DEFAULT_API_URL,
            description="Base URL of the Klaviyo API (https, or http to a loopback stand-in).",
        ),
        th.Property(
            "report_calls_per_minute",
            th.NumberType(exclusive_minimum=0),
            title="Report Calls per Minute",
            default=2,
            description="Pace of report calls (Klaviyo's steady limit is 2 a minute).",
        ),
        th.Property(
            "report_calls_per_second",
            th.NumberType(exclusive_minimum=0),
            title="Report Calls per Second",
            default=1,
            description="Burst cap of report calls (Klaviyo's is 1 a second).",
        ),
        th.Property(
            "report_calls_per_day",
            th.IntegerType(minimum=0),
            title="Daily Report Call Budget",
            default=225,
            description="Most report calls in any 24 hours, across the runs that share STATE; "
            "then a run stops cleanly with state saved.",
        ),
        th.Property(
            "max_retry_wait_seconds",
            th.NumberType(minimum=0),
            title="Longest Retry Wait (s)",
            default=300,
            description="Longest Retry-After the tap waits; a longer one stops the run cleanly.",
        ),
        th.Property(
            "request_timeout",
            th.NumberType(exclusive_minimum=0),
            title="Request Timeout (s)",
            default=60,
            description="Seconds per HTTP request.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0),
            title="Max Retries",
            default=5,
            description="Retries of a 5xx, timeout, dropped connection, malformed body or 429.",
        ),
        th.Property(
            "retry_initial_wait_seconds",
            th.NumberType(minimum=0),
            title="First Retry Wait (s)",
            default=2,
            description="First backoff wait; it doubles on each retry (429s wait Retry-After).",
        ),
    ).to_dict()
    properties["properties"].update(
        segment_ids=_string_list(
            "Segment IDs", "Segments to report on. Default: all active segments."
        ),
        statistics=_string_list(
            "Statistics",
            "Statistics to extract (total_members, members_added, members_removed, "
            "net_members_changed).",
            choices=STATISTICS,
            default=list(STATISTICS),
        ),
        series_intervals=_string_list(
            "Series Intervals",
            "Intervals of segment_series (hourly, daily, weekly, monthly).",
            choices=INTERVALS,
            default=["daily"],
        ),
        values_timeframes=_string_list(
            "Values Timeframes",
            "Klaviyo timeframe keys of segment_values (last_30_days, last_7_days, this_month, "
            "...).",
            choices=TIMEFRAME_KEYS,
            default=["last_30_days"],
        ),
    )
    for spec in properties["properties"].values():
        if "number" in spec.get("type", []):
            # singer-sdk passes a number setting's environment value (--config ENV) on as text,
            # and Meltano does for `kind: string`: parse_settings reads numeric strings, with the
            # bounds written here, for both forms.
            spec["type"] = ["number", "string", "null"]
    # --about advertises activate-version (a singer-sdk capability of every tap), whose setting
    # singer-sdk 0.54 does not add to the schema, so `additionalProperties: false` rejected it.
    properties["properties"].update(copy.deepcopy(EMIT_ACTIVATE_VERSION_CONFIG["properties"]))
    properties["additionalProperties"] = False
    return properties


def _checked_config(tap: TapKlaviyoSegments, sdk_check: Any, *, raise_errors: bool) -> list[str]:
    """The SDK's schema errors made clearer, then the checks a JSON schema cannot make."""
    schema = tap.config_jsonschema
    try:
        errors = _clearer(tap, sdk_check(raise_errors=raise_errors))
    except ConfigValidationError as exc:
        raise ConfigValidationError(
            "Config validation failed", errors=_clearer(tap, exc.errors), schema=schema
        ) from None
    if errors:
        return errors
    try:
        settings = parse_settings(tap.config, schema)
    except SettingsError as exc:
        if raise_errors:
            raise ConfigValidationError(
                "Config validation failed", errors=exc.errors, schema=schema
            ) from None
        tap.logger.warning("Config validation failed: %s", exc)
        return exc.errors
    if settings.start < FIRST_DATA_DAY:
        tap.logger.warning(
            "start_date %s is before 2023-06-01, when Klaviyo's segment data begins; "
            "reporting from 2023-06-01",
            tap.config.get("start_date"),
        )
    if settings.start > settings.local_now(tap.now_utc()):
        tap.logger.warning(
            "start_date %s is in the future (account time): there is nothing to report "
            "until then, so this run reports no segment_series rows",
            tap.config.get("start_date"),
        )
    return errors


def _clearer(tap: TapKlaviyoSegments, errors: list[str]) -> list[str]:
    """Schema errors without the key's value, and unknown keys with the ones accepted."""
    own = list(_config_schema()["properties"])
    with_builtins = copy.deepcopy(tap.config_jsonschema)
    tap.append_builtin_config(with_builtins)
    known = [*own, *(key for key in with_builtins.get("properties", {}) if key not in own)]
    unknown = [key for key in tap.config if key not in known]
    clearer = []
    for error in errors:
        if error.startswith("Additional properties are not allowed") and unknown:
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                clearer.append(
                    f"config key {key!r} is unknown{hint}; accepted keys: {', '.join(own)} "
                    f"(and singer-sdk's {', '.join(known[len(own) :])})"
                )
        else:
            clearer.append(redact(error))
    return clearer


class TapKlaviyoSegments(TapSeams):
    """Singer tap for Klaviyo segment growth: segments, segment_values, segment_series."""

    name = "tap-klaviyo-segments"
    config_jsonschema = _config_schema()

    #: Written out, so that the Hub file and meltano.yml (which a test keeps equal to
    #: ``--about``) hold on every singer-sdk the tap allows. No BATCH: a bookmark moves after its
    #: window's RECORDs are written, and batch files would break that promise.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    #: singer-sdk's msgspec message writer instead of its simplejson one: the same messages at a
    #: fraction of the CPU per record (see singer_output.py and BENCHMARKS.md).
    message_writer_class = SingerWriter

    #: The tap's clock; tests replace it to freeze "now".
    now_utc: Callable[[], datetime] = staticmethod(utc_now)

    @override
    def check_config(self, sdk_check: Any, *, raise_errors: bool) -> list[str]:
        """The schema's checks, then the ones a schema cannot make (dates, timezone, URL)."""
        register_secret(self.config.get("api_key"))
        return _checked_config(self, sdk_check, raise_errors=raise_errors)

    @cached_property
    def settings(self) -> Settings:
        """The validated config, typed."""
        return parse_settings(self.config, self.config_jsonschema)

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        """Check an incoming STATE before the SDK merges it (see :func:`check_state`)."""
        try:
            today = self.settings.local_now(self.now_utc()).date()
        except SettingsError:  # discovery runs unvalidated; its state is empty anyway
            today = utc_now().date()
        checked = check_state(state, streams=_SYNC_ORDER, today=today, logger=self.logger)
        super().load_state(checked)
        carry_top_level(checked, self.state)  # type: ignore[arg-type]

    @cached_property
    def report_run(self) -> ReportRun:
        """What one sync shares between the report streams (built on first use)."""
        settings = self.settings
        segments = self.streams[SegmentsStream.name]
        assert isinstance(segments, SegmentsStream)
        return ReportRun(
            settings=settings,
            state=RunState(
                self.state,  # type: ignore[arg-type]  # singer-sdk's TypedDict of bookmarks
                write=lambda state: self.state_writer.write_state(state),  # type: ignore[arg-type]
                timezone=settings.timezone,
                logger=self.logger,
            ),
            clock=lambda: self.now_utc(),
            list_segments=segments.list_segments,
            logger=self.logger,
        )

    @classmethod
    @override
    def invoke(cls, *, state: IO[str] | None = None, **kwargs: Any) -> None:
        """Run the tap; a failure ends in one ERROR line with its cause and fix, exit code 1."""
        state = checked_state_file(state)
        config_input = kwargs.get("config")
        if getattr(config_input, "parse_env", False):
            problems = _environment_integer_problems(cls.config_jsonschema, _ENV_PREFIX)
            for problem in problems:
                cls.logger.error("%s", problem)
            if problems:
                raise click.exceptions.Exit(1)
        with one_failure_line(cls.logger):
            super().invoke(state=state, **kwargs)

    @override
    def exit_code_on_signal(self, signum: int) -> int | None:
        """Finish a half-written line first; then 128 + the signal, after the final STATE."""
        writer = self.message_writer
        if isinstance(writer, SingerWriter) and writer.writing:
            # Half a line is out: finish it first (the writer calls this back right after).
            writer.deferred = lambda: self.terminate(signum)
            return None
        return interrupted(signum, self.logger)

    @override
    def discover_streams(self) -> list[Stream]:
        """Segments first; values before series, so a backfill never starves today's values."""
        run = lambda: self.report_run  # noqa: E731 - built on first use, after config and state
        streams: list[Stream] = [
            SegmentsStream(self, run),
            SegmentValuesStream(self, run),
            SegmentSeriesStream(self, run),
        ]
        for stream in streams:
            # By name: singer-sdk 0.55 hands streams a LoggerAdapter, which takes no filters.
            logging.getLogger(stream.logger.name).addFilter(FAILED_STREAM)
        return streams

    @property
    @override
    def streams(self) -> dict[str, Stream]:
        """The streams in sync order, segments, segment_values, segment_series.

        The SDK's ``load_streams`` (final) sorts them by name; ``sync_all`` and the catalog
        follow this mapping, so it is reordered here, after the SDK built and cached it.
        """
        loaded = super().streams
        return {name: loaded[name] for name in _SYNC_ORDER if name in loaded} | loaded


#: The sync order (see ``TapKlaviyoSegments.streams``).
_SYNC_ORDER = (SegmentsStream.name, SegmentValuesStream.name, SegmentSeriesStream.name)

#: singer-sdk's prefix of the tap's settings in the environment.
_ENV_PREFIX = "TAP_KLAVIYO_SEGMENTS_"


def plan_main(argv: Sequence[str] | None = None) -> int:
    """``tap-klaviyo-segments-plan``: the call plan of this tap (see plan_command.py)."""
    return plan_command.main(argv, TapKlaviyoSegments)


if __name__ == "__main__":
    TapKlaviyoSegments.cli()
