"""TapKlaviyoSegments: the config it accepts and the streams it offers."""

from __future__ import annotations

import difflib
import io
import json
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import IO, Any, ClassVar

import click
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities

from tap_klaviyo_segments import ledger
from tap_klaviyo_segments.bookmarks import check_state, not_an_object
from tap_klaviyo_segments.pacing import ReportGate
from tap_klaviyo_segments.planning import FIRST_DATA_DAY, INTERVALS
from tap_klaviyo_segments.redaction import redact, register_secret
from tap_klaviyo_segments.settings import (
    DEFAULT_API_URL,
    DEFAULT_REVISION,
    STATISTICS,
    TIMEFRAME_KEYS,
    Settings,
    SettingsError,
    parse_settings,
    utc_now,
)
from tap_klaviyo_segments.singer_output import SingerWriter
from tap_klaviyo_segments.streams import SegmentSeriesStream, SegmentsStream, SegmentValuesStream


def _string_list(
    description: str, *, choices: tuple[str, ...] = (), default: Any = None
) -> dict[str, Any]:
    """A JSON schema for a non-empty list of strings, optionally from ``choices``."""
    items: dict[str, Any] = {"type": "string"}
    if choices:
        items["enum"] = list(choices)
    schema: dict[str, Any] = {
        "type": "array",
        "items": items,
        "minItems": 1,
        "uniqueItems": True,
        "description": description,
    }
    if default is not None:
        schema["default"] = default
    return schema


def _config_schema() -> dict[str, Any]:
    properties = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType(min_length=1),
            required=True,
            secret=True,
            description="Klaviyo private API key with the segments:read scope.",
        ),
        th.Property(
            "start_date",
            th.StringType,
            default=FIRST_DATA_DAY.date().isoformat(),
            description="First day to report (date or date-time, account time). "
            "Klaviyo has no data before 2023-06-01; earlier values are raised to it.",
        ),
        th.Property(
            "end_date",
            th.StringType,
            description="Last day to report (a date includes that whole day). Default: now.",
        ),
        th.Property(
            "include_inactive_segments",
            th.BooleanType,
            default=False,
            description="Without segment_ids, also report inactive segments.",
        ),
        th.Property(
            "lookback_days",
            th.IntegerType(minimum=0),
            default=2,
            description="Recent days re-read on each run, since Klaviyo revises them.",
        ),
        th.Property(
            "account_timezone",
            th.StringType,
            default="UTC",
            description="The Klaviyo account's IANA timezone; Klaviyo reads timeframes in it.",
        ),
        th.Property(
            "revision",
            th.StringType,
            default=DEFAULT_REVISION,
            description="Klaviyo API revision header.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            default=DEFAULT_API_URL,
            description="Base URL of the Klaviyo API (https, or http to a loopback stand-in).",
        ),
        th.Property(
            "report_calls_per_minute",
            th.NumberType(exclusive_minimum=0),
            default=2,
            description="Pace of report calls (Klaviyo's steady limit is 2 a minute).",
        ),
        th.Property(
            "report_calls_per_second",
            th.NumberType(exclusive_minimum=0),
            default=1,
            description="Burst cap of report calls (Klaviyo's is 1 a second).",
        ),
        th.Property(
            "report_calls_per_day",
            th.IntegerType(minimum=0),
            default=225,
            description="Most report calls one run makes; then it stops cleanly with state saved.",
        ),
        th.Property(
            "max_retry_wait_seconds",
            th.NumberType(minimum=0),
            default=300,
            description="Longest Retry-After the tap waits; a longer one stops the run cleanly.",
        ),
        th.Property(
            "request_timeout",
            th.NumberType(exclusive_minimum=0),
            default=60,
            description="Seconds per HTTP request.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0),
            default=5,
            description="Retries of a 5xx, timeout, dropped connection or 429.",
        ),
        th.Property(
            "retry_initial_wait_seconds",
            th.NumberType(minimum=0),
            default=2,
            description="First backoff wait; it doubles on each retry (429s wait Retry-After).",
        ),
    ).to_dict()
    properties["properties"].update(
        segment_ids=_string_list("Segments to report on. Default: all active segments."),
        statistics=_string_list(
            "Statistics to extract.", choices=STATISTICS, default=list(STATISTICS)
        ),
        series_intervals=_string_list(
            "Intervals of segment_series.", choices=INTERVALS, default=["daily"]
        ),
        values_timeframes=_string_list(
            "Timeframe keys of segment_values.", choices=TIMEFRAME_KEYS, default=["last_30_days"]
        ),
    )
    properties["additionalProperties"] = False
    return properties


