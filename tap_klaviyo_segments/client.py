"""HTTP base for every Klaviyo stream: auth, headers, pacing, retries and error messages.

singer-sdk's RESTStream does the requests, retries and metrics; this module only says what is
Klaviyo-specific: which statuses retry and how long to wait (``Retry-After`` on a 429, not a
blind exponential), what a 4xx tells the user, and that report calls go through the shared
:class:`~tap_klaviyo_segments.pacing.ReportGate`.

Every request goes through :class:`KlaviyoSession`, which holds the edges a misbehaving server
or proxy could otherwise stretch without end: one deadline over connect, headers and body, a cap
on the body's size, redirects only on the configured host, and a refused first connection
reported as a wrong ``api_url`` instead of being retried for a minute.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import backoff
import requests
import urllib3
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.streams import RESTStream
from typing_extensions import override
from urllib3.exceptions import (
    DecodeError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from tap_klaviyo_segments.bookmarks import WHOLE_ACCOUNT_KEY, WHOLE_ACCOUNT_REFUSED
from tap_klaviyo_segments.pacing import ReportBudgetSpent, ReportGate
from tap_klaviyo_segments.redaction import cut, redact
from tap_klaviyo_segments.reports import MalformedReportError, SeriesReport, ValuesReport

if TYPE_CHECKING:
    from backoff.types import Details
    from singer_sdk.helpers.types import Context, RequestFunc

    from tap_klaviyo_segments.settings import Settings
    from tap_klaviyo_segments.tap import TapKlaviyoSegments

_MAX_ERROR_TEXT = 300

#: A Klaviyo answer is a few MB at most (100 segments x 4 statistics x 366 buckets); anything
#: far larger is a proxy, a wrong ``api_url`` or a decompression bomb, and would eat memory.
MAX_BODY_BYTES = 64 * 1024 * 1024

#: Redirects followed on GET /api/segments (report calls follow none).
MAX_REDIRECTS = 5

_READ_CHUNK = 64 * 1024


class KlaviyoAPIError(FatalAPIError):
    """A 4xx that retrying cannot fix; the message says what to change."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status, where a response gave one.
        self.status = status


class AnswerMismatchError(KlaviyoAPIError):
    """An answer that does not fit the config (labels in another timezone, a moving grid).

    Retrying cannot fix it; the message says what to change.
    """


class ApiUnreachableError(FatalAPIError):
    """The first connection of the run was refused or the host name did not resolve."""


class RedirectRefusedError(KlaviyoAPIError):
    """A redirect the tap will not follow (off the API host, on a report call, or a loop)."""


class ResponseTooLargeError(KlaviyoAPIError):
    """A body past :data:`MAX_BODY_BYTES`; reading on would only use up memory."""


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
    """A 200 whose body is not a usable report; retried, then fatal."""


@dataclass
class ApiContact:
    """Whether the API has answered yet in this run (shared by every stream's session).

    Before the first answer a refused connection or an unknown host name means ``api_url`` is
    wrong or the stand-in is not running: retrying cannot help. After it, the same error is a
    hiccup of a host that works, and is retried like a dropped connection.
    """

    api_url: str
    answered: bool = False


