"""TapKlaviyoSegments: the config it accepts and the streams it offers."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import IO, Any, ClassVar

import click
from singer_sdk import Stream
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
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
from tap_klaviyo_segments.config_checks import environment_integer_problems
from tap_klaviyo_segments.redaction import register_secret
from tap_klaviyo_segments.run import ReportRun
from tap_klaviyo_segments.sdk_seams import TapSeams
from tap_klaviyo_segments.series import SegmentSeriesStream
from tap_klaviyo_segments.settings import (
    CheckedConfig,
    Settings,
    SettingsError,
    check_config,
    config_schema,
    parse_settings,
    utc_now,
)
from tap_klaviyo_segments.singer_output import SingerWriter
from tap_klaviyo_segments.state import RunState, carry_top_level
from tap_klaviyo_segments.state_checks import check_state
from tap_klaviyo_segments.streams import SegmentsStream, SegmentValuesStream


class TapKlaviyoSegments(TapSeams):
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

    #: What the config check found (see ``check_settings``); ``settings`` reads it.
    _checked: CheckedConfig

    @override
    def check_settings(self, sdk_check: Any, *, raise_errors: bool) -> list[str]:
        """The schema's check, then the tap's (:func:`check_config`): each problem said once.

        From here on the api_key is masked in every log record, and no error message quotes it.
        Discovery (``raise_errors`` False) logs nothing: it needs no valid config, and the run
        after it (Meltano's) names each problem once, as an ERROR.
        """
        register_secret(self.config.get("api_key"))
        try:  # raising keeps the SDK's own WARNING out of discovery
            schema_errors = sdk_check(raise_errors=True)
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
        """The validated config, typed: parsed once, by ``check_settings``.

        A tap made with ``validate_config=False`` (tests, tools) parses it here instead.
        """
        checked = getattr(self, "_checked", None)
        return checked.usable() if checked is not None else parse_settings(self.config)

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
            problems = environment_integer_problems(cls.config_jsonschema, _ENV_PREFIX)
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
