"""HTTP base for every Klaviyo stream: auth, headers, pacing, retries and error messages.

singer-sdk's RESTStream does the requests, retries and metrics; this module only says what is
Klaviyo-specific: which statuses retry and how long to wait (``Retry-After`` on a 429, not a
blind exponential), what a 4xx tells the user, and that report calls go through the shared
:class:`~tap_klaviyo_segments.pacing.ReportGate`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import requests
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.streams import RESTStream

from tap_klaviyo_segments.pacing import ReportBudgetSpent, ReportGate
from tap_klaviyo_segments.redaction import redact
from tap_klaviyo_segments.reports import MalformedReportError

if TYPE_CHECKING:
    from backoff.types import Details

    from tap_klaviyo_segments.settings import Settings

_MAX_ERROR_TEXT = 300


class KlaviyoAPIError(FatalAPIError):
    """A 4xx that retrying cannot fix; the message says what to change."""


class ThrottledError(RetriableAPIError):
    """A 429: retried after the ``Retry-After`` Klaviyo gave."""

    def __init__(
        self, message: str, response: requests.Response, retry_after: float | None
    ) -> None:
        super().__init__(message, response)
        self.retry_after = retry_after


class MalformedResponseError(RetriableAPIError):
    """A 200 whose body is not a usable report; retried, then fatal."""


class PacedSession(requests.Session):
    """A session whose every attempt, retries included, is paced and counted by the gate."""

    def __init__(self, gate: ReportGate) -> None:
        super().__init__()
        self.gate = gate

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Wait for the gate, send, and let the gate read the rate-limit headers."""
        self.gate.before_call()
        response = super().send(request, **kwargs)
        self.gate.after_response(response.status_code, response.headers)
        return response


class KlaviyoStream(RESTStream[Any]):
    """Base stream: Klaviyo's auth header, revision header and error handling."""

    @property
    def settings(self) -> Settings:
        """The parsed config, shared with the tap."""
        return self._tap.settings  # type: ignore[attr-defined,no-any-return]

    @property
    def url_base(self) -> str:
        """Klaviyo (or a local stand-in, in tests)."""
        return self.settings.api_url

    @cached_property
    def authenticator(self) -> APIKeyAuthenticator:
        """``Authorization: Klaviyo-API-Key <private key>``."""
        return APIKeyAuthenticator(
            key="Authorization",
            value=f"Klaviyo-API-Key {self.config['api_key']}",
            location="header",
        )

    @property
    def http_headers(self) -> dict[str, str]:
        """Klaviyo requires a ``revision`` header on every call."""
        return {
            "revision": self.settings.revision,
            "accept": "application/vnd.api+json",
            "content-type": "application/vnd.api+json",
            "user-agent": "tap-klaviyo-segments",
        }

    @property
    def timeout(self) -> int:
        """Seconds per HTTP request (``request_timeout``)."""
        return self.settings.request_timeout  # type: ignore[return-value]

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
            raise KlaviyoAPIError(self._auth_message(response))
        if status >= HTTPStatus.BAD_REQUEST:
            raise KlaviyoAPIError(self._describe(response, "Klaviyo rejected the request"))

    def _on_throttled(self, response: requests.Response) -> None:
        retry_after = _seconds(response.headers.get("Retry-After"))
        limit = self.settings.max_retry_wait_seconds
        if retry_after is not None and retry_after > limit:
            reason = (
                f"Klaviyo throttled {self.path} with Retry-After {retry_after:.0f} s, longer than "
                f"max_retry_wait_seconds={limit:.0f} (the day's report quota is likely spent)"
            )
            raise ReportBudgetSpent(reason)
        message = self._describe(response, "Klaviyo throttled the request")
        raise ThrottledError(message, response, retry_after)

    def _auth_message(self, response: requests.Response) -> str:
        if response.status_code == HTTPStatus.UNAUTHORIZED:
            hint = "the api_key was not accepted: set api_key to a Klaviyo private API key (pk_...)"
        else:
            hint = "the api_key lacks a scope: give the private key the segments:read scope"
        return self._describe(response, f"Klaviyo refused access ({hint})")

    def _describe(self, response: requests.Response, headline: str) -> str:
        """Klaviyo's own ``detail`` and ``source.pointer``, never headers (they hold the key)."""
        details = [_error_line(error) for error in _errors(response)]
        if not details:
            text = " ".join(response.text.split())[:_MAX_ERROR_TEXT]
            details = [f"body: {text}" if text else "empty body"]
        # A proxy's error page may echo our request headers back: mask the key in any case.
        return redact(
            f"{headline}: HTTP {response.status_code} on {self.path}: " + "; ".join(details)
        )

    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        """Wait ``Retry-After`` after a 429; otherwise back off exponentially."""
        return _retry_waits(self.settings.retry_initial_wait_seconds)

    def backoff_max_tries(self) -> int:
        """The first attempt plus ``max_retries`` retries."""
        return self.settings.max_retries + 1

    def backoff_jitter(self, value: float) -> float:
        """Up to 10% more, never less: a wait shorter than ``Retry-After`` earns another 429."""
        return value * (1 + random.random() / 10)  # noqa: S311 - jitter, not security

    def backoff_handler(self, details: Details) -> None:
        """Log the retry without the request (the SDK's default logs its arguments)."""
        exc = details.get("exception")
        self.logger.warning(
            "Retrying %s in %.1f s (attempt %d failed: %s)",
            self.path,
            details.get("wait") or 0.0,
            details.get("tries") or 0,
            _short(exc),
        )