class KlaviyoSession(requests.Session):
    """A session that bounds every request: deadline, body size, redirects, first contact."""

    def __init__(
        self,
        contact: ApiContact,
        *,
        deadline_seconds: float,
        follow_redirects: bool,
    ) -> None:
        super().__init__()
        self.contact = contact
        self.deadline_seconds = deadline_seconds
        self.follow_redirects = follow_redirects
        self.max_redirects = MAX_REDIRECTS
        self._host = urlsplit(contact.api_url).netloc
        self._deadline: float | None = None

    @override
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send with one deadline over connect, headers and body, and read the body capped.

        Redirect hops come back through here (requests sends them with ``self.send``) and
        share the first request's deadline.
        """
        outermost = self._deadline is None
        if outermost:
            self._deadline = time.monotonic() + self.deadline_seconds
        deadline = cast("float", self._deadline)
        path = urlsplit(request.url or "").path
        kwargs["stream"] = True
        # urllib3's total timeout bounds connect and headers together; the body is bounded by
        # the same deadline in _read_body (urllib3 would only bound each read).
        kwargs["timeout"] = urllib3.Timeout(total=max(deadline - time.monotonic(), 0.001))
        if not self.follow_redirects:
            kwargs["allow_redirects"] = False
        try:
            response = super().send(request, **kwargs)
            self.contact.answered = True
            self._read_body(response)
        except requests.TooManyRedirects:
            raise RedirectRefusedError(
                f"{request.method} {path} was redirected more than {MAX_REDIRECTS} times "
                f"(a redirect loop on {self._host}): check api_url"
            ) from None
        except requests.ConnectionError as exc:
            if not self.contact.answered and _is_connect_failure(exc):
                raise ApiUnreachableError(_unreachable_message(self.contact.api_url, exc)) from None
            raise
        finally:
            if outermost:
                self._deadline = None
        return response

    @override
    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """Follow a redirect only on the configured host: the key must go nowhere else.

        requests reads a redirect's body right after asking this, uncapped: it is read here
        first, under the deadline and the cap.
        """
        target = super().get_redirect_target(resp)
        if target is None:
            return None
        self._read_body(resp)
        if not self.follow_redirects:
            return target  # not followed (requests only peeks at it): validate_response answers
        host = urlsplit(target).netloc
        if host and host != self._host:
            path = urlsplit(resp.url).path
            raise RedirectRefusedError(
                f"Klaviyo answered HTTP {resp.status_code} on {path}, redirecting to another "
                f"host ({host}); the tap follows redirects only on {self._host}: check api_url"
            )
        return target

    def _read_body(self, response: requests.Response) -> None:
        deadline = self._deadline or time.monotonic() + self.deadline_seconds
        _read_body(response, deadline, self.deadline_seconds, urlsplit(response.url).path)


class PacedSession(KlaviyoSession):
    """A session whose every attempt, retries included, is paced and counted by the gate."""

    def __init__(self, gate: ReportGate, contact: ApiContact, **kwargs: Any) -> None:
        super().__init__(contact, follow_redirects=False, **kwargs)
        self.gate = gate

    @override
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Wait for the gate, send, and let the gate read the rate-limit headers."""
        self.gate.before_call()
        response = super().send(request, **kwargs)
        self.gate.after_response(response.status_code, response.headers)
        return response


def _read_body(response: requests.Response, deadline: float, budget: float, path: str) -> None:
    """Read the body in chunks under the deadline and the size cap, into ``response.content``.

    ``read1`` returns what one read brings (a trickle cannot hold it until a chunk fills) and
    decompresses at most a chunk per call (a gzip bomb is stopped at the cap, not inflated).
    """
    if getattr(response, "_content_consumed", False):
        return  # a redirect hop this session already read
    raw = response.raw
    connection = getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise requests.ReadTimeout(
                    f"the answer on {path} did not arrive within request_timeout={budget:g} s"
                )
            if sock is not None:
                sock.settimeout(left)  # each read ends by the deadline, not a full timeout later
            chunk = raw.read1(_READ_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ResponseTooLargeError(
                    f"the answer on {path} is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB "
                    "(after decompression); the tap stopped reading it: check api_url and any "
                    "proxy in between"
                )
            chunks.append(chunk)
    except ReadTimeoutError:
        response.close()
        raise requests.ReadTimeout(
            f"the answer on {path} did not arrive within request_timeout={budget:g} s"
        ) from None
    except ProtocolError as exc:
        response.close()
        raise requests.exceptions.ChunkedEncodingError(str(exc)) from None
    except DecodeError as exc:
        response.close()
        raise requests.exceptions.ContentDecodingError(str(exc)) from None
    except BaseException:
        response.close()
        raise
    # requests keeps a read body in these two attributes (its own ``content`` property fills
    # them the same way); there is no public setter.
    response._content = b"".join(chunks)
    response._content_consumed = True


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError) and not isinstance(exc, requests.ConnectTimeout)


def _unreachable_message(api_url: str, exc: requests.ConnectionError) -> str:
    reason = getattr(exc.args[0], "reason", None)
    if isinstance(reason, NameResolutionError):
        why = "its host name does not resolve"
    elif "refused" in str(reason).lower():
        why = "the connection was refused"
    else:
        why = "no connection could be opened"
    message = f"api_url {api_url} cannot be reached ({why}): check api_url and the network"
    host = urlsplit(api_url).hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        message += (
            "; it is a loopback address, so the Klaviyo stand-in may not be running "
            "(start it with `python -m klaviyo_standin`)"
        )
    return message


