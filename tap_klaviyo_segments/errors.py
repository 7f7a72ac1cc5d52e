"""The tap's error types: what went wrong, and whether retrying or stopping cleanly is right.

Each kind ends a run differently (see :func:`tap_klaviyo_segments.cli.failure_line`): a 4xx is a
message that says what to fix, a retriable error is retried with backoff, a spent budget or a
long throttle is a clean stop with STATE saved.
"""

from __future__ import annotations

from datetime import date

import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_klaviyo_segments.pacing import ReportBudgetSpent

__all__ = ["ReportBudgetSpent"]  # raised by the gate (pacing.py), caught with the others


class KlaviyoAPIError(FatalAPIError):
    """A 4xx that retrying cannot fix; the message says what to change."""

    def __init__(self, message: str, status: int | None = None, pointer: str = "") -> None:
        super().__init__(message)
        #: The HTTP status, where a response gave one.
        self.status = status
        #: Klaviyo's ``source.pointer`` (or ``parameter``) of the first error, if any.
        self.pointer = pointer


class AnswerMismatchError(KlaviyoAPIError):
    """An answer that does not fit the config (labels in another timezone, a moving grid)."""


class StateMismatchError(KlaviyoAPIError):
    """The config changed in a way the bookmarks in STATE cannot follow (a new timezone)."""


class DataFloorError(KlaviyoAPIError):
    """Klaviyo refused a timeframe that starts before its first day of segment data."""

    def __init__(self, message: str, floor: date) -> None:
        super().__init__(message, 400, "/data/attributes/timeframe/start")
        #: The first day Klaviyo said it has data for.
        self.floor = floor


class ApiUnreachableError(FatalAPIError):
    """The first connection of the run was refused or the host name did not resolve."""


class RedirectRefusedError(KlaviyoAPIError):
    """A redirect the tap will not follow (off the API host, on a report call, or a loop)."""


class ResponseTooLargeError(KlaviyoAPIError):
    """A body past the size cap; reading on would only use up memory."""


class PaginationError(KlaviyoAPIError):
    """``links.next`` never ends: the listing stops instead of looping for ever."""


class ThrottledError(RetriableAPIError):
    """A 429: retried after the ``Retry-After`` Klaviyo gave."""

    def __init__(
        self, message: str, response: requests.Response, retry_after: float | None
    ) -> None:
        super().__init__(message, response)
        self.retry_after = retry_after


class ListingThrottledError(Exception):
    """GET /api/segments is throttled for longer than the tap waits: stop cleanly, keep STATE."""


class MalformedResponseError(RetriableAPIError):
    """A 200 that is not a Klaviyo answer at all (not JSON, HTML); retried, then fatal."""


class InvalidAnswerError(MalformedResponseError):
    """A Klaviyo answer that broke a check (a bucket missing, a negative count); retried."""