class TapKlaviyoSegments(Tap):
    """Singer tap for Klaviyo segment growth: segments, segment_values, segment_series."""

    name = "tap-klaviyo-segments"
    config_jsonschema = _config_schema()

    #: No BATCH messages: a bookmark moves after its window's RECORDs are written, and batch
    #: files would break that promise.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        capability for capability in Tap.capabilities if capability != PluginCapabilities.BATCH
    ]

    #: singer-sdk's msgspec message writer instead of its simplejson one: the same messages at a
    #: fraction of the CPU per record (see singer_output.py and BENCHMARKS.md).
    message_writer_class = SingerWriter

    #: The tap's clock; tests replace it to freeze "now".
    now_utc: Callable[[], datetime] = staticmethod(utc_now)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Add the checks a JSON schema cannot make (dates, timezone, URL, start before end).

        Also the first place the final config (files and env merged) is known: from here on the
        api_key is masked in every log record, and no error message quotes it.
        """
        register_secret(self.config.get("api_key"))
        try:
            errors = self._clearer(super()._validate_config(raise_errors=raise_errors))
        except ConfigValidationError as exc:
            raise ConfigValidationError(
                "Config validation failed",
                errors=self._clearer(exc.errors),
                schema=self.config_jsonschema,
            ) from None
        if errors:
            return errors
        try:
            settings = parse_settings(self.config)
        except SettingsError as exc:
            if raise_errors:
                raise ConfigValidationError(
                    "Config validation failed", errors=exc.errors, schema=self.config_jsonschema
                ) from None
            self.logger.warning("Config validation failed: %s", exc)
            return exc.errors
        if settings.start < FIRST_DATA_DAY:
            self.logger.warning(
                "start_date %s is before 2023-06-01, when Klaviyo's segment data begins; "
                "reporting from 2023-06-01",
                self.config.get("start_date"),
            )
        if settings.start > settings.local_now(self.now_utc()):
            self.logger.warning(
                "start_date %s is in the future (account time): there is nothing to report "
                "until then, so this run reports no segment_series rows",
                self.config.get("start_date"),
            )
        return errors

    def _clearer(self, errors: list[str]) -> list[str]:
        """Schema errors without the key's value, and unknown keys with the ones accepted."""
        known = list(self.config_jsonschema.get("properties", {}))
        unknown = [key for key in self.config if key not in known]
        clearer = []
        for error in errors:
            if error.startswith("Additional properties are not allowed") and unknown:
                for key in unknown:
                    close = difflib.get_close_matches(key, known, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    clearer.append(
                        f"config key {key!r} is unknown{hint}; accepted keys: {', '.join(known)}"
                    )
            else:
                clearer.append(redact(error))
        return clearer

    @cached_property
    def settings(self) -> Settings:
        """The validated config, typed."""
        return parse_settings(self.config)

    def load_state(self, state: dict[str, Any]) -> None:
        """Check an incoming STATE before the SDK merges it (see :func:`check_state`)."""
        try:
            today = self.settings.local_now(self.now_utc()).date()
        except SettingsError:  # discovery runs unvalidated; its state is empty anyway
            today = utc_now().date()
        checked = check_state(
            state,
            streams=[
                kind.name for kind in (SegmentsStream, SegmentValuesStream, SegmentSeriesStream)
            ],
            today=today,
            logger=self.logger,
        )
        super().load_state(checked)
        if ledger.STATE_KEY in checked:  # the SDK only loads "bookmarks"
            tap_state: dict[str, Any] = self.state  # type: ignore[assignment]
            tap_state[ledger.STATE_KEY] = checked[ledger.STATE_KEY]

    @classmethod
    def invoke(  # type: ignore[override]
        cls, *, state: IO[str] | None = None, **kwargs: Any
    ) -> None:
        """Read ``--state`` ourselves first, so a broken file gets a message, not a traceback."""
        if state is not None:
            text = state.read()
            name = getattr(state, "name", "the --state file")
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                what = "empty" if not text.strip() else f"not JSON ({exc})"
                msg = (
                    f"{name} is {what}. Pass the last STATE this tap wrote, or leave --state "
                    "out for a full sync."
                )
                raise click.BadParameter(msg, param_hint="'--state'") from None
            if not isinstance(parsed, dict):
                raise click.BadParameter(not_an_object(parsed), param_hint="'--state'")
            state = io.StringIO(text)
        super().invoke(state=state, **kwargs)

    @cached_property
    def report_gate(self) -> ReportGate:
        """Pacing and the daily budget shared by segment_values and segment_series.

        Built when the first report stream syncs, so it reads the clock of the sync (tests
        freeze it). The record of recent calls comes from STATE and goes back into it after
        every call: each STATE message serialises the whole state dict, so every STATE the
        tap writes from then on carries it.
        """
        settings = self.settings
        state: dict[str, Any] = self.state  # type: ignore[assignment]  # a TypedDict of bookmarks
        record, notes = ledger.resolve(
            state.get(ledger.STATE_KEY), self.now_utc(), settings.report_calls_per_day
        )
        for note in notes:
            self.logger.warning("Daily report budget: %s", note)

        def save(updated: ledger.CallRecord) -> None:
            state[ledger.STATE_KEY] = updated.to_state()

        save(record)
        return ReportGate(
            calls_per_minute=settings.report_calls_per_minute,
            calls_per_second=settings.report_calls_per_second,
            calls_per_day=settings.report_calls_per_day,
            max_wait=settings.max_retry_wait_seconds,
            now=self.now_utc,
            record=record,
            save=save,
        )

    def report_segment_ids(self) -> list[str]:
        """The segments both report streams ask about (listed from Klaviyo once per run)."""
        if self.settings.segment_ids is not None:
            return list(self.settings.segment_ids)
        return list(self._listed_segment_ids)

    @cached_property
    def _listed_segment_ids(self) -> tuple[str, ...]:
        segments = self.streams["segments"]
        assert isinstance(segments, SegmentsStream)
        active_only = not self.settings.include_inactive_segments
        ids = tuple(dict.fromkeys(segments.list_ids(active_only=active_only)))
        self.logger.info("Reporting on %d %ssegments", len(ids), "active " if active_only else "")
        return ids

    def discover_streams(self) -> list[Stream]:
        """Segments first; values before series, so a backfill never starves today's values."""
        return [SegmentsStream(self), SegmentValuesStream(self), SegmentSeriesStream(self)]

    def load_streams(self) -> list[Stream]:
        """Keep :meth:`discover_streams` order (the SDK sorts by name): it is the sync order."""
        order = [stream.name for stream in self.discover_streams()]
        return sorted(super().load_streams(), key=lambda stream: order.index(stream.name))


if __name__ == "__main__":
    TapKlaviyoSegments.cli()