class KlaviyoStream(RESTStream[Any]):
    """Base stream: Klaviyo's auth header, revision header and error handling."""

    @property
    def tap(self) -> TapKlaviyoSegments:
        """The tap this stream belongs to (the SDK keeps it untyped as ``_tap``)."""
        return cast("TapKlaviyoSegments", self._tap)

    @property
    def settings(self) -> Settings:
        """The parsed config, shared with the tap."""
        return self.tap.settings

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
    def timeout(self) -> int:
        """Seconds per HTTP request (``request_timeout``): a deadline over the whole request."""
        return self.settings.request_timeout  # type: ignore[return-value]

    @property
    @override
    def requests_session(self) -> requests.Session:
        """A :class:`KlaviyoSession` (deadline, body cap, redirects, first contact)."""
        # The SDK's property caches the session in ``_requests_session``; it is replaced here,
        # in this one place, because the SDK has no hook for the session's class.
        if not isinstance(self._requests_session, KlaviyoSession):
            self._requests_session = self._new_session()
        return self._requests_session

    def _new_session(self) -> KlaviyoSession:
        return KlaviyoSession(
            self.tap.api_contact,
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
            raise KlaviyoAPIError(self._describe(response, "Klaviyo rejected the request"), status)
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

    def _on_throttled(self, response: requests.Response) -> None:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        limit = self.settings.max_retry_wait_seconds
        if retry_after is not None and retry_after > limit:
            reason = (
                f"Klaviyo throttled {self.http_method} {self.path} with Retry-After "
                f"{retry_after:.0f} s, longer than max_retry_wait_seconds={limit:.0f}"
            )
            raise self._long_throttle(reason)
        message = self._describe(response, f"Klaviyo throttled {self.http_method} {self.path}")
        raise ThrottledError(message, response, retry_after)

    def _long_throttle(self, reason: str) -> Exception:
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
        details = [_error_line(error) for error in _errors(response)]
        if not details:
            # A proxy's error page may echo our request headers back: masked before the cut,
            # so a key straddling the cut cannot leave a prefix behind.
            text = cut(" ".join(response.text.split()), _MAX_ERROR_TEXT)
            details = [f"body: {text}" if text else "empty body"]
        return redact(
            f"{headline}: HTTP {response.status_code} on {self.path}: " + "; ".join(details)
        )

    @override
    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        """The SDK's retry, with backoff's own log lines at DEBUG.

        :meth:`backoff_handler` already logs each retry once at WARNING, and a failure that
        outlasts the retries ends the run with one ERROR line (see ``failure_line``); backoff's
        "Backing off" and "Giving up" lines would say the same things a second time.
        """
        decorator: Callable[[RequestFunc], RequestFunc] = backoff.on_exception(
            self.backoff_wait_generator,
            (
                ConnectionResetError,
                RetriableAPIError,
                requests.exceptions.Timeout,
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ),
            max_tries=self.backoff_max_tries,
            on_backoff=self.backoff_handler,
            jitter=self.backoff_jitter,
            logger=self.logger,
            backoff_log_level=logging.DEBUG,
            giveup_log_level=logging.DEBUG,
        )
        return decorator(func)

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
            _short(exc),
        )


class WholeAccountRefused(Exception):  # noqa: N818 - a signal to fall back, not an error
    """Klaviyo answered a report without a segment filter with a 4xx."""


