"""TapKlaviyoSegments: the config it accepts and the streams it offers."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from types import FrameType
from typing import IO, Any, ClassVar

import click
from singer_sdk import Stream, Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)
from typing_extensions import override

from tap_klaviyo_segments import ledger
from tap_klaviyo_segments.bookmarks import check_state, not_an_object
from tap_klaviyo_segments.client import ApiContact, ListingThrottledError, failure_line
from tap_klaviyo_segments.config_checks import environment_integer_problems
from tap_klaviyo_segments.pacing import ReportGate
from tap_klaviyo_segments.redaction import register_secret
from tap_klaviyo_segments.settings import (
    CheckedConfig,
    Settings,
    SettingsError,
    check_config,
    config_schema,
    utc_now,
)
from tap_klaviyo_segments.singer_output import SingerWriter
from tap_klaviyo_segments.streams import SegmentSeriesStream, SegmentsStream, SegmentValuesStream


class TapKlaviyoSegments(Tap):
    """Singer tap for Klaviyo segment growth: segments, segment_values, segment_series."""

    name = "tap-klaviyo-segments"
    config_jsonschema = config_schema()

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

    #: What the config check found (see ``_validate_config``); ``settings`` reads it.
    _checked: CheckedConfig

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The schema's check, then the tap's (:func:`check_config`): each problem said once.

        Also the first place the final config (files and env merged) is known: from here on the
        api_key is masked in every log record, and no error message quotes it. An SDK internal:
        singer-sdk has no public hook between merging the config and using it, and this is the
        one place the tap touches it. Discovery (``raise_errors`` False) logs nothing: it needs
        no valid config, and the run after it (Meltano's) names each problem once, as an ERROR.
        """
        register_secret(self.config.get("api_key"))
        try:  # raising keeps the SDK's own WARNING out of discovery
            schema_errors = super()._validate_config(raise_errors=True)
        except ConfigValidationError as exc:
            schema_errors = exc.errors
        accepted = copy.deepcopy(self.config_jsonschema)
        self.append_builtin_config(accepted)  # singer-sdk's keys, asked of the installed one
        checked = check_config(
            self.config, schema_errors, list(accepted["properties"]), self.now_utc()
        )
        self._checked = checked
        if not raise_errors:
            return checked.problems
        if checked.problems:
            raise ConfigValidationError(
                "Config validation failed", errors=checked.problems, schema=self.config_jsonschema
            ) from None
        for warning in checked.warnings:
            self.logger.warning("%s", warning)
        return []

    @cached_property
    def settings(self) -> Settings:
        """The validated config, typed: parsed once, by ``_validate_config``."""
        return self._checked.usable()

    @override
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
    @override
    def invoke(cls, *, state: IO[str] | None = None, **kwargs: Any) -> None:
        """Run the tap; a failure ends in one ERROR line with its cause and fix, exit code 1.

        ``--state`` is read here first, so a broken file gets a message, not a traceback. The
        traceback of a failure is logged at DEBUG only.
        """
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
        _failed_stream.stream = None
        config_input = kwargs.get("config")
        if getattr(config_input, "parse_env", False):
            problems = environment_integer_problems(cls.config_jsonschema, cls._env_var_prefix)
            for problem in problems:
                cls.logger.error("%s", problem)
            if problems:
                raise click.exceptions.Exit(1)
        try:
            super().invoke(state=state, **kwargs)
        except (ConfigValidationError, click.ClickException, click.exceptions.Exit):
            raise  # the SDK's command and click already answer these in one message
        except Exception as exc:
            if isinstance(exc, BrokenPipeError):
                _silence_stdout()
            cls.logger.debug("The failure in full:", exc_info=True)
            cls.logger.error("%s", failure_line(exc, _failed_stream.stream))
            raise click.exceptions.Exit(1) from None

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """Write the final STATE (the SDK does), then exit 128 + the signal's number.

        The SDK exits 0, which a scheduler would record as a successful run.
        """
        writer = self.message_writer
        if isinstance(writer, SingerWriter) and writer.writing:
            # Half a line is out: finish it first (the writer calls this back right after).
            writer.deferred = lambda: self._handle_termination(signum, frame)
            return
        code = 128 + signum
        self.logger.warning(
            "Interrupted by %s: the last STATE written covers every record emitted; exiting %d",
            signal.Signals(signum).name,
            code,
        )
        # ``_handle_termination`` is the SDK's (private) signal handler, installed for SIGINT
        # and SIGTERM; it writes the final STATE and exits 0. Only its exit code changes here.
        with contextlib.suppress(SystemExit):
            super()._handle_termination(signum, frame)
        raise SystemExit(code)

    @cached_property
    def ids_warned(self) -> set[tuple[str, str]]:
        """("+" added or "-" left out, segment id): named in a warning this run, by any stream."""
        return set()

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
            sleep=self._announced_wait,
            now=self.now_utc,
            record=record,
            save=save,
        )

    def _announced_wait(self, seconds: float) -> None:
        """The gate's sleep: a wait longer than the normal pace gets an INFO line and reason."""
        if seconds > _LOGGED_WAIT_SECONDS:
            gate = self.report_gate
            if seconds > gate.spacing + 1:
                reason = (
                    "Klaviyo's last answer said RateLimit-Remaining 0 and gave a RateLimit-Reset "
                    f"(capped at max_retry_wait_seconds={gate.max_wait:g})"
                )
            else:
                reason = "to keep report_calls_per_minute / report_calls_per_second"
            self.logger.info("Waiting %.0f s before the next report call: %s", seconds, reason)
        time.sleep(seconds)

    @cached_property
    def api_contact(self) -> ApiContact:
        """Whether the API answered yet in this run, shared by every stream's session."""
        return ApiContact(self.settings.api_url)

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
        try:
            listed = segments.list_ids(active_only=active_only)
        except ListingThrottledError as stop:
            self.logger.warning(
                "Reporting on no segments this run: %s. State is saved; the next run lists them "
                "again (set segment_ids to report without the listing)",
                stop,
            )
            return ()
        ids = tuple(dict.fromkeys(listed))
        self.logger.info("Reporting on %d %ssegments", len(ids), "active " if active_only else "")
        return ids

    @override
    def discover_streams(self) -> list[Stream]:
        """Segments first; values before series, so a backfill never starves today's values."""
        streams: list[Stream] = [
            SegmentsStream(self),
            SegmentValuesStream(self),
            SegmentSeriesStream(self),
        ]
        for stream in streams:
            # By name: singer-sdk 0.55 hands streams a LoggerAdapter, which takes no filters.
            logging.getLogger(stream.logger.name).addFilter(_failed_stream)
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

#: Waits up to this long are the normal pace of report calls and get no log line.
_LOGGED_WAIT_SECONDS = 5.0


class _FailedStream(logging.Filter):
    """Remembers which stream failed, and turns the SDK's bare notice of it into DEBUG.

    singer-sdk logs "An unhandled error occurred while syncing '<stream>'" at ERROR before the
    failure reaches :meth:`TapKlaviyoSegments.invoke`, which ends the run with the one ERROR
    line that names the cause and the fix (and the stream, taken from here).
    """

    #: The SDK's message, as its ``Stream.sync`` logs it.
    NOTICE = "An unhandled error occurred while syncing '%s'"

    stream: str | None = None

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self.NOTICE and record.levelno == logging.ERROR:
            args = record.args if isinstance(record.args, tuple) else ()
            self.stream = str(args[0]) if args else None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_failed_stream = _FailedStream()


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and flushing at exit would fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


if __name__ == "__main__":
    TapKlaviyoSegments.cli()