class KlaviyoReportStream(KlaviyoStream):
    """Base for the report endpoints: POSTs through the shared gate, parsed inside the retry."""

    http_method = "POST"

    @property
    def gate(self) -> ReportGate:
        """The pacing and budget shared by both report streams."""
        return self._tap.report_gate  # type: ignore[attr-defined,no-any-return]

    @property
    def requests_session(self) -> requests.Session:
        """A session that paces every attempt through the shared gate."""
        if not isinstance(self._requests_session, PacedSession):
            self._requests_session = PacedSession(self.gate)
        return self._requests_session

    def post_report(self, body: dict[str, Any], parse: Callable[[Any], Any]) -> Any:
        """POST one report and return ``parse(json)``, retrying malformed bodies like 5xx.

        429s that outlast ``max_retries`` raise :class:`ReportBudgetSpent` (a clean stop).
        """
        prepared = self.build_prepared_request(
            method="POST", url=self.get_url(None), headers=self.http_headers, json=body
        )

        def attempt(request: requests.PreparedRequest, context: None) -> Any:
            response = self._request(request, context)
            try:
                return parse(response.json())
            except (ValueError, MalformedReportError) as exc:
                reason = exc if isinstance(exc, MalformedReportError) else "body is not JSON"
                msg = f"Klaviyo returned a malformed report from {self.path}: {reason}"
                raise MalformedResponseError(msg, response) from None

        try:
            return self.request_decorator(attempt)(prepared, None)
        except ThrottledError as exc:
            # Klaviyo keeps saying "not now": a clean stop with state saved, like a spent
            # quota, rather than a failed run; the next run resumes at this call.
            wait = "none given" if exc.retry_after is None else f"{exc.retry_after:g} s"
            reason = (
                f"Klaviyo still throttled {self.path} after {self.settings.max_retries} "
                f"retries (last Retry-After: {wait})"
            )
            raise ReportBudgetSpent(reason) from None


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


def _errors(response: requests.Response) -> list[dict[str, Any]]:
    try:
        payload = response.json()
    except ValueError:
        return []
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _error_line(error: dict[str, Any]) -> str:
    source = error.get("source") if isinstance(error.get("source"), dict) else {}
    where = source.get("pointer") or source.get("parameter")
    text = str(error.get("detail") or error.get("title") or error.get("code") or "no detail")
    code = error.get("code")
    line = f"{text} [{code}]" if code else text
    return f"{line} at {where}" if where else line


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "no exception"
    return f"{type(exc).__name__}: {str(exc)[:_MAX_ERROR_TEXT]}"
