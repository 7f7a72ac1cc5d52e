"""The streams' HTTP base: Klaviyo's headers, statuses and retries, and what a 4xx says.

singer-sdk's RESTStream does the requests, retries and metrics; :class:`KlaviyoStream` only says
what is Klaviyo-specific: which statuses retry and how long to wait (``Retry-After`` on a 429,
not a blind exponential), what a 4xx tells the user, and which 400 names Klaviyo's data floor.
The report streams' one loop of calls is in report_stream.py.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Generator
from datetime import date, datetime
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from singer_sdk import Tap
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.streams import RESTStream
from typing_extensions import override

from tap_klaviyo_segments.errors import (
    DataFloorError,
    KlaviyoAPIError,
    ListingThrottledError,
    RedirectRefusedError,
    ThrottledError,
)
from tap_klaviyo_segments.http import (
    KlaviyoSession,
    error_line,
    klaviyo_errors,
    retry_after_seconds,
)
from tap_klaviyo_segments.redaction import cut, redact

if TYPE_CHECKING:
    from backoff.types import Details

    from tap_klaviyo_segments.run import ReportRun
    from tap_klaviyo_segments.settings import Settings

_MAX_ERROR_TEXT = 300

#: Klaviyo's words for its data floor: "Cannot query for segment data before June 21st, 2023".
_FLOOR = re.compile(r"before (\w+) (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})")


class KlaviyoStream(RESTStream[Any]):
    """Base stream: Klaviyo's auth header, revision header and error handling."""

    def __init__(self, tap: Tap, run: Callable[[], ReportRun]) -> None:
        super().__init__(tap)
        self._run_of = run

    @property
    def run(self) -> ReportRun:
        """What this sync shares (settings, clock, STATE, gate, segments)."""
        return self._run_of()

    @property
    def settings(self) -> Settings:
        """The parsed config."""
        return self.run.settings

    @property
    @override
    def url_base(self) -> str:
        """Klaviyo (or a local stand-in, in tests)."""
        return self.settings.api_url

    @cached_property
    @override
    def authenticator(self) -> APIKeyAuthenticator:
        """``Authorization: Klaviyo-API-Key <private key>``."""
        return APIKeyAuthenticator(
            key="Authorization",
            value=f"Klaviyo-API-Key {self.config['api_key']}",
            location="header",
        )

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        """Klaviyo requires a ``revision`` header on every call."""
        return {
            "revision": self.settings.revision,
            "accept": "application/vnd.api+json",
            "content-type": "application/vnd.api+json",
            "user-agent": "tap-klaviyo-segments",
        }

    @property
    @override
    def requests_session(self) -> requests.Session:
        """A :class:`KlaviyoSession` (deadline, body cap, redirects, first contact)."""
        return self.klaviyo_session

    @cached_property
    def klaviyo_session(self) -> KlaviyoSession:
        """The stream's session, made on first use."""
        return KlaviyoSession(
            self.run.contact,
            deadline_seconds=self.settings.request_timeout,
            follow_redirects=True,
        )

    @override
    def validate_response(self, response: requests.Response) -> None:
        """Turn Klaviyo's statuses into retry, wait, or a message that says what to fix."""
        status = response.status_code
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            self._on_throttled(response)
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(
                self._describe(response, "Klaviyo had a server error"), response
            )
        if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            raise KlaviyoAPIError(self._auth_message(response), status)
        if status >= HTTPStatus.BAD_REQUEST:
            self._on_rejected(response)
        if status >= HTTPStatus.MULTIPLE_CHOICES:
            location = response.headers.get("Location") or ""
            host = urlsplit(location).netloc or "the same host"
            why = (
                "report calls follow no redirects (each hop would be a paced, counted call)"
                if not self.allow_redirects
                else "the tap expected an answer, not a redirect"
            )
            raise RedirectRefusedError(
                f"Klaviyo answered HTTP {status} on {self.path}, redirecting to {host}; "
                f"{why}: check api_url"
            )

    def _on_rejected(self, response: requests.Response) -> None:
        """A 4xx: Klaviyo's data floor is its own error (the tap re-plans from it)."""
        errors = klaviyo_errors(response)
        first = errors[0] if errors else {}
        source = first.get("source")
        source = source if isinstance(source, dict) else {}
        pointer = str(source.get("pointer") or source.get("parameter") or "")
        message = self._describe(response, "Klaviyo rejected the request")
        floor = _data_floor(str(first.get("detail") or ""), pointer)
        if floor is not None:
            raise DataFloorError(message, floor)
        raise KlaviyoAPIError(message, response.status_code, pointer)

    def _on_throttled(self, response: requests.Response) -> None:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        limit = self.settings.max_retry_wait_seconds
        if retry_after is not None and retry_after > limit:
            reason = (
                f"Klaviyo throttled {self.http_method} {self.path} with Retry-After "
                f"{retry_after:.0f} s, longer than max_retry_wait_seconds={limit:.0f}"
            )
            raise self.long_throttle(reason)
        message = self._describe(response, f"Klaviyo throttled {self.http_method} {self.path}")
        raise ThrottledError(message, response, retry_after)

    def long_throttle(self, reason: str) -> Exception:
        """What a throttle longer than the tap waits raises: a clean stop of the listing."""
        return ListingThrottledError(reason)

    def _auth_message(self, response: requests.Response) -> str:
        if response.status_code == HTTPStatus.UNAUTHORIZED:
            hint = "the api_key was not accepted: set api_key to a Klaviyo private API key (pk_...)"
        else:
            hint = "the api_key lacks a scope: give the private key the segments:read scope"
        return self._describe(response, f"Klaviyo refused access ({hint})")

    def _describe(self, response: requests.Response, headline: str) -> str:
        """Klaviyo's own ``detail`` and ``source.pointer``, never headers (they hold the key)."""
        details = [error_line(error) for error in klaviyo_errors(response)]
        if not details:
            # A proxy's error page may echo our request headers back: masked before the cut,
            # so a key straddling the cut cannot leave a prefix behind.
            text = cut(" ".join(response.text.split()), _MAX_ERROR_TEXT)
            details = [f"body: {text}" if text else "empty body"]
        return redact(
            f"{headline}: HTTP {response.status_code} on {self.path}: " + "; ".join(details)
        )

    @override
    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        """Wait ``Retry-After`` after a 429; otherwise back off exponentially."""
        return _retry_waits(self.settings.retry_initial_wait_seconds)

    @override
    def backoff_max_tries(self) -> int:
        """The first attempt plus ``max_retries`` retries."""
        return self.settings.max_retries + 1

    @override
    def backoff_jitter(self, value: float) -> float:
        """Up to 10% more, never less: a wait shorter than ``Retry-After`` earns another 429."""
        return value * (1 + random.random() / 10)  # noqa: S311 - jitter, not security

    @override
    def backoff_handler(self, details: Details) -> None:
        """Log the retry without the request (the SDK's default logs its arguments)."""
        exc = details.get("exception")
        self.logger.warning(
            "Retrying %s in %.1f s (attempt %d failed: %s)",
            self.path,
            details.get("wait") or 0.0,
            details.get("tries") or 0,
            short_error(exc),
        )


def _data_floor(detail: str, pointer: str) -> date | None:
    """Klaviyo's first day of data, from its "Cannot query ... before June 21st, 2023"."""
    if not pointer.endswith("timeframe/start"):
        return None
    found = _FLOOR.search(detail)
    if found is None:
        return None
    month, day, year = found.groups()
    try:
        return datetime.strptime(f"{month} {day} {year}", "%B %d %Y").date()
    except ValueError:
        return None


def _retry_waits(initial: float) -> Generator[float, Any, None]:
    failures = 0
    exc = yield  # type: ignore[misc]
    while True:
        if isinstance(exc, ThrottledError) and exc.retry_after is not None:
            wait = exc.retry_after
        else:
            wait = initial * 2**failures
            failures += 1
        exc = yield wait


def short_error(exc: BaseException | None) -> str:
    """An exception in a few words, for a retry line."""
    if exc is None:
        return "no exception"
    return f"{type(exc).__name__}: {cut(str(exc), _MAX_ERROR_TEXT)}"
