"""HTTP for every Klaviyo call: one session class that bounds each request, and error text.

Every request goes through :class:`KlaviyoSession`, which holds the edges a misbehaving server
or proxy could otherwise stretch without end: one deadline over connect, headers and body, a cap
on the body's size, redirects only on the configured host, and a refused first connection
reported as a wrong ``api_url`` instead of being retried for a minute. Report calls use
:class:`PacedSession`, which asks the run before each attempt (pacing, budget, progress) and
tells it about each answer (rate-limit headers, Klaviyo's clock).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import requests
import urllib3
from typing_extensions import override
from urllib3.exceptions import (
    DecodeError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from tap_klaviyo_segments.errors import (
    ApiUnreachableError,
    RedirectRefusedError,
    ResponseTooLargeError,
)

#: A Klaviyo answer is a few MB at most (100 segments x 4 statistics x 366 buckets); anything
#: far larger is a proxy, a wrong ``api_url`` or a decompression bomb, and would eat memory.
MAX_BODY_BYTES = 64 * 1024 * 1024

#: Redirects followed on GET /api/segments (report calls follow none).
MAX_REDIRECTS = 5

_READ_CHUNK = 64 * 1024


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


class ReportPace(Protocol):
    """What a paced session asks before each attempt and tells after each answer."""

    def before_call(self) -> None:
        """Wait for the next allowed call and count it (raises when none is left)."""

    def after_response(self, status: int, headers: Mapping[str, str]) -> None:
        """Read what Klaviyo's answer says about its limits and its clock."""


class PacedSession(KlaviyoSession):
    """A session whose every attempt, retries included, is paced and counted by the run."""

    def __init__(self, pace: ReportPace, contact: ApiContact, **kwargs: Any) -> None:
        super().__init__(contact, follow_redirects=False, **kwargs)
        self.pace = pace

    @override
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Wait for the run's pace, send, and let the run read the answer's headers."""
        self.pace.before_call()
        response = super().send(request, **kwargs)
        self.pace.after_response(response.status_code, response.headers)
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


def klaviyo_date(headers: Mapping[str, str]) -> datetime | None:
    """Klaviyo's clock: the answer's HTTP ``Date`` header (aware), or None if unreadable."""
    value = headers.get("Date")
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def klaviyo_errors(response: requests.Response) -> list[dict[str, Any]]:
    """The JSON:API ``errors`` objects of an answer (none if the body is not such a document)."""
    try:
        payload = response.json()
    except ValueError:
        return []
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def error_line(error: dict[str, Any]) -> str:
    """Klaviyo's ``detail`` (or title), its code and ``source.pointer``, on one line."""
    source = error.get("source")
    source = source if isinstance(source, dict) else {}
    where = source.get("pointer") or source.get("parameter")
    text = str(error.get("detail") or error.get("title") or error.get("code") or "no detail")
    code = error.get("code")
    line = f"{text} [{code}]" if code else text
    return f"{line} at {where}" if where else line
