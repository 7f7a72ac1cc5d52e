"""What a person running the tap sees when a run fails or is stopped: one line that says why.

singer-sdk's command line prints a traceback for anything unexpected and exits 0 on SIGTERM.
Here every failure ends in one ERROR line with its cause and what to fix (the traceback goes to
DEBUG), a broken ``--state`` file is a message rather than a traceback, and a signal exits
128 + its number after the final STATE.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import IO

import click
import requests
from singer_sdk.exceptions import ConfigValidationError, RetriableAPIError
from typing_extensions import override

from tap_klaviyo_segments.errors import (
    ApiUnreachableError,
    InvalidAnswerError,
    KlaviyoAPIError,
    MalformedResponseError,
)
from tap_klaviyo_segments.redaction import cut
from tap_klaviyo_segments.state_checks import not_an_object

#: How much of an error's own text a failure line quotes.
_MAX_ERROR_TEXT = 300


def checked_state_file(state: IO[str] | None) -> IO[str] | None:
    """The ``--state`` file, read first so that a broken one gets a message, not a traceback."""
    if state is None:
        return None
    text = state.read()
    name = getattr(state, "name", "the --state file")
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        what = "empty" if not text.strip() else f"not JSON ({exc})"
        msg = (
            f"{name} is {what}. Pass the last STATE this tap wrote, or leave --state out for a "
            "full sync."
        )
        raise click.BadParameter(msg, param_hint="'--state'") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter(not_an_object(parsed), param_hint="'--state'")
    return io.StringIO(text)


@contextlib.contextmanager
def one_failure_line(logger: logging.Logger) -> Iterator[None]:
    """End a failed run with one ERROR line (cause and fix) and exit code 1.

    Config errors and click's own errors already answer in one message and pass through.
    """
    FAILED_STREAM.stream = None
    try:
        yield
    except (ConfigValidationError, click.ClickException, click.exceptions.Exit):
        raise
    except Exception as exc:
        if isinstance(exc, BrokenPipeError):
            _silence_stdout()
        logger.debug("The failure in full:", exc_info=True)
        logger.error("%s", failure_line(exc, FAILED_STREAM.stream))
        raise click.exceptions.Exit(1) from None


def failure_line(exc: BaseException, stream: str | None = None) -> str:
    """The one line a failed run ends with: what went wrong and what to do about it.

    The messages of the tap's own errors already say what to fix; the others (retries spent,
    a target that stopped reading, a bug) get the advice here. The key is masked before the cut.
    """
    where = f"Stream {stream} failed: " if stream else "The run failed: "
    text = cut(" ".join(str(exc).split()), 2 * _MAX_ERROR_TEXT) or type(exc).__name__
    if isinstance(exc, BrokenPipeError):
        return (
            "The run stopped: the target stopped reading the tap's output (broken pipe). "
            "Check the target's own log for why it stopped; rerun from the last STATE it saved."
        )
    if isinstance(exc, (KlaviyoAPIError, ApiUnreachableError)):
        return where + text
    if isinstance(exc, InvalidAnswerError):
        return (
            f"{where}{text}. Klaviyo answered the same way on every retry; no row of that answer "
            "was written and a rerun resumes from the last STATE: try again later, and if it "
            "stays, report it with the log at DEBUG."
        )
    if isinstance(exc, MalformedResponseError):
        return (
            f"{where}{text}. Retries did not help; no row of that answer was written and a "
            "rerun resumes from the last STATE: check that api_url reaches Klaviyo (not a proxy "
            "or login page), or try again later."
        )
    if isinstance(exc, requests.Timeout):
        return (
            f"{where}no complete answer in time after the retries ({text}): raise "
            "request_timeout or max_retries, or try again later."
        )
    if isinstance(exc, (requests.ConnectionError, ConnectionResetError)):
        return (
            f"{where}the connection to Klaviyo kept dropping after the retries ({text}): "
            "check the network, or try again later; state is saved up to the last STATE."
        )
    if isinstance(exc, RetriableAPIError):
        return (
            f"{where}{text}. Klaviyo kept failing after the retries: try again later "
            "(the next run resumes from the last STATE)."
        )
    return (
        f"{where}{type(exc).__name__}: {text}. This is unexpected: rerun with DEBUG logging "
        "for the traceback and report it."
    )


def interrupted(signum: int, logger: logging.Logger) -> int:
    """Say that a signal stopped the run after its final STATE; the exit code to use.

    singer-sdk exits 0, which a scheduler would record as a successful run: 128 + the signal.
    """
    code = 128 + signum
    logger.warning(
        "Interrupted by %s: the last STATE written covers every record emitted; exiting %d",
        signal.Signals(signum).name,
        code,
    )
    return code


class FailedStream(logging.Filter):
    """Remembers which stream failed, and turns the SDK's bare notice of it into DEBUG.

    singer-sdk logs "An unhandled error occurred while syncing '<stream>'" at ERROR before the
    failure reaches :func:`one_failure_line`, which ends the run with the one ERROR line that
    names the cause and the fix (and the stream, taken from here). backoff's own "Backing off"
    and "Giving up" lines go to DEBUG too: the stream's ``backoff_handler`` already logs each
    retry once, and the failure line says the rest.
    """

    #: The SDK's message, as its ``Stream.sync`` logs it.
    NOTICE = "An unhandled error occurred while syncing '%s'"
    #: The SDK's "bookmark value" line: for segment_series (a bookmark per segment and interval)
    #: it names start_date, not where the run reads from; the stream logs that instead.
    STARTING = "Starting incremental sync of '%s' with bookmark value: %s"

    stream: str | None = None

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self.NOTICE and record.levelno == logging.ERROR:
            args = record.args if isinstance(record.args, tuple) else ()
            self.stream = str(args[0]) if args else None
            return _to_debug(record)
        if isinstance(record.msg, str) and record.msg.startswith(_BACKOFF_NOTICES):
            return _to_debug(record)
        if record.msg == self.STARTING and record.args and record.args[0] == "segment_series":  # type: ignore[index]
            return _to_debug(record)  # one value for per-segment bookmarks: the stream says its own
        return True


#: The beginnings of backoff's own log lines (see :class:`FailedStream`).
_BACKOFF_NOTICES = ("Backing off ", "Giving up ")


def _to_debug(record: logging.LogRecord) -> bool:
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


#: The one filter on every stream's logger (see :meth:`TapKlaviyoSegments.discover_streams`).
FAILED_STREAM = FailedStream()


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and flushing at exit would fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "no exception"
    return f"{type(exc).__name__}: {cut(str(exc), _MAX_ERROR_TEXT)}"
