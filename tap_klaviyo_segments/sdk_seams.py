"""The one module that touches singer-sdk internals: two private hooks and one private method.

singer-sdk has no public hook for these, so each is overridden here, once, and handed on to a
public method of the tap's own:

- ``Tap._validate_config``: the only place where the final config (files and environment
  merged) is known before it is used; the tap's own checks run there (``check_settings``).
- ``Tap._handle_termination``: the SDK's SIGINT/SIGTERM handler writes the final STATE and
  exits 0, which a scheduler would take for success (``exit_code_on_signal``).
- ``Stream._increment_stream_state``: singer-sdk moves a stream's bookmark after each record;
  one segment_series answer serves up to 100 segments with a bookmark each, moved per answer.
"""

from __future__ import annotations

import contextlib
from types import FrameType
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk.helpers.types import Context
from typing_extensions import override


class TapSeams(Tap):
    """The tap's two private hooks, handed on to public methods."""

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        return self.check_settings(super()._validate_config, raise_errors=raise_errors)

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        self.terminate(signum, frame)

    def terminate(self, signum: int, frame: FrameType | None = None) -> None:
        """The SDK's handling of a signal (final STATE), with ``exit_code_on_signal``'s code."""
        code = self.exit_code_on_signal(signum)
        if code is None:
            return
        with contextlib.suppress(SystemExit):
            super()._handle_termination(signum, frame)
        raise SystemExit(code)

    def check_settings(self, sdk_check: Any, *, raise_errors: bool) -> list[str]:
        """The SDK's schema check (``sdk_check``), then the tap's own; the errors."""
        return list(sdk_check(raise_errors=raise_errors))

    def exit_code_on_signal(self, signum: int) -> int | None:
        """The exit code after the SDK wrote the final STATE; None to handle the signal later."""
        return 128 + signum


class BookmarksByAnswer(Stream):
    """A stream whose bookmarks the stream itself moves, per answer, not the SDK per record."""

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Context | None = None
    ) -> None:
        """Nothing: see the module docstring."""
