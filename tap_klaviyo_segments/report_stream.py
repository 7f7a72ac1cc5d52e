"""The one loop of report calls, shared by segment_values and segment_series.

:class:`KlaviyoReportStream` makes a stream's planned calls one by one through singer-sdk's own
request path (``request_records``: auth, retries, metrics), reads and checks each answer inside
the retry, and re-plans after every answer from what STATE and the run now hold. So progress,
the clean stop on a spent budget, the fall back from whole-account calls, and asking again for
segments an answer left out are written once, here; a stream adds only what is its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import requests
from singer_sdk import Tap
from singer_sdk.pagination import SinglePagePaginator
from typing_extensions import override

from tap_klaviyo_segments.client import KlaviyoStream
from tap_klaviyo_segments.errors import (
    DataFloorError,
    InvalidAnswerError,
    KlaviyoAPIError,
    MalformedResponseError,
    ReportBudgetSpent,
    ThrottledError,
)
from tap_klaviyo_segments.http import KlaviyoSession, PacedSession
from tap_klaviyo_segments.reports import MalformedReportError

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_klaviyo_segments.run import ReportRun


CallT = TypeVar("CallT")
AnswerT = TypeVar("AnswerT")


class KlaviyoReportStream(KlaviyoStream, Generic[CallT, AnswerT]):
    """Base of both report streams: the one loop of report calls (see :meth:`get_records`).

    A report stream declares what it asks and how it reads the answer: :meth:`plan_calls` (the
    calls still needed, given what this run read), :meth:`request_body`, :meth:`read_answer`
    (parse and check, inside the retry), :meth:`emit` (rows, then bookmarks), and what a call
    is called in the progress line. The loop here does the rest, the same for both.
    """

    http_method = "POST"

    #: A redirect on a report endpoint is answered as an error (see validate_response).
    allow_redirects = False

    def __init__(self, tap: Tap, run: Callable[[], ReportRun]) -> None:
        super().__init__(tap, run)
        #: The call being made; the SDK's request hooks read it.
        self._call: CallT | None = None
        self._answer: AnswerT | None = None
        #: This run fell back from whole-account calls to filtered batches.
        self.batches_only = False
        #: (segment id, interval or timeframe) -> times answers left the segment out this run.
        self.left_out: dict[tuple[str, str], int] = {}

    # What each report stream declares ---------------------------------------------------------

    def plan_calls(self) -> Sequence[CallT]:
        """The calls still needed, from STATE and what this run has read so far."""
        raise NotImplementedError

    def request_body(self, call: CallT) -> dict[str, Any]:
        """The JSON:API body of one call."""
        raise NotImplementedError

    def read_answer(self, call: CallT, payload: Any) -> AnswerT:
        """Parse and check one answer (raises MalformedReportError, retried like a 5xx)."""
        raise NotImplementedError

    def emit(self, call: CallT, answer: AnswerT) -> Iterator[dict[str, Any]]:
        """The rows of one answer; then move the bookmarks past them and write STATE."""
        raise NotImplementedError

    def describe(self, call: CallT) -> str:
        """The call in the progress line."""
        raise NotImplementedError

    def left_out_of(self, call: CallT, answer: AnswerT) -> tuple[str, str, list[str]]:
        """The wanted segments an answer left out: (interval or timeframe, window, ids)."""
        raise NotImplementedError

    def learn(self, lesson: Exception) -> None:
        """Take in what an answer taught (re-planned after); others re-raise it."""
        raise lesson

    def resume_note(self) -> str:
        """Where the next run starts, for the stop warning."""
        return "with today's values"

    # The loop -----------------------------------------------------------------------------------

    @property
    def whole_account(self) -> bool:
        """Whether more than 100 segments are asked in one call without a filter.

        Not when the config says never, when this run saw an unfiltered answer leave wanted
        segments out, or when Klaviyo once refused an unfiltered call (kept in STATE).
        """
        return (
            self.settings.whole_account_calls == "auto"
            and not self.batches_only
            and not self.run.state.whole_account_refused(self.name)
        )

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Make the planned calls one by one, re-planning whenever an answer changes the plan."""
        if self.ABORT_AT_RECORD_COUNT is not None:  # singer-sdk's dry run (--test): no call
            self.logger.info("%s makes no report call in a connection test", self.name)
            return
        calls = list(self.plan_calls())
        done = 0
        while calls:
            call = calls.pop(0)
            self.run.announce(self.name, done, done + len(calls) + 1, self.describe(call))
            done += 1
            try:
                answer = self.fetch(call)
            except ReportBudgetSpent as stop:
                done -= 1
                self.run.stop_cleanly(self.name, stop, len(calls) + 1, self.resume_note())
                return
            except WholeAccountRefused as refused:
                self._use_batches(f"{refused} (a report without a segment filter)", remember=True)
            except Lesson as lesson:
                self.learn(lesson.reason)
            else:
                yield from self.emit(call, answer)
                self._ask_again(call, answer)
            calls = list(self.plan_calls())

    def fetch(self, call: CallT) -> AnswerT:
        """POST one call through the SDK's request path (auth, retry, metrics); its answer.

        The answer is read inside the retry (:meth:`validate_response`), so a malformed one is
        asked again like a 5xx. A 4xx to a call without a segment filter is raised as
        :class:`WholeAccountRefused` only where it concerns the filter.
        """
        self._call, self._answer = call, None
        try:
            for _ in self.request_records(None):
                pass
        except DataFloorError as floor:
            raise Lesson(floor) from None
        except KlaviyoAPIError as exc:
            if _whole_account(call) and _about_filter(exc):
                raise WholeAccountRefused(str(exc)) from None
            raise
        except ThrottledError as exc:
            # Klaviyo keeps saying "not now": a clean stop with state saved, like a spent
            # quota, rather than a failed run; the next run resumes at this call.
            wait = "none given" if exc.retry_after is None else f"{exc.retry_after:g} s"
            raise ReportBudgetSpent(
                f"Klaviyo still throttled {self.path} after {self.settings.max_retries} "
                f"retries (last Retry-After: {wait})"
            ) from None
        assert self._answer is not None  # validate_response set it, or raised
        return self._answer

    @cached_property
    @override
    def klaviyo_session(self) -> KlaviyoSession:
        """A session that paces and counts every attempt through the run."""
        return PacedSession(
            self.run, self.run.contact, deadline_seconds=self.settings.request_timeout
        )

    @override
    def get_new_paginator(self) -> SinglePagePaginator:
        """One answer per call: report endpoints do not page."""
        return SinglePagePaginator()

    @override
    def prepare_request_payload(
        self, context: Context | None, next_page_token: Any | None
    ) -> dict[str, Any] | None:
        """The body of the call being made."""
        assert self._call is not None
        return self.request_body(self._call)

    @override
    def validate_response(self, response: requests.Response) -> None:
        """Statuses as every stream; then read and check the answer, inside the retry."""
        super().validate_response(response)
        assert self._call is not None
        try:
            payload = response.json()
        except ValueError:
            raise MalformedResponseError(
                f"Klaviyo returned a malformed report from {self.path}: body is not JSON",
                response,
            ) from None
        try:
            self._answer = self.read_answer(self._call, payload)
        except MalformedReportError as exc:
            msg = f"Klaviyo returned a malformed report from {self.path}: {exc}"
            raise InvalidAnswerError(msg, response) from None

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        """The checked answer stands for the page (the loop, not the SDK, turns it into rows)."""
        yield {}

    @override
    def long_throttle(self, reason: str) -> Exception:
        return ReportBudgetSpent(f"{reason} (the day's report quota is likely spent)")

    def _use_batches(self, reason: str, *, remember: bool) -> None:
        """Ask in filtered batches of 100 for the rest of this run (and later runs)."""
        self.batches_only = True
        if remember:
            self.run.state.refuse_whole_account(self.name)
        self.logger.info(
            "%s: %s asks in filtered batches of 100 segments from now on%s",
            reason,
            self.name,
            " (kept in STATE, so later runs do too)" if remember else " in this run",
        )

    def _ask_again(self, call: CallT, answer: AnswerT) -> None:
        """Segments an answer left out are asked again once (the next plan holds them).

        Left out twice, a segment is settled by the run (unknown, or held for the next run):
        its bookmark stays before the window either way.
        """
        kind, what, missing = self.left_out_of(call, answer)
        if not missing:
            return
        if _whole_account(call):
            self._use_batches(
                f"An answer for the whole account left out {len(missing)} wanted segments",
                remember=False,
            )
        twice = []
        for segment_id in missing:
            key = (segment_id, kind)
            count = self.left_out[key] = self.left_out.get(key, 0) + 1
            if count > 1:
                twice.append(segment_id)
        if len(twice) < len(missing):
            self.logger.info(
                "Klaviyo's answer for %s left out %d wanted segments (%s); asking for them again",
                what,
                len(missing) - len(twice),
                ", ".join([sid for sid in missing if sid not in twice][:5]),
            )
        if twice:
            self.run.settle_missing(self.name, twice, what)

    def held(self, kind: str) -> set[str]:
        """Segments left out twice of an interval's (or timeframe's) answers in this run.

        They are not asked again until the next run, and their bookmarks stay where they are.
        """
        return {sid for (sid, of), count in self.left_out.items() if of == kind and count > 1}


class Lesson(Exception):  # noqa: N818 - a finding, not an error
    """An answer that teaches the stream something (a grid, a data floor): re-plan after."""

    def __init__(self, reason: Exception) -> None:
        super().__init__(str(reason))
        self.reason = reason


class WholeAccountRefused(Exception):  # noqa: N818 - a signal to fall back, not an error
    """Klaviyo answered a report without a segment filter with a 4xx about the filter."""


def _whole_account(call: Any) -> bool:
    return bool(getattr(call, "whole_account", False))


def _about_filter(exc: KlaviyoAPIError) -> bool:
    """Whether a 4xx concerns the segment filter (or the lack of one), not the timeframe.

    Klaviyo's pointer names the field it refused; a data floor or a bad timeframe is not a
    refusal of unfiltered calls, and must not make every later run pay filtered batches.
    """
    if exc.status in (401, 403) or isinstance(exc, DataFloorError):
        return False
    pointer = exc.pointer.lower()
    return not pointer or "filter" in pointer
