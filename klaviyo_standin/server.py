"""HTTP side of the stand-in: routing, auth, revision check, rate limits, faults and request log.

Order of checks per request (mirrors a gateway in front of an API): unknown path (404), wrong
method (405), API key (401 / 403 without ``segments:read``), ``revision`` header (400), scripted
fault (never counted), rate limits (429, not counted), random faults, then body validation (400)
and the answer. A request that passed the rate-limit stage is logged as ``counted``, whether or not
limits are enabled: it is what Klaviyo would charge against the budget (400s included).

Every answer (errors included, but not a dropped connection) carries an HTTP ``Date`` header with
Klaviyo's clock: the account's ``now`` (fixed or real) plus ``clock_skew_seconds``, the same
instant that decides what the answer holds. Report answers may leave segments out
(``StandinSettings.leave_out``); the log entry names them in ``left_out``.

The Authorization header is never stored, logged or echoed.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from klaviyo_standin.api import (
    REPORT_TYPES,
    ApiError,
    ReportRequest,
    invalid,
    parse_report,
    report_document,
    segment_document,
    segments_document,
)
from klaviyo_standin.model import Account
from klaviyo_standin.ratelimit import (
    REPORT_LIMITS,
    SEGMENT_LIMITS,
    RateLimiter,
    format_seconds,
)
from klaviyo_standin.settings import ANSWER_FAULTS, ScriptEntry, StandinSettings

REVISION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(\.pre)?$")
SEGMENTS_PATH = "/api/segments"
_RETRYABLE_DETAIL = "The request failed but is safe to retry after a short period."


@dataclass
class LogEntry:
    """One request as the stand-in saw it (never with headers)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int = 0
    timestamp: float = field(default_factory=time.time)
    counted: bool = False
    fault: str | None = None
    #: Segment ids a ``LeaveOut`` rule took out of this answer (``None``: none was applied).
    left_out: list[str] | None = None


@dataclass
class _Reply:
    """What to send back: status, JSON document (or raw text), extra headers."""

    status: int
    document: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def _error_reply(error: ApiError) -> _Reply:
    return _Reply(error.status, error.body(), headers=dict(error.headers))


def _server_error(status: int) -> ApiError:
    code = "MetricServiceRetryableError" if status in (503, 504) else "error"
    return ApiError(status, code, _RETRYABLE_DETAIL)