class KlaviyoReportStream(KlaviyoStream):
    """Base of both report streams: POSTs through the shared gate, parsed inside the retry.

    Also what the two share beyond HTTP: the segments to ask about, whole-account calls and
    their fallback to filtered batches, the progress line per call, and the clean stop.
    """

    http_method = "POST"

    #: A redirect on a report endpoint is answered as an error (see validate_response).
    allow_redirects = False

    @property
    def gate(self) -> ReportGate:
        """The pacing and budget shared by both report streams."""
        return self.tap.report_gate

    @override
    def _new_session(self) -> KlaviyoSession:
        """A session that paces every attempt through the shared gate."""
        return PacedSession(
            self.gate,
            self.tap.api_contact,
            deadline_seconds=self.settings.request_timeout,
        )

    @override
    def _long_throttle(self, reason: str) -> Exception:
        return ReportBudgetSpent(f"{reason} (the day's report quota is likely spent)")

    def post_report(self, body: dict[str, Any], parse: Callable[[Any], Any]) -> Any:
        """POST one report and return ``parse(json)``, retrying malformed bodies like 5xx.

        429s that outlast ``max_retries`` raise :class:`ReportBudgetSpent` (a clean stop).
        """
        prepared = self.build_prepared_request(
            method="POST", url=self.get_url(None), headers=self.http_headers, json=body
        )

        def attempt(request: requests.PreparedRequest, context: Context | None) -> Any:
            # ``_request`` is the SDK's one send (auth, metrics, validate_response); reused
            # here so report calls get exactly what paged GETs get, inside our own retry.
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

    #: Set when this run fell back from whole-account calls to filtered batches.
    _batches_only = False

    def segment_ids(self) -> list[str]:
        """Configured ids, or every (active) segment in the account."""
        return self.tap.report_segment_ids()

    def now_utc(self) -> datetime:
        """The tap's clock (tests freeze it)."""
        return self.tap.now_utc()

    @property
    def whole_account(self) -> bool:
        """Whether more than 100 segments are asked in one call without a filter.

        Not when the config says never, when this run saw an unfiltered answer leave wanted
        segments out, or when Klaviyo once refused an unfiltered call (kept in STATE).
        """
        return (
            self.settings.whole_account_calls == "auto"
            and not self._batches_only
            and self.stream_state.get(WHOLE_ACCOUNT_KEY) != WHOLE_ACCOUNT_REFUSED
        )

    def _use_batches(self, reason: str, *, remember: bool) -> None:
        """Ask in filtered batches of 100 for the rest of this run (and later runs)."""
        self._batches_only = True
        if remember:
            self.stream_state[WHOLE_ACCOUNT_KEY] = WHOLE_ACCOUNT_REFUSED
            self._write_state()
        self.logger.info(
            "%s: %s asks in filtered batches of 100 segments from now on%s",
            reason,
            self.name,
            " (kept in STATE, so later runs do too)" if remember else " in this run",
        )

    def _post_report(self, body: dict[str, Any], parse: Any, *, whole_account: bool) -> Any:
        """``post_report``, with a 4xx to an unfiltered call raised as the signal to fall back."""
        try:
            return self.post_report(body, parse)
        except KlaviyoAPIError as exc:
            if whole_account and exc.status not in (401, 403):
                raise WholeAccountRefused(str(exc)) from None
            raise

    def _write_state(self) -> None:
        """Write a STATE message now, through the tap's public state writer."""
        self.tap.state_writer.write_state(self.tap_state)

    def _log_progress(self, done: int, total: int, what: str) -> None:
        """One line per report call: long backfills at 2 calls a minute need a visible pulse.

        None for a call the spent budget will refuse (it is not made); the time left is at the
        pace measured so far, waits for ``RateLimit-Reset`` and retries included.
        """
        gate = self.gate
        if gate.calls_left <= 0:
            return
        after = total - done - 1
        budget = ""
        if after > gate.calls_left - 1:
            budget = f" (the daily budget allows {gate.calls_left - 1} more)"
        self.logger.info(
            "%s call %d/%d: %s; %d left after it%s, about %.1f min at the current pace",
            self.name,
            done + 1,
            total,
            what,
            after,
            budget,
            after * gate.seconds_per_call / 60,
        )

    def _stop_cleanly(self, stop: ReportBudgetSpent, calls_left: int) -> None:
        """Warn why the stream stopped, the calls made and still needed, and where it resumes."""
        gate = self.gate
        gate.stop(str(stop))
        gate.calls_still_needed += calls_left
        needed = f"{calls_left} more are needed for this stream"
        if gate.calls_still_needed != calls_left:
            needed += f" ({gate.calls_still_needed} for the whole sync)"
        self.logger.warning(
            "Stopping %s cleanly: %s. Made %d report calls this run; %s. "
            "State is saved; the next run resumes %s.",
            self.name,
            stop,
            gate.calls_made,
            needed,
            self._resume_note(),
        )

    def _resume_note(self) -> str:
        """Where the next run starts, for the stop warning."""
        return "with today's values"

    def _warn_about_ids(
        self, report: SeriesReport | ValuesReport, *, whole_account: bool = False
    ) -> None:
        """Say once per run which segments Klaviyo added or left out (not once per call).

        An unfiltered answer holds every segment of the account: the unwanted ones (inactive,
        or not in ``segment_ids``) are dropped without a word.
        """
        seen = self.tap.ids_warned
        others = [] if whole_account else report.unexpected_ids
        unexpected = [sid for sid in others if ("+", sid) not in seen]
        missing = [sid for sid in report.missing_ids if ("-", sid) not in seen]
        seen.update(("+", sid) for sid in unexpected)
        seen.update(("-", sid) for sid in missing)
        if unexpected:
            self.logger.warning(
                "Klaviyo returned %d segments that were not asked for (%s); they were skipped",
                len(unexpected),
                ", ".join(unexpected[:5]),
            )
        if missing:
            self.logger.warning(
                "Klaviyo returned nothing for %d requested segments (%s); their bookmarks stay, "
                "so the next run asks again (check segment_ids if they no longer exist)",
                len(missing),
                ", ".join(missing[:5]),
            )


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


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` asks for: a number or an HTTP-date (RFC 9110); else None.

    ``nan``, ``inf`` and anything else unparseable count as "none given".
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


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
    source = error.get("source")
    source = source if isinstance(source, dict) else {}
    where = source.get("pointer") or source.get("parameter")
    text = str(error.get("detail") or error.get("title") or error.get("code") or "no detail")
    code = error.get("code")
    line = f"{text} [{code}]" if code else text
    return f"{line} at {where}" if where else line


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "no exception"
    return f"{type(exc).__name__}: {cut(str(exc), _MAX_ERROR_TEXT)}"