class StandinServer:
    """A local Klaviyo stand-in; use as ``with StandinServer(settings) as server: ...``."""

    def __init__(
        self,
        settings: StandinSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create (not start) a server; ``clock`` drives the rate-limit windows (tests fake it)."""
        self.settings = settings or StandinSettings()
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._log: list[LogEntry] = []
        self._limiter = RateLimiter(clock)
        self._fault_rng = random.Random(self.settings.faults.fault_seed)  # noqa: S311 - test faults
        self._account: Account | None = None
        self._account_key: tuple[object, ...] | None = None
        self._answers = {"series": 0, "values": 0}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle ---------------------------------------------------------------------------
    def start(self) -> StandinServer:
        """Bind and serve in a daemon thread."""
        self._httpd = _HTTPServer((self._host, self._port), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (ephemeral when created with port 0)."""
        if self._httpd is None:
            raise RuntimeError("The stand-in server is not running.")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._host}:{self.port}"

    # ----- state -------------------------------------------------------------------------------
    @property
    def account(self) -> Account:
        """The ground-truth account, rebuilt when a data-shaping setting changed.

        The switches that change an account between runs (timezone, clock skew, deleted segments)
        are applied to the same account, so its history stays.
        """
        with self._lock:
            s = self.settings
            key = s.model_key()
            if self._account is None or key != self._account_key:
                self._account = Account(s.segment_count, s.seed, s.timezone, s.now)
                self._account_key = key
            account = self._account
            account.set_timezone(s.timezone)
            account.clock_skew_seconds = s.clock_skew_seconds
            account.deleted = frozenset(s.deleted_segment_ids)
            return account

    def klaviyo_now(self) -> float:
        """Klaviyo's clock (epoch seconds): the account's now, skew included; the Date header."""
        return float(self.account.now_epoch())

    @property
    def log(self) -> list[LogEntry]:
        """A copy of the request log."""
        with self._lock:
            return list(self._log)

    def report_calls(self) -> list[LogEntry]:
        """Report requests answered with a usable 200 (slow ones count, malformed ones do not)."""
        return [
            e
            for e in self.log
            if e.path in REPORT_TYPES
            and e.status == 200
            and not (e.fault or "").endswith("malformed")
        ]

    def clear_log(self) -> None:
        """Empty the request log and restart the answer counts ``LeaveOut.call`` matches.

        So a test sharing a server (cleared per test) counts "the Nth series call" from its start.
        """
        with self._lock:
            self._log.clear()
            self._answers = dict.fromkeys(self._answers, 0)

    def reset_rate_limits(self) -> None:
        """Forget all rate-limit counts (windows restart now)."""
        self._limiter.reset()

    def push_script(self, entries: list[ScriptEntry]) -> None:
        """Append forced responses for the next report calls."""
        with self._lock:
            self.settings.faults.script.extend(entries)

    def reseed_faults(self, fault_seed: int | None = None) -> None:
        """Restart the fault PRNG (from ``fault_seed`` or the settings' seed)."""
        seed = self.settings.faults.fault_seed if fault_seed is None else fault_seed
        with self._lock:
            self._fault_rng = random.Random(seed)  # noqa: S311 - test faults

    def _record(self, entry: LogEntry) -> None:
        with self._lock:
            self._log.append(entry)

    def _next_script(self) -> ScriptEntry | None:
        with self._lock:
            script = self.settings.faults.script
            return script.pop(0) if script else None

    def _draw(self) -> float:
        with self._lock:
            return self._fault_rng.random()

    # ----- request pipeline --------------------------------------------------------------------
    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        headers: Any,
        base: str,
    ) -> tuple[_Reply, LogEntry]:
        """Run one request through the pipeline; return the reply and its log entry."""
        entry = LogEntry(method, path, query, body)
        try:
            reply = self._pipeline(entry, headers, base)
        except ApiError as error:
            reply = _error_reply(error)
        entry.status = 0 if reply.drop else reply.status
        self._record(entry)
        return reply, entry

    def _pipeline(self, entry: LogEntry, headers: Any, base: str) -> _Reply:
        self._route(entry.method, entry.path)
        self._authenticate(headers)
        revision = headers.get("revision")
        if not revision or not REVISION_RE.match(revision.strip()):
            raise invalid(
                "A valid 'revision' header (YYYY-MM-DD[.pre]) is required.", parameter="revision"
            )
        is_report = entry.path in REPORT_TYPES
        faultable = is_report or self.settings.faults.apply_to_segments
        scripted = self._next_script() if faultable else None
        answer_fault = None
        if scripted is not None and scripted[0] in ANSWER_FAULTS:
            answer_fault, scripted = scripted, None
        if scripted is not None and scripted[0] not in ("slow", "ok"):
            entry.fault = f"script:{scripted[0]}"
            return self._scripted(scripted)
        if scripted is not None and scripted[0] == "slow":
            entry.fault = "script:slow"
            time.sleep(scripted[1] or self.settings.faults.slow_seconds)
        limits_headers = self._rate_limit(entry.path, is_report)
        entry.counted = True
        fault = self._random_fault() if faultable else None
        if fault in ("drop", "500", "502", "503", "504"):
            entry.fault = fault
            return (
                _Reply(0, drop=True) if fault == "drop" else _error_reply(_server_error(int(fault)))
            )
        reply = self._answer(entry, base)
        reply.headers.update(limits_headers)
        entry.fault = fault
        if fault == "malformed" and reply.status == 200:
            self._malform(reply)
        if answer_fault is not None and reply.status == 200:
            entry.fault = f"script:{answer_fault[0]}"
            _corrupt_answer(reply.document, *answer_fault)
        return reply

    @staticmethod
    def _route(method: str, path: str) -> None:
        if path in REPORT_TYPES:
            allowed = "POST"
        elif path == SEGMENTS_PATH or re.fullmatch(r"/api/segments/[^/]+", path):
            allowed = "GET"
        else:
            raise ApiError(404, "not_found", f"The path {path} was not found.")
        if method != allowed:
            raise ApiError(405, "method_not_allowed", f'Method "{method}" not allowed.')

    def _authenticate(self, headers: Any) -> None:
        scheme, _, key = (headers.get("Authorization") or "").partition(" ")
        key = key.strip()
        if scheme != "Klaviyo-API-Key" or not key:
            raise ApiError(
                401, "not_authenticated", "Authentication credentials were not provided."
            )
        if key == self.settings.api_key:
            return
        if self.settings.scopeless_api_key and key == self.settings.scopeless_api_key:
            raise ApiError(
                403, "permission_denied", "This API key is missing the segments:read scope."
            )
        raise ApiError(401, "not_authenticated", "Incorrect authentication credentials.")

    def _throttled(self, seconds: float) -> ApiError:
        text = format_seconds(seconds, self.settings.time_scale)
        detail = f"Request was throttled. Expected available in {text} second(s)."
        return ApiError(429, "throttled", detail, headers={"Retry-After": text})

    def _scripted(self, entry: ScriptEntry) -> _Reply:
        kind, value = entry
        if kind == "429":
            return _error_reply(self._throttled(1.0 if value is None else value))
        if kind == "drop":
            return _Reply(0, drop=True)
        if kind in ("500", "502", "503", "504"):
            return _error_reply(_server_error(int(kind)))
        if kind == "malformed":
            return _Reply(
                200, raw=b'{"data": {"type": "segment-series-report", "attributes": {"res'
            )
        raise ValueError(f"Unknown script entry kind: {kind!r}")

    def _rate_limit(self, path: str, is_report: bool) -> dict[str, str]:
        settings = self.settings
        if not settings.rate_limits_enabled:
            return {}
        limits = REPORT_LIMITS if is_report else SEGMENT_LIMITS
        budget = path if is_report else SEGMENTS_PATH
        daily = "reports" if settings.shared_daily_budget else budget
        decision = self._limiter.acquire(budget, limits, settings.time_scale, daily)
        if not decision.allowed:
            raise self._throttled(decision.retry_after)
        reset = decision.reset
        return {
            "RateLimit-Limit": str(decision.limit),
            "RateLimit-Remaining": str(decision.remaining),
            "RateLimit-Reset": str(max(1, round(reset)))
            if settings.time_scale == 1
            else f"{reset:.3f}",
        }

    def _random_fault(self) -> str | None:
        faults = self.settings.faults
        draws = [self._draw() for _ in range(4)]
        if draws[0] < faults.drop_rate:
            return "drop"
        if draws[1] < faults.error_rate:
            return random.Random(draws[1]).choice(["500", "502", "503", "504"])  # noqa: S311
        if draws[3] < faults.malformed_rate:
            return "malformed"
        if draws[2] < faults.slow_rate:
            time.sleep(faults.slow_seconds)
            return "slow"
        return None

    def _malform(self, reply: _Reply) -> None:
        """Break a 200: shorten a series statistic by one, or cut the JSON text short."""
        attributes = reply.document.get("data", {}).get("attributes", {})
        results = attributes.get("results") or []
        if "date_times" in attributes and results and self._draw() < 0.5:
            name = next(iter(results[0]["statistics"]))
            results[0]["statistics"][name] = results[0]["statistics"][name][:-1]
            return
        text = json.dumps(reply.document).encode()
        reply.raw = text[: max(1, len(text) // 2)]

    def _answer(self, entry: LogEntry, base: str) -> _Reply:
        account = self.account
        if entry.path in REPORT_TYPES:
            request = parse_report(entry.path, entry.body, account, self.settings.data_floor)
            if request.segment_ids is None and self.settings.reject_unfiltered:
                raise invalid("A filter on segment_id is required.", "/data/attributes/filter")
            leave_out = self._leave_out(request)
            self_url = f"{base}{entry.path}"
            document = report_document(
                request,
                account,
                self.settings.end_inclusive,
                self_url,
                self.settings.alignment,
                self.settings.unfiltered_cap,
            )
            if leave_out is not None:
                entry.left_out = _drop_results(document, leave_out)
            return _Reply(200, document)
        if entry.path == SEGMENTS_PATH:
            return _Reply(200, segments_document(entry.query, account, base, entry.path))
        return _Reply(200, segment_document(entry.path.rsplit("/", 1)[1], account, base))

    def _leave_out(self, request: ReportRequest) -> set[str] | None:
        """Count this answer and return the ids the matching ``LeaveOut`` rules drop.

        An empty set means "every segment" (a rule without ``segment_ids``); ``None``: no rule.
        """
        kind = "series" if request.interval is not None else "values"
        with self._lock:
            self._answers[kind] += 1
            number = self._answers[kind]
            rules = [
                rule
                for rule in self.settings.leave_out
                if rule.wants(kind, request.window.start, number)
            ]
            for rule in rules:
                rule.used += 1
        if not rules:
            return None
        if any(rule.segment_ids is None for rule in rules):
            return set()
        return {sid for rule in rules for sid in rule.segment_ids or ()}


def _drop_results(document: dict[str, Any], segment_ids: set[str]) -> list[str]:
    """Remove the results of ``segment_ids`` (all when empty); return the ids removed."""
    attributes = document["data"]["attributes"]
    answered = [(r["groupings"]["segment_id"], r) for r in attributes["results"]]
    dropped = [sid for sid, _ in answered if not segment_ids or sid in segment_ids]
    attributes["results"] = [r for sid, r in answered if sid not in dropped]
    return dropped


def _corrupt_answer(document: dict[str, Any], kind: str, value: float | None) -> None:
    """Apply one of ``ANSWER_FAULTS`` to a report document, in place."""
    attributes = document["data"]["attributes"]
    results = attributes["results"]
    date_times = attributes.get("date_times")
    if kind in ("statistic-missing", "statistic-null") and results:
        stats = results[0]["statistics"]
        name = next(iter(stats))
        if kind == "statistic-missing":
            del stats[name]
        else:
            stats[name] = None
    elif kind == "leading-missing" and date_times is not None:
        cut = int(value or 1)
        attributes["date_times"] = date_times[cut:]
        for result in results:
            result["statistics"] = {k: v[cut:] for k, v in result["statistics"].items()}
    elif kind == "empty-date-times" and date_times is not None:
        attributes["date_times"] = []
        for result in results:
            result["statistics"] = {k: [] for k in result["statistics"]}
    elif kind == "offset" and date_times is not None:
        offset = timezone(timedelta(hours=value or 0.0))
        attributes["date_times"] = [
            datetime.fromisoformat(label).replace(tzinfo=offset).isoformat() for label in date_times
        ]


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its StandinServer."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, standin: StandinServer) -> None:
        self.standin = standin
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into ``StandinServer.handle`` calls."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        """Handle GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Handle PUT (always 404/405)."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Handle PATCH (always 404/405)."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Handle DELETE (always 404/405)."""
        self._dispatch()

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query, keep_blank_values=True)
        body = self._read_body()
        base = f"http://{self.headers.get('Host') or self.server.standin.url.split('//', 1)[1]}"
        standin = self.server.standin
        try:
            reply, _ = standin.handle(self.command, path, query, body, self.headers, base)
        except Exception as exc:
            reply = _error_reply(ApiError(500, "error", f"Stand-in error: {type(exc).__name__}"))
        if reply.drop:
            self._drop()
            return
        self._send(reply)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: _Reply) -> None:
        payload = reply.raw if reply.raw is not None else json.dumps(reply.document).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/vnd.api+json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (e.g. its timeout on a slow answer): nothing to send to.
            self.close_connection = True

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: Klaviyo's clock (the stand-in's now plus skew), not the host's."""
        if timestamp is None:
            timestamp = self.server.standin.klaviyo_now()
        return super().date_time_string(timestamp)

    def log_message(self, format: str, *args: Any) -> None:
        """Access log only with ``verbose`` (the request line only, never headers)."""
        if self.server.standin.settings.verbose:
            sys.stderr.write(f"standin: {self.address_string()} {format % args}\n")
